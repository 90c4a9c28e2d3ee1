//! A tiny backtracking matcher for the selector patterns OSImager data uses (`9\.[0-6]`,
//! `(8|9)\..*`, `x86_64|amd64`, `[89]|1[0-9]`): literals, `.`, classes, groups with `|`, and
//! `* + ?`. `fullmatch` of short ASCII strings needs no compiled automaton; building the index
//! compiles hundreds of distinct patterns, so skipping regex compilation is most of its cost.
//! Anything else (anchors, `{m,n}`, `\d`, look-around, …) returns `None` and the caller uses
//! the regex crate. Matching is ASCII case-insensitive (callers use it for ASCII only).

#[derive(Debug, Clone)]
enum Node {
    Byte(u8),
    Any,
    Class(Vec<(u8, u8)>, bool),
    Alt(Vec<Vec<Node>>),
    Repeat(Box<Node>, usize, usize),
}

/// A parsed pattern.
#[derive(Debug, Clone)]
pub struct MiniRe(Vec<Vec<Node>>);

struct P<'a> {
    s: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn alts(&mut self) -> Option<Vec<Vec<Node>>> {
        let mut alts = vec![self.seq()?];
        while self.s.get(self.i) == Some(&b'|') {
            self.i += 1;
            alts.push(self.seq()?);
        }
        Some(alts)
    }

    fn seq(&mut self) -> Option<Vec<Node>> {
        let mut out = Vec::new();
        while let Some(&c) = self.s.get(self.i) {
            let atom = match c {
                b'|' | b')' => break,
                b'(' => {
                    self.i += 1;
                    if self.s[self.i..].starts_with(b"?:") {
                        self.i += 2;
                    } else if self.s.get(self.i) == Some(&b'?') {
                        return None;
                    }
                    let a = self.alts()?;
                    if self.s.get(self.i) != Some(&b')') {
                        return None;
                    }
                    self.i += 1;
                    Node::Alt(a)
                }
                b'[' => self.class()?,
                b'.' => {
                    self.i += 1;
                    Node::Any
                }
                b'\\' => {
                    let e = *self.s.get(self.i + 1)?;
                    if e.is_ascii_alphanumeric() {
                        return None;
                    }
                    self.i += 2;
                    Node::Byte(e)
                }
                b'*' | b'+' | b'?' | b'{' | b'}' | b'^' | b'$' | b']' => return None,
                _ => {
                    self.i += 1;
                    Node::Byte(c.to_ascii_lowercase())
                }
            };
            let atom = match self.s.get(self.i) {
                Some(b'*') => Node::Repeat(Box::new(atom), 0, usize::MAX),
                Some(b'+') => Node::Repeat(Box::new(atom), 1, usize::MAX),
                Some(b'?') => Node::Repeat(Box::new(atom), 0, 1),
                _ => {
                    out.push(atom);
                    continue;
                }
            };
            self.i += 1;
            if matches!(self.s.get(self.i), Some(b'?' | b'+' | b'*' | b'{')) {
                return None;
            }
            out.push(atom);
        }
        Some(out)
    }

    fn class(&mut self) -> Option<Node> {
        self.i += 1;
        let neg = self.s.get(self.i) == Some(&b'^');
        if neg {
            self.i += 1;
        }
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            let c = *self.s.get(self.i)?;
            if c == b']' && !first {
                self.i += 1;
                break;
            }
            first = false;
            let lo = self.class_char()?;
            if self.s.get(self.i) == Some(&b'-')
                && self.s.get(self.i + 1).is_some_and(|&n| n != b']')
            {
                self.i += 1;
                let hi = self.class_char()?;
                if hi < lo {
                    return None;
                }
                ranges.push((lo, hi));
            } else {
                ranges.push((lo, lo));
            }
        }
        Some(Node::Class(ranges, neg))
    }

    fn class_char(&mut self) -> Option<u8> {
        let c = *self.s.get(self.i)?;
        if c == b'\\' {
            let e = *self.s.get(self.i + 1)?;
            if e.is_ascii_alphanumeric() {
                return None;
            }
            self.i += 2;
            return Some(e);
        }
        if c == b'[' {
            return None;
        }
        self.i += 1;
        Some(c)
    }
}

impl MiniRe {
    /// Parse, or `None` when the pattern uses syntax this matcher leaves to the regex crate.
    pub fn parse(pattern: &str) -> Option<MiniRe> {
        if !pattern.is_ascii() {
            return None;
        }
        let mut p = P {
            s: pattern.as_bytes(),
            i: 0,
        };
        let alts = p.alts()?;
        (p.i == p.s.len()).then_some(MiniRe(alts))
    }

    /// `re.fullmatch(pattern, value, re.I)` for ASCII `value`.
    pub fn fullmatch(&self, value: &str) -> bool {
        let s = value.as_bytes();
        alt(&self.0, s, 0, &mut |p| p == s.len())
    }
}

fn alt(alts: &[Vec<Node>], s: &[u8], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    alts.iter().any(|seq| seq_m(seq, s, pos, k))
}

fn seq_m(seq: &[Node], s: &[u8], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    match seq.split_first() {
        None => k(pos),
        Some((n, rest)) => node(n, s, pos, &mut |p| seq_m(rest, s, p, k)),
    }
}

fn node(n: &Node, s: &[u8], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    match n {
        Node::Byte(b) => s.get(pos).is_some_and(|c| c.to_ascii_lowercase() == *b) && k(pos + 1),
        Node::Any => s.get(pos).is_some_and(|&c| c != b'\n') && k(pos + 1),
        Node::Class(r, neg) => {
            s.get(pos).is_some_and(|&c| {
                let (l, u) = (c.to_ascii_lowercase(), c.to_ascii_uppercase());
                let hit = r
                    .iter()
                    .any(|&(a, b)| (a..=b).contains(&l) || (a..=b).contains(&u));
                hit != *neg
            }) && k(pos + 1)
        }
        Node::Alt(a) => alt(a, s, pos, k),
        Node::Repeat(inner, min, max) => rep(inner, *min, *max, s, pos, k),
    }
}

fn rep(
    inner: &Node,
    min: usize,
    max: usize,
    s: &[u8],
    pos: usize,
    k: &mut dyn FnMut(usize) -> bool,
) -> bool {
    // Greedy: one more (only if it consumes input), else stop here.
    if max > 0
        && node(inner, s, pos, &mut |p| {
            p > pos && rep(inner, min.saturating_sub(1), max - 1, s, p, k)
        })
    {
        return true;
    }
    min == 0 && k(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fm(p: &str, v: &str) -> Option<bool> {
        MiniRe::parse(p).map(|r| r.fullmatch(v))
    }

    #[test]
    fn matches_like_python_fullmatch() {
        assert_eq!(fm("9\\.[0-6]", "9.4"), Some(true));
        assert_eq!(fm("9\\.[0-6]", "9.7"), Some(false));
        assert_eq!(fm("9", "9.4"), Some(false));
        assert_eq!(fm("[23].*", "2.1"), Some(true));
        assert_eq!(fm("(8|9)\\..*", "9.10"), Some(true));
        assert_eq!(fm("[89]|1[0-9]|20", "15"), Some(true));
        assert_eq!(fm("[89]|1[0-9]|20", "21"), Some(false));
        assert_eq!(fm("X86_64", "x86_64"), Some(true));
        assert_eq!(fm("10\\.([0-9]|1[0-2])", "10.12"), Some(true));
        assert_eq!(fm("a+b?c*", "aaac"), Some(true));
        assert_eq!(fm("(a|ab)(c|bcd)", "abcd"), Some(true));
        assert_eq!(fm("[^0-9]x", "ax"), Some(true));
        assert_eq!(fm("[^0-9]x", "1x"), Some(false));
        assert_eq!(fm("", ""), Some(true));
        assert_eq!(fm("", "a"), Some(false));
        assert_eq!(fm("(a*)*b", "aaaaaaaaaaaaaaaaaaaac"), Some(false));
        assert!(MiniRe::parse("\\d+").is_none());
        assert!(MiniRe::parse("a{2}").is_none());
        assert!(MiniRe::parse("^a$").is_none());
        assert!(MiniRe::parse("(?=a)").is_none());
        assert!(MiniRe::parse("(a").is_none());
    }
}

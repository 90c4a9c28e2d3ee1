//! OSImager's `natural_key` ordering and version-range expansion
//! (`explode_string_with_dynamic_range`).

use std::cmp::Ordering;

/// One part of a natural sort key: text (lower-cased) and numbers alternate, text first.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Num(u128),
}

fn key(s: &str) -> Vec<Part> {
    // re.split(r'(\d+)', s): text, digits, text, digits, ..., text.
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut in_digits = false;
    for c in s.chars() {
        let d = c.is_ascii_digit();
        if d != in_digits {
            parts.push(finish(&cur, in_digits));
            cur.clear();
            in_digits = d;
        }
        cur.push(c);
    }
    parts.push(finish(&cur, in_digits));
    if in_digits {
        parts.push(Part::Text(String::new()));
    }
    parts
}

fn finish(s: &str, digits: bool) -> Part {
    if digits {
        Part::Num(s.parse().unwrap_or(u128::MAX))
    } else {
        Part::Text(s.to_lowercase())
    }
}

/// A precomputed natural sort key (`sort_by_cached_key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NaturalKey(Vec<Part>);

impl NaturalKey {
    pub fn new(s: &str) -> Self {
        NaturalKey(key(s))
    }
}

impl PartialOrd for NaturalKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for NaturalKey {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_keys(&self.0, &other.0)
    }
}

/// Compare two strings the way `sorted(..., key=natural_key)` does.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    cmp_keys(&key(a), &key(b))
}

fn cmp_keys(ka: &[Part], kb: &[Part]) -> Ordering {
    for (x, y) in ka.iter().zip(kb.iter()) {
        let o = match (x, y) {
            (Part::Text(x), Part::Text(y)) => x.cmp(y),
            (Part::Num(x), Part::Num(y)) => x.cmp(y),
            // Alignment makes mixed pairs impossible; order them deterministically anyway.
            (Part::Num(_), Part::Text(_)) => Ordering::Less,
            (Part::Text(_), Part::Num(_)) => Ordering::Greater,
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    ka.len().cmp(&kb.len())
}

/// Error from a malformed version range such as `8.[3-x]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeError(pub String);

/// Expand `8.[3-10]` → 8.3 … 8.10, `5.[1,9]` → 5.1, 5.9, `[01-03]` keeps zero padding, several
/// bracket groups → cartesian product (first group varies slowest).
pub fn explode_versions(input: &str) -> Result<Vec<String>, RangeError> {
    // Find [...] groups without nested brackets, like r'\[([^\[\]]+)\]'.
    let mut literals: Vec<String> = Vec::new();
    let mut groups: Vec<Vec<String>> = Vec::new();
    let bytes: Vec<char> = input.chars().collect();
    let mut lit = String::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == '[' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != ']' && bytes[j] != '[' {
                j += 1;
            }
            if j < bytes.len() && bytes[j] == ']' && j > i + 1 {
                let text: String = bytes[i + 1..j].iter().collect();
                literals.push(std::mem::take(&mut lit));
                groups.push(expand_group(&text, input)?);
                i = j + 1;
                continue;
            }
        }
        lit.push(bytes[i]);
        i += 1;
    }
    literals.push(lit);
    if groups.is_empty() {
        return Ok(vec![input.to_string()]);
    }
    // Python's str.format would also interpret braces in the template; reject them rather
    // than guess (OSImager raises there too).
    if literals.iter().any(|l| l.contains('{') || l.contains('}')) {
        return Err(RangeError(format!(
            "version string {input:?} mixes braces with a [range]"
        )));
    }
    let mut out = vec![String::new()];
    for (gi, g) in groups.iter().enumerate() {
        let mut next = Vec::with_capacity(out.len() * g.len());
        for prefix in &out {
            for v in g {
                next.push(format!("{prefix}{}{v}", literals[gi]));
            }
        }
        out = next;
    }
    let last = literals.last().cloned().unwrap_or_default();
    Ok(out.into_iter().map(|s| s + &last).collect())
}

fn expand_group(text: &str, input: &str) -> Result<Vec<String>, RangeError> {
    if text.contains('-') && !text.contains(',') {
        let parts: Vec<&str> = text.split('-').collect();
        if parts.len() != 2 {
            return Err(RangeError(format!(
                "range [{text}] in {input:?} must be START-END"
            )));
        }
        let (s, e) = (parts[0], parts[1]);
        let parse = |x: &str| -> Result<i64, RangeError> {
            x.trim().parse::<i64>().map_err(|_| {
                RangeError(format!(
                    "range [{text}] in {input:?}: {x:?} is not an integer"
                ))
            })
        };
        let (start, end) = (parse(s)?, parse(e)?);
        let pad = (s.starts_with('0') && s.len() > 1) || (e.starts_with('0') && e.len() > 1);
        let width = s.len().max(e.len());
        Ok((start..=end)
            .map(|i| if pad { zfill(i, width) } else { i.to_string() })
            .collect())
    } else {
        Ok(text.split(',').map(|x| x.trim().to_string()).collect())
    }
}

fn zfill(i: i64, width: usize) -> String {
    if i < 0 {
        format!("-{:0>w$}", -i, w = width.saturating_sub(1))
    } else {
        format!("{i:0>width$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(s: &str) -> Vec<String> {
        explode_versions(s).unwrap()
    }

    #[test]
    fn ranges_lists_and_padding() {
        assert_eq!(ex("8.[3-5]"), ["8.3", "8.4", "8.5"]);
        assert_eq!(ex("8.[9-10]"), ["8.9", "8.10"]);
        assert_eq!(ex("5.[1,9, 10]"), ["5.1", "5.9", "5.10"]);
        assert_eq!(ex("[01-03]"), ["01", "02", "03"]);
        assert_eq!(ex("[1-03]"), ["01", "02", "03"]);
        assert_eq!(ex("[8-9]"), ["8", "9"]);
        assert_eq!(ex("9.4"), ["9.4"]);
        assert_eq!(ex("[5-3]"), Vec::<String>::new());
        assert_eq!(
            ex("[1,2].[0-1]-r[a,b]"),
            ["1.0-ra", "1.0-rb", "1.1-ra", "1.1-rb", "2.0-ra", "2.0-rb", "2.1-ra", "2.1-rb"]
        );
        assert_eq!(ex("x[]y"), ["x[]y"]);
        assert!(explode_versions("8.[a-3]").is_err());
        assert!(explode_versions("8.[1-2-3]").is_err());
    }

    #[test]
    fn natural_order() {
        let mut v = vec![
            "rhel-9.10-x86_64",
            "rhel-9.2-x86_64",
            "Alma-8-x",
            "alma-10-x",
            "rhel-10.0-x86_64",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            [
                "Alma-8-x",
                "alma-10-x",
                "rhel-9.2-x86_64",
                "rhel-9.10-x86_64",
                "rhel-10.0-x86_64"
            ]
        );
        assert_eq!(natural_cmp("9", "9.0"), std::cmp::Ordering::Less);
    }
}

//! Shell-style wildcards in `cd_files`, `floppy_files` and `floppy_dirs`, as Packer expands
//! them with Go's `filepath.Glob`: `*` (any run of characters but `/`), `?` (one character),
//! `[abc]`, `[a-z]`, `[^a-z]`/`[!a-z]` in any path component; matches come sorted per
//! directory; a pattern that matches nothing yields nothing; a hidden file matches `*` (as in
//! Go). An entry without wildcard characters is returned as it is.

use std::path::{Component, Path, PathBuf};

/// Whether `entry` contains a wildcard character (Packer's test: any of `*?[`).
pub(crate) fn has_wildcard(entry: &str) -> bool {
    entry.contains(['*', '?', '['])
}

/// Expand one entry. A malformed pattern (an unclosed `[`) is an error naming it.
pub(crate) fn expand(entry: &str) -> Result<Vec<PathBuf>, String> {
    if !has_wildcard(entry) {
        return Ok(vec![PathBuf::from(entry)]);
    }
    let path = Path::new(entry);
    let mut bases = vec![PathBuf::new()];
    for comp in path.components() {
        let part = match comp {
            Component::Normal(p) => p.to_string_lossy().into_owned(),
            other => {
                for b in &mut bases {
                    b.push(other.as_os_str());
                }
                continue;
            }
        };
        if !has_wildcard(&part) {
            for b in &mut bases {
                b.push(&part);
            }
            continue;
        }
        let pattern: Vec<char> = part.chars().collect();
        check(&pattern).map_err(|e| format!("bad wildcard pattern {entry:?}: {e}"))?;
        let mut next = Vec::new();
        for b in &bases {
            let dir = if b.as_os_str().is_empty() {
                Path::new(".")
            } else {
                b.as_path()
            };
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| matches(&pattern, &n.chars().collect::<Vec<_>>()))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| b.join(n)));
        }
        bases = next;
    }
    Ok(bases.into_iter().filter(|p| p.exists()).collect())
}

/// Reject an unclosed character class up front (Go's ErrBadPattern).
fn check(p: &[char]) -> Result<(), &'static str> {
    let mut i = 0;
    while i < p.len() {
        if p[i] == '[' {
            let close = p[i + 1..]
                .iter()
                .skip(1)
                .position(|&c| c == ']')
                .ok_or("unclosed [")?;
            i += close + 2;
        }
        i += 1;
    }
    Ok(())
}

/// Match a whole name against a pattern (both as chars).
fn matches(p: &[char], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some('*') => (0..=s.len()).any(|k| matches(&p[1..], &s[k..])),
        Some('?') => !s.is_empty() && matches(&p[1..], &s[1..]),
        Some('[') => {
            let Some(c) = s.first() else { return false };
            match class(&p[1..], *c) {
                Some((ok, rest)) => ok && matches(rest, &s[1..]),
                None => false,
            }
        }
        Some(&c) => s.first() == Some(&c) && matches(&p[1..], &s[1..]),
    }
}

/// A character class after its `[`: whether `c` is in it, and the pattern after its `]`.
fn class(p: &[char], c: char) -> Option<(bool, &[char])> {
    let (negate, mut i) = match p.first() {
        Some('^') | Some('!') => (true, 1),
        _ => (false, 0),
    };
    let mut hit = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((hit != negate, &p[i + 1..]));
        }
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                hit = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                hit = true;
            }
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        matches(
            &p.chars().collect::<Vec<_>>(),
            &s.chars().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn patterns() {
        assert!(m("*.cfg", "ks.cfg"));
        assert!(!m("*.cfg", "ks.cfg.bak"));
        assert!(m("k?.cfg", "ks.cfg"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[!a-c]x", "bx"));
        assert!(m("[^a-c]x", "dx"));
        assert!(m("[]]", "]"));
        assert!(m("*", ""));
        assert!(check(&"[ab".chars().collect::<Vec<_>>()).is_err());
    }

    #[test]
    fn expands_in_any_component_sorted() {
        let t = tempfile::tempdir().unwrap();
        for d in ["a1", "a2", "b1"] {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
            std::fs::write(t.path().join(d).join("x.txt"), d).unwrap();
            std::fs::write(t.path().join(d).join("y.bin"), d).unwrap();
        }
        let pat = format!("{}/a*/*.txt", t.path().display());
        assert_eq!(
            expand(&pat).unwrap(),
            vec![t.path().join("a1/x.txt"), t.path().join("a2/x.txt")]
        );
        assert!(expand(&format!("{}/zz*", t.path().display()))
            .unwrap()
            .is_empty());
        assert!(expand(&format!("{}/[a", t.path().display())).is_err());
        assert_eq!(
            expand("/no/wildcard").unwrap(),
            vec![PathBuf::from("/no/wildcard")]
        );
    }
}

//! Finding a Python interpreter in a version range (OSImager's `_find_python`): versioned names
//! from `python3.20` down to the minimum, then `python3` (or `python2.7`, `python2.6`, `python2`
//! for Ansible lines that need Python 2), each asked `--version`.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

/// `"3.10"` → `(3, 10)`; `"3"` → `(3, 0)`.
pub fn parse_version(s: &str) -> Option<(u32, u32)> {
    let mut it = s.trim().split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next().map(|m| m.parse().ok()).unwrap_or(Some(0))?;
    Some((major, minor))
}

/// The `(major, minor)` of an interpreter, from `python --version` (stdout or, for Python 2,
/// stderr): `Python 3.11.7`.
pub fn interpreter_version(python: &std::path::Path) -> Option<(u32, u32)> {
    let out = Command::new(python).arg("--version").output().ok()?;
    let text = if out.stdout.is_empty() {
        String::from_utf8_lossy(&out.stderr).into_owned()
    } else {
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    parse_version(text.split_whitespace().nth(1)?)
}

/// Interpreter names to try, best first.
pub fn candidates(min: (u32, u32)) -> Vec<String> {
    if min.0 == 2 {
        return vec!["python2.7".into(), "python2.6".into(), "python2".into()];
    }
    let mut c: Vec<String> = (min.1..=20).rev().map(|m| format!("python3.{m}")).collect();
    c.push("python3".into());
    c
}

/// Find an interpreter with `min <= version <= max` in `path_var`.
pub fn find_python(min: &str, max: Option<&str>, path_var: Option<&OsStr>) -> Option<PathBuf> {
    let min_v = parse_version(min)?;
    let max_v = max.and_then(parse_version);
    for name in candidates(min_v) {
        let Some(path) = crate::tools::which(&name, path_var, std::path::Path::new(".")) else {
            continue;
        };
        let Some(v) = interpreter_version(&path) else {
            continue;
        };
        if v < min_v || max_v.is_some_and(|m| v > m) {
            continue;
        }
        return Some(path);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_order() {
        let c = candidates((3, 18));
        assert_eq!(c, vec!["python3.20", "python3.19", "python3.18", "python3"]);
        assert_eq!(candidates((2, 6))[0], "python2.7");
    }
}

//! Request-path validation: turn a raw URL path into a safe relative path, or refuse it.

use std::path::{Path, PathBuf};

/// Why a path was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not valid percent-encoded UTF-8.
    BadEncoding,
    /// `..`, backslash, NUL or a drive-like segment: an attempt to leave the root.
    Traversal,
}

/// Decode `raw` (the URI path) and return its segments joined by `/`, without a leading slash.
/// `.` and empty segments are dropped; `..` (also percent-encoded), backslashes, NUL and `:` in a
/// segment are refused rather than normalised, so no request can climb out of the served root.
pub(crate) fn clean_path(raw: &str) -> Result<String, Refused> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| Refused::BadEncoding)?;
    let mut parts = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => continue,
            ".." => return Err(Refused::Traversal),
            s if s.contains('\\') || s.contains('\0') || s.contains(':') => {
                return Err(Refused::Traversal)
            }
            s => parts.push(s),
        }
    }
    Ok(parts.join("/"))
}

/// Resolve `rel` under the canonical `root`, following symlinks, and check the result is still
/// inside `root`. `Ok(None)` = does not exist; `Err(())` = escapes the root.
pub(crate) fn resolve_under(root: &Path, rel: &str) -> Result<Option<PathBuf>, ()> {
    let full = root.join(rel);
    match std::fs::canonicalize(&full) {
        Ok(c) if c.starts_with(root) => Ok(Some(c)),
        Ok(_) => Err(()),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_and_refuses() {
        assert_eq!(clean_path("/a/./b//c.cfg").unwrap(), "a/b/c.cfg");
        assert_eq!(clean_path("/").unwrap(), "");
        assert_eq!(clean_path("/ks%20file.cfg").unwrap(), "ks file.cfg");
        assert_eq!(clean_path("/../etc/passwd"), Err(Refused::Traversal));
        assert_eq!(clean_path("/a/%2e%2e/%2E%2E/x"), Err(Refused::Traversal));
        assert_eq!(clean_path("/a/%2e%2e%2fx"), Err(Refused::Traversal));
        assert_eq!(clean_path("/a\\..\\b"), Err(Refused::Traversal));
        assert_eq!(clean_path("/a%00b"), Err(Refused::Traversal));
        assert_eq!(clean_path("/c:/windows"), Err(Refused::Traversal));
        assert_eq!(clean_path("/%ff"), Err(Refused::BadEncoding));
        // An absolute path in the URL is just a path under the root.
        assert_eq!(clean_path("//etc/passwd").unwrap(), "etc/passwd");
    }
}

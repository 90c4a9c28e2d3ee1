//! Secrets: a wrapper type that never prints its value, and a process-wide redactor that every
//! log line, error message and typed boot command passes through.

use std::fmt;
use std::sync::{OnceLock, RwLock};

/// A secret value. `Display` and `Debug` print `***`; use [`Secret::expose`] deliberately.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value and register it with the redactor.
    pub fn new(value: impl Into<String>) -> Self {
        let v = value.into();
        register(&v);
        Secret(v)
    }
    /// Wrap a value without registering it for global redaction: for identifiers that live in
    /// a secret store next to real secrets (user names, server names), which still print `***`
    /// through this type but would otherwise mask every path or log line containing e.g. `root`.
    pub fn identifier(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

fn registry() -> &'static RwLock<Vec<String>> {
    static R: OnceLock<RwLock<Vec<String>>> = OnceLock::new();
    R.get_or_init(|| RwLock::new(Vec::new()))
}

/// Register a value that must never be shown. Values shorter than 3 characters are ignored
/// (redacting "a" everywhere would make output unreadable and protects nothing).
pub fn register(value: &str) {
    if value.len() < 3 {
        return;
    }
    let mut r = registry().write().unwrap_or_else(|e| e.into_inner());
    if !r.iter().any(|v| v == value) {
        r.push(value.to_string());
        // Longest first so that a secret containing another is replaced whole.
        r.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }
}

/// Keys of a secret-store entry whose values name things rather than unlock them. Their values
/// are not registered for redaction (see [`Secret::identifier`]).
pub fn is_identifier_key(key: &str) -> bool {
    matches!(
        key.to_ascii_lowercase().as_str(),
        "username" | "user" | "server" | "host" | "hostname" | "url" | "address" | "domain"
    )
}

/// Replace every registered secret in `text` with `***`.
pub fn redact(text: &str) -> String {
    let r = registry().read().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_string();
    for v in r.iter() {
        if out.contains(v.as_str()) {
            out = out.replace(v.as_str(), "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2-xyz");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(redact("pw=hunter2-xyz!"), "pw=***!");
    }
}

//! Secrets: a wrapper type that never prints its value, and the [`Registry`] of values that
//! every log line, event, error message and typed boot command of a build is redacted against.
//!
//! Each build has its own registry (in its [`BuildContext`](crate::build::BuildContext)), so
//! builds that share a process never see, nor mask, each other's secrets. The configuration
//! engine registers the values it reads from a secret store while it resolves a target; it is
//! synchronous, so it finds the build's registry through [`Registry::scope`] (a thread-local
//! set for the duration of the resolution). Outside any scope, values go to a process-wide
//! fallback registry, which is what a one-shot CLI command uses.

use std::cell::RefCell;
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};

/// A secret value. `Display` and `Debug` print `***`; use [`Secret::expose`] deliberately.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value and register it with the current registry (see the module docs).
    pub fn new(value: impl Into<String>) -> Self {
        let v = value.into();
        register(&v);
        Secret(v)
    }

    /// Wrap a value without registering it for redaction: for identifiers that live in a
    /// secret store next to real secrets (user names, server names), which still print `***`
    /// through this type but would otherwise mask every path or log line containing e.g. `root`.
    pub fn identifier(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself.
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

/// Values that must never be shown. Cheap to clone: clones share the values.
#[derive(Clone, Default)]
pub struct Registry {
    values: Arc<RwLock<Vec<String>>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Registry({} values)", self.len())
    }
}

thread_local! {
    static SCOPE: RefCell<Option<Registry>> = const { RefCell::new(None) };
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Register `value`. Values shorter than 3 characters are ignored (redacting "a"
    /// everywhere would make output unreadable and protects nothing).
    pub fn register(&self, value: &str) {
        if value.len() < 3 {
            return;
        }
        let mut r = self.values.write().unwrap_or_else(|e| e.into_inner());
        if !r.iter().any(|v| v == value) {
            r.push(value.to_string());
            // Longest first so that a secret containing another is replaced whole.
            r.sort_by_key(|v| std::cmp::Reverse(v.len()));
        }
    }

    /// Wrap `value` as a [`Secret`] registered here.
    pub fn secret(&self, value: impl Into<String>) -> Secret {
        let v = value.into();
        self.register(&v);
        Secret(v)
    }

    /// Replace every registered value in `text` with `***`.
    pub fn redact(&self, text: &str) -> String {
        let r = self.values.read().unwrap_or_else(|e| e.into_inner());
        let mut out = text.to_string();
        for v in r.iter() {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "***");
            }
        }
        out
    }

    /// How many values are registered.
    pub fn len(&self) -> usize {
        self.values.read().map(|r| r.len()).unwrap_or(0)
    }

    /// No values registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Run `f` (synchronous code on this thread, such as resolving a target) with this
    /// registry as the one [`register`], [`redact`] and [`Secret::new`] use.
    pub fn scope<T>(&self, f: impl FnOnce() -> T) -> T {
        struct Restore(Option<Registry>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let prev = self.0.take();
                SCOPE.with(|s| *s.borrow_mut() = prev);
            }
        }
        let prev = SCOPE.with(|s| s.borrow_mut().replace(self.clone()));
        let _restore = Restore(prev);
        f()
    }

    /// The registry in scope on this thread, else the process-wide fallback.
    pub fn current() -> Registry {
        SCOPE
            .with(|s| s.borrow().clone())
            .unwrap_or_else(|| fallback().clone())
    }
}

fn fallback() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::new)
}

/// Register `value` with the current registry (see [`Registry::current`]).
pub fn register(value: &str) {
    Registry::current().register(value)
}

/// Keys of a secret-store entry whose values name things rather than unlock them. Their values
/// are not registered for redaction (see [`Secret::identifier`]).
pub fn is_identifier_key(key: &str) -> bool {
    matches!(
        key.to_ascii_lowercase().as_str(),
        "username" | "user" | "server" | "host" | "hostname" | "url" | "address" | "domain"
    )
}

/// Replace every value of the current registry in `text` with `***`. Engines use their
/// build's registry instead (`Events` and the provisioners hold it).
pub fn redact(text: &str) -> String {
    Registry::current().redact(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let reg = Registry::new();
        let s = reg.scope(|| Secret::new("hunter2-xyz"));
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(reg.redact("pw=hunter2-xyz!"), "pw=***!");
    }

    #[test]
    fn registries_are_separate_and_scopes_nest() {
        let a = Registry::new();
        let b = Registry::new();
        a.scope(|| {
            register("alpha-secret");
            b.scope(|| register("beta-secret"));
            register("alpha-two");
        });
        assert_eq!(a.redact("alpha-secret beta-secret"), "*** beta-secret");
        assert_eq!(b.redact("alpha-secret beta-secret"), "alpha-secret ***");
        assert_eq!(a.len(), 2);
        // Outside the scopes nothing of theirs is redacted.
        assert_eq!(redact("alpha-secret"), "alpha-secret");
    }
}

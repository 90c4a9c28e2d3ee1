//! The environment and working directory the configuration engine reads (`XDG_*`, `HOME`,
//! `OSIMAGER_*`, `VAULT_*`, the `env` marker, relative paths). By default they are this
//! process's; a build that has its own (a server running builds for different users, a test
//! running two builds at once) resolves inside [`scope`], which makes the configuration engine
//! see that build's instead. Resolution is synchronous, so a thread-local is enough.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

/// A process view: environment variables and working directory.
#[derive(Debug, Clone)]
pub struct View {
    pub vars: Arc<BTreeMap<String, String>>,
    pub cwd: PathBuf,
}

thread_local! {
    static SCOPE: RefCell<Option<View>> = const { RefCell::new(None) };
}

/// Run `f` with `view` as the environment and working directory the configuration reads.
pub fn scope<T>(view: View, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<View>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            SCOPE.with(|s| *s.borrow_mut() = prev);
        }
    }
    let prev = SCOPE.with(|s| s.borrow_mut().replace(view));
    let _restore = Restore(prev);
    f()
}

/// An environment variable (the scope's, else the process's).
pub fn var_os(name: &str) -> Option<OsString> {
    SCOPE
        .with(|s| {
            s.borrow()
                .as_ref()
                .map(|v| v.vars.get(name).map(OsString::from))
        })
        .unwrap_or_else(|| std::env::var_os(name))
}

/// An environment variable as UTF-8.
pub fn var(name: &str) -> Option<String> {
    var_os(name).and_then(|v| v.into_string().ok())
}

/// The working directory (the scope's, else the process's).
pub fn current_dir() -> PathBuf {
    SCOPE
        .with(|s| s.borrow().as_ref().map(|v| v.cwd.clone()))
        .unwrap_or_else(|| std::env::current_dir().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_replaces_the_process_view() {
        let mut vars = BTreeMap::new();
        vars.insert("OSIMAGER_ENV_TEST".to_string(), "scoped".to_string());
        let view = View {
            vars: Arc::new(vars),
            cwd: PathBuf::from("/scoped"),
        };
        let (v, home, cwd) = scope(view, || {
            (var("OSIMAGER_ENV_TEST"), var("HOME"), current_dir())
        });
        assert_eq!(v.as_deref(), Some("scoped"));
        assert_eq!(home, None, "the process's HOME is not visible in the scope");
        assert_eq!(cwd, PathBuf::from("/scoped"));
        assert_eq!(var("OSIMAGER_ENV_TEST"), None);
    }
}

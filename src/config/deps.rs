//! What a computation of the configuration engine read, so that its result can be kept on
//! disk and reused exactly as long as nothing it read has changed (the index cache,
//! `index_cache.rs`). While [`record`] runs, the configuration engine reports every data file
//! it reads (path, size, modification time), every directory it lists, every path whose
//! existence it checks and every environment variable it reads; outside [`record`] the
//! reports cost one thread-local check.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A file's identity as far as the cache cares: size and modification time (ns), or absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: i128,
    pub kind: u8,
}

const MISSING: Stamp = Stamp {
    size: 0,
    mtime_ns: 0,
    kind: 0,
};

/// Stat `p` (following symlinks).
pub fn stamp(p: &Path) -> Stamp {
    match std::fs::metadata(p) {
        Err(_) => MISSING,
        Ok(m) => Stamp {
            size: if m.is_dir() { 0 } else { m.len() },
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
            kind: if m.is_dir() {
                2
            } else if m.is_file() {
                1
            } else {
                3
            },
        },
    }
}

/// Everything one computation depended on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Deps {
    /// Files read, directories listed, paths checked: their stamps when they were used.
    pub paths: BTreeMap<PathBuf, Stamp>,
    /// Environment variables read, and their values.
    pub env: BTreeMap<String, Option<String>>,
}

impl Deps {
    /// Whether everything is as it was (one `stat` per path, one `var` lookup per variable:
    /// the configuration engine's, `super::env::var`).
    pub fn unchanged(&self, var: impl Fn(&str) -> Option<String>) -> bool {
        self.env
            .iter()
            .all(|(k, v)| var(k).as_deref() == v.as_deref())
            && self.paths.iter().all(|(p, s)| stamp(p) == *s)
    }
}

thread_local! {
    static REC: RefCell<Option<Deps>> = const { RefCell::new(None) };
}

/// Run `f`, recording what it reads.
pub fn record<T>(f: impl FnOnce() -> T) -> (T, Deps) {
    let prev = REC.with(|r| r.borrow_mut().replace(Deps::default()));
    let out = f();
    let deps = REC.with(|r| std::mem::replace(&mut *r.borrow_mut(), prev));
    (out, deps.unwrap_or_default())
}

fn active() -> bool {
    REC.with(|r| r.borrow().is_some())
}

/// A file was read, a directory listed or a path checked. A path that does not exist is
/// recorded as its parent directory's stamp instead: a child appearing changes the directory's
/// modification time, and the hundreds of ISO files `list` looks for in one `iso_path` cost one
/// `stat` to check. (Not seen: a dangling symlink whose target appears elsewhere.)
pub fn path(p: &Path) {
    if !active() {
        return;
    }
    let s = stamp(p);
    let (key, s) = match (s == MISSING, p.parent()) {
        (true, Some(dir)) if !dir.as_os_str().is_empty() => (dir.to_path_buf(), stamp(dir)),
        _ => (p.to_path_buf(), s),
    };
    REC.with(|r| {
        if let Some(d) = r.borrow_mut().as_mut() {
            d.paths.entry(key).or_insert(s);
        }
    });
}

/// An environment variable was read.
pub fn env(name: &str, value: Option<&str>) {
    if !active() {
        return;
    }
    REC.with(|r| {
        if let Some(d) = r.borrow_mut().as_mut() {
            d.env
                .entry(name.to_string())
                .or_insert_with(|| value.map(str::to_string));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_what_was_read_and_sees_changes() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a.json");
        std::fs::write(&f, "{}").unwrap();
        let missing = d.path().join("iso/x.iso");
        let ((), deps) = record(|| {
            path(&f);
            path(&missing);
        });
        assert!(deps.paths.contains_key(&f));
        assert!(deps.paths.contains_key(&d.path().join("iso")));
        assert!(deps.unchanged(|k| std::env::var(k).ok()));
        std::fs::create_dir(d.path().join("iso")).unwrap();
        assert!(
            !deps.unchanged(|k| std::env::var(k).ok()),
            "a directory that appears is a change"
        );
        let ((), deps) = record(|| path(&f));
        std::fs::write(&f, "{ }").unwrap();
        assert!(!deps.unchanged(|k| std::env::var(k).ok()), "size changed");
        // Outside `record` nothing is kept.
        path(&f);
    }
}

//! The index of targets kept on disk between runs (`list`, `dump`, `defs`, `build` all start
//! from it): `$XDG_CACHE_HOME/osimager/index/<digest>.bin`.
//!
//! Reused only when nothing it was made from changed, checked exactly on every run:
//! * the file name is a digest of this osimager binary (version, size and modification time of
//!   the executable), the settings (every value), the two data layers and the working
//!   directory — another binary or other settings use another file;
//! * inside, [`Deps`]: every data file read (path, size, modification time in ns), every
//!   directory listed, every path checked (an ISO in `iso_path`: its directory), every
//!   environment variable read (`$>VAR<$` markers) and its value.
//!
//! Anything unreadable or different is a miss: the index is computed as before and the file
//! rewritten (atomically: a temporary file renamed over it). `OSIMAGER_INDEX_CACHE=0` turns
//! the cache off.

use super::deps::{self, Deps, Stamp};
use super::index_codec::{decode, encode};
use super::{Config, ConfigError, Index};
use sha2::{Digest as _, Sha256};
use std::path::PathBuf;

/// Bumped when the format or the index's meaning changes.
const FORMAT: u32 = 2;

fn cache_dir() -> Option<PathBuf> {
    if super::env::var("OSIMAGER_INDEX_CACHE").as_deref() == Some("0") {
        return None;
    }
    let base = match super::env::var("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => super::settings::home_dir().join(".cache"),
    };
    Some(base.join("osimager").join("index"))
}

/// The cache file for this binary, settings and layers.
fn file(cfg: &Config) -> Option<PathBuf> {
    let dir = cache_dir()?;
    let exe: Stamp = std::env::current_exe().map(|p| deps::stamp(&p)).ok()?;
    let mut h = Sha256::new();
    h.update(format!(
        "{FORMAT} {} {} {}\n",
        env!("CARGO_PKG_VERSION"),
        exe.size,
        exe.mtime_ns
    ));
    h.update(serde_json::to_string(&cfg.settings.values).ok()?);
    h.update(b"\n");
    h.update(cfg.layers.user.as_os_str().as_encoded_bytes());
    h.update(b"\n");
    h.update(cfg.layers.system.as_os_str().as_encoded_bytes());
    h.update(b"\n");
    h.update(super::env::current_dir().as_os_str().as_encoded_bytes());
    Some(dir.join(format!("{}.bin", &hex::encode(h.finalize())[..32])))
}

/// The cached index, if it is still exact.
fn load(path: &std::path::Path) -> Option<Index> {
    let bytes = std::fs::read(path).ok()?;
    let (deps, entries) = decode(FORMAT, &bytes)?;
    deps.unchanged(super::env::var).then_some(Index { entries })
}

/// A file changed less than this long before the index was made could change again within
/// the same modification-time tick without a visible difference: then the index is not kept
/// (git's "racily clean" problem). Only files edited a moment ago (tests, scripts) hit this.
const RACY_NS: i128 = 2_000_000_000;

fn store(path: &std::path::Path, index: &Index, deps: Deps) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    if deps.paths.values().any(|s| s.mtime_ns > now - RACY_NS) {
        return;
    }
    let text = encode(FORMAT, &deps, &index.entries);
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(
        ".{}.{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    if std::fs::write(&tmp, text).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// The index: from the cache when exact, else computed with `make` and cached.
pub fn index(
    cfg: &Config,
    make: impl FnOnce(&Config) -> Result<Index, ConfigError>,
) -> Result<Index, ConfigError> {
    let path = file(cfg);
    if let Some(i) = path.as_deref().and_then(load) {
        return Ok(i);
    }
    let (result, deps) = deps::record(|| make(cfg));
    if let (Ok(i), Some(p)) = (&result, &path) {
        store(p, i, deps);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IndexEntry;

    fn entry(path: &str) -> IndexEntry {
        IndexEntry {
            dist: "os".into(),
            version: "1".into(),
            arch: "x86_64".into(),
            path: path.into(),
            iso_url: String::new(),
            iso_local: false,
            disk_image_url: None,
            disk_image_local: false,
        }
    }

    #[test]
    fn a_stored_index_is_used_until_a_dependency_changes() {
        let d = tempfile::tempdir().unwrap();
        let spec = d.path().join("spec.json");
        std::fs::write(&spec, "{}").unwrap();
        let cache = d.path().join("cache.bin");
        let index = Index {
            entries: vec![("os-1-x86_64".into(), entry("a"))],
        };
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        let f = std::fs::File::options().write(true).open(&spec).unwrap();
        f.set_modified(old).unwrap();
        let ((), deps) = deps::record(|| deps::path(&spec));
        store(&cache, &index, deps);
        assert_eq!(load(&cache).unwrap().entries, index.entries);
        std::fs::write(&spec, "{\"x\": 1}").unwrap();
        assert!(load(&cache).is_none());
        std::fs::write(&cache, "not json").unwrap();
        assert!(load(&cache).is_none());
        // A file modified a moment ago: not kept.
        let _ = std::fs::remove_file(&cache);
        let ((), deps) = deps::record(|| deps::path(&spec));
        store(&cache, &index, deps);
        assert!(!cache.exists());
    }
}

//! The cache directory.
//!
//! ```text
//! <dir>/salt                 32 random bytes (0600), see key.rs
//! <dir>/lock                 held exclusively while an entry is committed or entries evicted
//! <dir>/entries/<key>/       one entry: entry.json, the disk files (read-only), `used`
//! <dir>/locks/<key>          flock: shared by every build using the entry, exclusive to remove it
//! <dir>/staging/<key>.<id>/  an entry being written; renamed into entries/ when complete
//! ```
//!
//! An entry appears only complete (it is written in `staging/` and renamed: rename is atomic),
//! is never modified afterwards, and is removed only by whoever holds its lock exclusively,
//! which no build using it lets happen. Two builds that store the same key both write their
//! own staging directory; the first rename wins and the second discards its copy. The
//! modification time of `used` is the entry's last use (LRU eviction).

use super::key::KeyInputs;
use super::lock::{self, Locked, Mode};
use super::CacheError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// `entry.json`: what the entry is, what it was made from (input digests only, never values).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EntryMeta {
    pub format: u32,
    pub key: String,
    pub target: String,
    pub name: String,
    pub builder_type: String,
    pub osimager: String,
    /// Seconds since the epoch.
    pub created: u64,
    /// Role (`disk0`, `efivars`, …) → file name in the entry.
    pub files: BTreeMap<String, String>,
    pub inputs: KeyInputs,
    /// Role → size and modification time of the file when the entry was committed (set by
    /// [`Store::commit`]); a file that no longer matches was truncated or changed since, and
    /// the entry is never booted. Entries written before this was recorded have none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stamps: BTreeMap<String, FileStamp>,
}

/// A file's size and modification time, as recorded in `entry.json`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileStamp {
    pub size: u64,
    pub mtime_ns: u128,
}

impl FileStamp {
    fn of(path: &Path) -> std::io::Result<FileStamp> {
        let m = std::fs::metadata(path)?;
        let mtime_ns = m
            .modified()?
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Ok(FileStamp {
            size: m.len(),
            mtime_ns,
        })
    }
}

/// An entry as `cache list` shows it.
#[derive(Debug, Clone)]
pub struct EntryInfo {
    pub meta: EntryMeta,
    pub dir: PathBuf,
    /// Bytes allocated on disk.
    pub size: u64,
    pub last_used: SystemTime,
    /// A build holds it now.
    pub in_use: bool,
}

/// A build's hold on an entry: the entry cannot be removed while this lives.
#[derive(Debug)]
pub struct Lease {
    pub meta: EntryMeta,
    pub dir: PathBuf,
    _lock: Locked,
}

impl Lease {
    /// Role → absolute path of the entry's files.
    pub fn files(&self) -> Vec<(String, PathBuf)> {
        self.meta
            .files
            .iter()
            .map(|(role, f)| (role.clone(), self.dir.join(f)))
            .collect()
    }
}

/// What [`Store::commit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    Stored,
    /// Another build stored the same key first; ours was discarded.
    AlreadyThere,
    /// `refresh`: the old entry was replaced.
    Replaced,
    /// `refresh`: the old entry is in use by another build and was kept; ours was discarded.
    InUse,
}

/// An entry removed to make room.
#[derive(Debug, Clone)]
pub struct Evicted {
    pub key: String,
    pub target: String,
    pub size: u64,
}

/// The cache directory (see the module docs).
#[derive(Debug, Clone)]
pub struct Store {
    pub dir: PathBuf,
    /// Largest total size of the entries, in bytes.
    pub max_size: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn valid_key(key: &str) -> bool {
    key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Store {
    /// Open (and create) the cache directory.
    pub fn open(dir: impl Into<PathBuf>, max_size: u64) -> Result<Store, CacheError> {
        let dir = dir.into();
        for d in [
            &dir,
            &dir.join("entries"),
            &dir.join("locks"),
            &dir.join("staging"),
        ] {
            std::fs::create_dir_all(d).map_err(io(d))?;
        }
        // Entries may hold answer files' effects (passwords set in the image): private.
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        Ok(Store { dir, max_size })
    }

    fn entry_dir(&self, key: &str) -> PathBuf {
        self.dir.join("entries").join(key)
    }

    fn lock_file(&self, key: &str) -> PathBuf {
        self.dir.join("locks").join(key)
    }

    /// The salt of this cache (made on first use).
    pub fn salt(&self) -> Result<Vec<u8>, CacheError> {
        let path = self.dir.join("salt");
        if let Ok(b) = std::fs::read(&path) {
            if b.len() >= 16 {
                return Ok(b);
            }
        }
        let tmp = self.dir.join(format!("salt.{}", std::process::id()));
        let salt: [u8; 32] = rand::random();
        std::fs::write(&tmp, salt).map_err(io(&tmp))?;
        let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600));
        // Whoever links first wins; everyone reads the winner's.
        let _ = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        std::fs::read(&path).map_err(io(&path))
    }

    /// Use the entry `key` if it exists: a shared hold on it, its last use updated. An entry
    /// that is damaged (see [`inspect`]) is never handed out: it is removed unless another
    /// build holds it, and [`CacheError::Damaged`] says what was wrong.
    pub fn lease(&self, key: &str) -> Result<Option<Lease>, CacheError> {
        if !valid_key(key) {
            return Ok(None);
        }
        let lf = self.lock_file(key);
        let held = lock::lock(&lf, Mode::Shared).map_err(io(&lf))?;
        let dir = self.entry_dir(key);
        if !dir.exists() {
            return Ok(None);
        }
        let problem = match inspect(&dir, key) {
            Ok(meta) => {
                touch(&dir.join("used"));
                return Ok(Some(Lease {
                    meta,
                    dir,
                    _lock: held,
                }));
            }
            Err(problem) => problem,
        };
        drop(held);
        if !dir.exists() {
            return Ok(None); // removed meanwhile (prune, refresh): not damage
        }
        let removed = self.remove(key)?;
        Err(CacheError::Damaged {
            dir,
            problem,
            removed,
        })
    }

    /// Every complete entry, most recently used first.
    pub fn entries(&self) -> Vec<EntryInfo> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(self.dir.join("entries")) else {
            return out;
        };
        for e in rd.flatten() {
            let dir = e.path();
            let Some(meta) = read_meta(&dir) else {
                continue;
            };
            let in_use = !matches!(
                lock::try_lock(&self.lock_file(&meta.key), Mode::Exclusive),
                Ok(Some(_))
            );
            let last_used = std::fs::metadata(dir.join("used"))
                .and_then(|m| m.modified())
                .unwrap_or(UNIX_EPOCH + std::time::Duration::from_secs(meta.created));
            out.push(EntryInfo {
                size: dir_size(&dir),
                meta,
                dir,
                last_used,
                in_use,
            });
        }
        out.sort_by_key(|e| std::cmp::Reverse(e.last_used));
        out
    }

    /// The most recently used entry made for `target` (to say what changed on a miss).
    pub fn previous_for(&self, target: &str) -> Option<EntryInfo> {
        self.entries().into_iter().find(|e| e.meta.target == target)
    }

    /// A fresh staging directory for `key`.
    pub fn stage(&self, key: &str) -> Result<PathBuf, CacheError> {
        let d = self.dir.join("staging").join(format!(
            "{key}.{}.{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&d).map_err(io(&d))?;
        Ok(d)
    }

    /// Put the file `src` into `staging` as `name`: a hard link when both are on one file
    /// system (instant; the build never writes the file again), else a copy. Read-only.
    pub fn add_file(staging: &Path, name: &str, src: &Path) -> Result<(), CacheError> {
        let dst = staging.join(name);
        if std::fs::hard_link(src, &dst).is_err() {
            std::fs::copy(src, &dst).map_err(io(&dst))?;
            std::fs::File::open(&dst)
                .and_then(|f| f.sync_all())
                .map_err(io(&dst))?;
        }
        let _ = std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o444));
        Ok(())
    }

    /// Move a complete staging directory into place as entry `meta.key`. `replace`
    /// (`--cache refresh`) replaces an existing entry unless a build uses it.
    pub fn commit(
        &self,
        staging: &Path,
        meta: &EntryMeta,
        replace: bool,
    ) -> Result<Committed, CacheError> {
        let mut meta = meta.clone();
        for (role, f) in &meta.files {
            let p = staging.join(f);
            let st = FileStamp::of(&p).map_err(io(&p))?;
            meta.stamps.insert(role.clone(), st);
        }
        let meta = &meta;
        let text = serde_json::to_string_pretty(meta)
            .map_err(|e| CacheError::Msg(format!("writing entry.json: {e}")))?;
        let mf = staging.join("entry.json");
        std::fs::write(&mf, text).map_err(io(&mf))?;
        touch(&staging.join("used"));
        let gl = self.dir.join("lock");
        let _global = lock::lock(&gl, Mode::Exclusive).map_err(io(&gl))?;
        let dst = self.entry_dir(&meta.key);
        let mut outcome = Committed::Stored;
        if dst.exists() {
            if !replace {
                let _ = std::fs::remove_dir_all(staging);
                return Ok(Committed::AlreadyThere);
            }
            match self.take_out(&meta.key)? {
                true => outcome = Committed::Replaced,
                false => {
                    let _ = std::fs::remove_dir_all(staging);
                    return Ok(Committed::InUse);
                }
            }
        }
        std::fs::rename(staging, &dst).map_err(io(&dst))?;
        Ok(outcome)
    }

    /// Remove entry `key` unless a build holds it; `Ok(false)` when it is in use. The caller
    /// holds the global lock or does not need it (a removal is atomic: rename, then delete).
    fn take_out(&self, key: &str) -> Result<bool, CacheError> {
        let lf = self.lock_file(key);
        let Some(_held) = lock::try_lock(&lf, Mode::Exclusive).map_err(io(&lf))? else {
            return Ok(false);
        };
        let dir = self.entry_dir(key);
        let trash = self.dir.join("staging").join(format!(
            "removed-{key}.{}.{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        match std::fs::rename(&dir, &trash) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(io(&dir)(e)),
        }
        let _ = std::fs::remove_dir_all(&trash);
        Ok(true)
    }

    /// Remove entry `key` (`cache prune --key`). `Ok(false)`: in use, kept.
    pub fn remove(&self, key: &str) -> Result<bool, CacheError> {
        let gl = self.dir.join("lock");
        let _global = lock::lock(&gl, Mode::Exclusive).map_err(io(&gl))?;
        self.take_out(key)
    }

    /// Remove least recently used entries not in use until the total is at most `limit`
    /// (default: [`Store::max_size`]). Also clears staging left by crashed builds.
    pub fn evict(&self, limit: Option<u64>) -> Result<Vec<Evicted>, CacheError> {
        let limit = limit.unwrap_or(self.max_size);
        let gl = self.dir.join("lock");
        let _global = lock::lock(&gl, Mode::Exclusive).map_err(io(&gl))?;
        self.clear_stale_staging();
        self.clear_unreadable();
        let entries = self.entries();
        let mut total: u64 = entries.iter().map(|e| e.size).sum();
        let mut out = Vec::new();
        for e in entries.iter().rev() {
            if total <= limit {
                break;
            }
            if e.in_use {
                continue;
            }
            if self.take_out(&e.meta.key)? {
                total = total.saturating_sub(e.size);
                out.push(Evicted {
                    key: e.meta.key.clone(),
                    target: e.meta.target.clone(),
                    size: e.size,
                });
            }
        }
        Ok(out)
    }

    /// Entries whose `entry.json` cannot be read (never listed, never used, never evicted
    /// otherwise), unless a build holds them. The caller holds the global lock.
    fn clear_unreadable(&self) {
        let Ok(rd) = std::fs::read_dir(self.dir.join("entries")) else {
            return;
        };
        for e in rd.flatten() {
            let key = e.file_name().to_string_lossy().into_owned();
            if valid_key(&key) && read_meta(&e.path()).is_none() {
                let _ = self.take_out(&key);
            }
        }
    }

    /// Staging directories of processes that no longer exist.
    fn clear_stale_staging(&self) {
        let Ok(rd) = std::fs::read_dir(self.dir.join("staging")) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name.split('.').nth(1).and_then(|p| p.parse::<i32>().ok());
            // SAFETY: kill with signal 0 only checks that the process exists.
            let alive = pid.is_some_and(|p| unsafe { libc::kill(p, 0) } == 0);
            if !alive {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// The entry in `dir`, if it is whole: `entry.json` readable, of this format and naming
/// `key`, and every file it lists present with the size and modification time recorded when
/// it was stored. Otherwise what is wrong, for the user.
pub fn inspect(dir: &Path, key: &str) -> Result<EntryMeta, String> {
    let mf = dir.join("entry.json");
    let text = std::fs::read_to_string(&mf).map_err(|e| format!("entry.json: {e}"))?;
    let m: EntryMeta =
        serde_json::from_str(&text).map_err(|e| format!("entry.json is not valid: {e}"))?;
    if m.format != super::key::FORMAT {
        return Err(format!(
            "entry.json has format {} (this osimager writes {})",
            m.format,
            super::key::FORMAT
        ));
    }
    if m.key != key {
        return Err(format!("entry.json names another key ({})", m.key));
    }
    for (role, f) in &m.files {
        let p = dir.join(f);
        let now = FileStamp::of(&p).map_err(|e| format!("{f} ({role}): {e}"))?;
        match m.stamps.get(role) {
            Some(was) if was.size != now.size => {
                return Err(format!(
                    "{f} is {} bytes but was {} when stored (truncated or overwritten)",
                    now.size, was.size
                ))
            }
            Some(was) if was.mtime_ns != now.mtime_ns => {
                return Err(format!("{f} was modified after it was stored"))
            }
            _ => {}
        }
    }
    Ok(m)
}

fn read_meta(dir: &Path) -> Option<EntryMeta> {
    let text = std::fs::read_to_string(dir.join("entry.json")).ok()?;
    let m: EntryMeta = serde_json::from_str(&text).ok()?;
    (m.format == super::key::FORMAT).then_some(m)
}

fn touch(path: &Path) {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path);
    if let Ok(f) = f {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Bytes allocated by the files of `dir`.
fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.blocks() * 512)
                .sum()
        })
        .unwrap_or(0)
}

/// Seconds since the epoch, for [`EntryMeta::created`].
pub fn created_now() -> u64 {
    now_secs()
}

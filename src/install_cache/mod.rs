//! The install cache: the disk of a freshly installed guest, kept when it first answers on SSH
//! (before any provisioner), so that a later build whose install inputs are the same boots
//! that disk instead of installing again, and pays only for its provisioners.
//!
//! * [`key`]: what the key is made of, one digest per input so a miss says which input changed.
//! * [`store`]: the cache directory, its locks, LRU eviction, `osimager cache list|prune`.
//!
//! The native engine's steps `install_cache` (look up) and `save_install` (store) use it; a
//! driver takes part through the optional [`Driver::save_disk_state`] /
//! [`Driver::use_disk_state`](osimager_drivers::Driver::use_disk_state) capability.
//!
//! Default: **off**. A build with the cache is not a clean build: the installed system was
//! made by an earlier build (same ISO, answer files, boot command, hardware and disk keys —
//! but not necessarily the same packages, when the installer fetches them from a mirror whose
//! content the key cannot see; and the saved system has already booted once, so it shares SSH
//! host keys and machine-id with every image built from the same entry unless the playbook
//! regenerates them). `--cache use` is for iterating on provisioning; `--cache refresh`
//! reinstalls and replaces the entry.
//!
//! [`Driver::save_disk_state`]: osimager_drivers::Driver::save_disk_state

pub mod key;
pub mod lock;
pub mod store;

pub use key::{Change, KeyInputs};
pub use store::{Committed, EntryInfo, EntryMeta, Evicted, FileStamp, Lease, Store};

use std::path::PathBuf;

/// `--cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CacheMode {
    /// Always install from the media (default).
    #[default]
    Off,
    /// Boot a cached install when the key matches; otherwise install and store it.
    Use,
    /// Install from the media and replace the cached install.
    Refresh,
}

/// Default size limit of the cache directory (`--cache-max-size`).
pub const DEFAULT_MAX_SIZE: u64 = 20 << 30;

/// How a build uses the install cache.
#[derive(Debug, Clone, Default)]
pub struct CacheOptions {
    pub mode: CacheMode,
    /// Cache directory; default `<packer_cache_dir>/install` (`~/.cache/osimager/install`),
    /// from the plan ([`crate::plan::BuildInputs::install_cache_dir`]).
    pub dir: Option<PathBuf>,
    /// Size limit in bytes; default [`DEFAULT_MAX_SIZE`].
    pub max_size: Option<u64>,
}

/// Errors of the install cache. They never fail a build: the build goes on without the cache
/// and says why.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("install cache {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("install cache: {0}")]
    Msg(String),
    /// An entry that must not be booted (see [`store::inspect`]).
    #[error(
        "install cache: the entry {} is damaged ({problem}); {}",
        dir.display(),
        if *removed {
            "it was removed"
        } else {
            "it is in use by another build and was kept; remove it later with `osimager cache prune --all`"
        }
    )]
    Damaged {
        dir: PathBuf,
        problem: String,
        removed: bool,
    },
}

/// `20G`, `512M`, `1.5T`, `1073741824` (bytes; K/M/G/T are powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        None => (t, 1u64),
        Some((i, _)) => {
            let unit = t[i..]
                .trim_end_matches(['B', 'b', 'i'])
                .to_ascii_uppercase();
            let m = match unit.as_str() {
                "K" => 1u64 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1 << 40,
                _ => return Err(format!("{s:?}: unknown unit (use K, M, G or T)")),
            };
            (&t[..i], m)
        }
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 20G or 512M"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{s:?} is not a size such as 20G or 512M"));
    }
    Ok((v * mult as f64) as u64)
}

/// `1.5 GiB`.
pub fn fmt_size(n: u64) -> String {
    let f = n as f64;
    match n {
        _ if n >= 1 << 30 => format!("{:.1} GiB", f / (1u64 << 30) as f64),
        _ if n >= 1 << 20 => format!("{:.1} MiB", f / (1u64 << 20) as f64),
        _ if n >= 1 << 10 => format!("{:.1} KiB", f / 1024.0),
        _ => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("20G").unwrap(), 20 << 30);
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5X").is_err());
        assert_eq!(fmt_size(3 << 29), "1.5 GiB");
    }
}

//! Cheap verification of files already on disk (cache hits and local ISOs).
//!
//! A sidecar under `<cache_dir>/.verified/` (named by the SHA-1 of the file's absolute path)
//! records the size, mtime and digest seen the last time the file was hashed. When size and
//! mtime still match, the recorded digest is trusted; otherwise the file is hashed again.
//! Sidecars live in the cache, never next to a user's own ISO.

use super::{Digest, IsoError, Meter};
use serde::{Deserialize, Serialize};
use sha1::Digest as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Sidecar {
    path: PathBuf,
    size: u64,
    mtime_ns: u128,
    algo: String,
    hex: String,
}

fn sidecar_path(cache_dir: &Path, file: &Path) -> PathBuf {
    let abs = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let key = hex::encode(sha1::Sha1::digest(abs.to_string_lossy().as_bytes()));
    cache_dir.join(".verified").join(format!("{key}.json"))
}

fn stat(file: &Path) -> Result<(u64, u128), IsoError> {
    let m = std::fs::metadata(file).map_err(|e| IsoError::io(file, e))?;
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok((m.len(), mtime))
}

/// Hash a whole file with `algo`, showing progress.
pub(crate) async fn hash_file(
    file: &Path,
    algo: super::Algo,
    meter: &Meter,
) -> Result<String, IsoError> {
    let file = file.to_path_buf();
    let meter = meter.clone();
    tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::open(&file).map_err(|e| IsoError::io(&file, e))?;
        let total = f.metadata().map(|m| m.len()).ok();
        let mut h = algo.hasher();
        let mut prog = meter.bytes(&format!("verifying {}", file.display()), total, 0);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).map_err(|e| IsoError::io(&file, e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            prog.inc(n as u64);
        }
        prog.finish();
        Ok(hex::encode(h.finalize()))
    })
    .await
    .map_err(|e| IsoError::Network {
        url: String::new(),
        message: format!("hashing task failed: {e}"),
    })?
}

/// Check `file` against `expected`, trusting a matching sidecar. On mismatch the sidecar is
/// updated (so a second run does not hash again) and `IsoError::Mismatch` is returned.
pub(crate) async fn verify(
    file: &Path,
    expected: &Digest,
    url: &str,
    meter: &Meter,
    cache_dir: &Path,
) -> Result<(), IsoError> {
    let (size, mtime_ns) = stat(file)?;
    let sc_path = sidecar_path(cache_dir, file);
    let recorded: Option<Sidecar> = std::fs::read(&sc_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let actual = match recorded {
        Some(sc)
            if sc.size == size && sc.mtime_ns == mtime_ns && sc.algo == expected.algo.name() =>
        {
            tracing::debug!(
                "{}: verified earlier (size and mtime unchanged)",
                file.display()
            );
            sc.hex
        }
        _ => {
            let hex = hash_file(file, expected.algo, meter).await?;
            let sc = Sidecar {
                path: file.to_path_buf(),
                size,
                mtime_ns,
                algo: expected.algo.name().into(),
                hex: hex.clone(),
            };
            record(&sc_path, &sc);
            hex
        }
    };
    if actual == expected.hex {
        Ok(())
    } else {
        Err(IsoError::Mismatch {
            url: url.to_string(),
            expected: expected.to_string(),
            actual: format!("{}:{actual}", expected.algo.name()),
        })
    }
}

/// Record that `file` (just written and verified) has digest `d`.
pub(crate) fn remember(cache_dir: &Path, file: &Path, d: &Digest) {
    if let Ok((size, mtime_ns)) = stat(file) {
        let sc = Sidecar {
            path: file.to_path_buf(),
            size,
            mtime_ns,
            algo: d.algo.name().into(),
            hex: d.hex.clone(),
        };
        record(&sidecar_path(cache_dir, file), &sc);
    }
}

/// Drop the sidecar of a file that was removed.
pub(crate) fn forget(cache_dir: &Path, file: &Path) {
    let _ = std::fs::remove_file(sidecar_path(cache_dir, file));
}

fn record(sc_path: &Path, sc: &Sidecar) {
    // Best effort: a cache we cannot write to only costs a re-hash next time.
    if let Some(dir) = sc_path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(text) = serde_json::to_vec(sc) {
        let tmp = sc_path.with_extension("json.tmp");
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, sc_path);
        }
    }
}

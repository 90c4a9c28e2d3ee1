//! Serving a build's files: confined to what the build recorded, never through a symlink,
//! with HTTP Range.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Why a file is not served.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Gone, a symlink, not a regular file, or outside the directory it must be in.
    #[error("{0}")]
    Refused(String),
    /// Could not be read.
    #[error("{0}")]
    Io(String),
}

/// Open `path` for reading: not through a symlink (the last component), a regular file, and —
/// when `within` is given — inside that directory once every symlink of its parents is
/// resolved.
pub fn open_confined(path: &Path, within: Option<&Path>) -> Result<std::fs::File, FileError> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(base) = within {
        let base = base
            .canonicalize()
            .map_err(|e| FileError::Refused(format!("the build's directory is gone: {e}")))?;
        let parent = path
            .parent()
            .and_then(|p| p.canonicalize().ok())
            .ok_or_else(|| FileError::Refused("the file's directory is gone".into()))?;
        if !parent.starts_with(&base) {
            return Err(FileError::Refused(
                "the file is not inside the build's output directory".into(),
            ));
        }
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => FileError::Refused("the file was replaced by a symlink".into()),
            Some(libc::ENOENT) => FileError::Refused("the file is gone".into()),
            _ => FileError::Io(e.to_string()),
        })?;
    let meta = f.metadata().map_err(|e| FileError::Io(e.to_string()))?;
    if !meta.is_file() {
        return Err(FileError::Refused("not a regular file".into()));
    }
    Ok(f)
}

/// Which bytes a `Range` header asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Ranged {
    /// The whole file (no header, or one this server does not split: several ranges).
    Full,
    /// `start..=end`.
    Part(u64, u64),
    /// Nothing of the file (416).
    Unsatisfiable,
}

/// Parse `bytes=a-b`, `bytes=a-`, `bytes=-n` against a file of `len` bytes.
pub fn parse_range(h: Option<&str>, len: u64) -> Ranged {
    let Some(spec) = h.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ranged::Full;
    };
    if spec.contains(',') {
        return Ranged::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ranged::Unsatisfiable;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (true, false) => b
            .parse::<u64>()
            .ok()
            .and_then(|n| (n > 0 && len > 0).then(|| (len.saturating_sub(n), len - 1))),
        (false, true) => a
            .parse::<u64>()
            .ok()
            .and_then(|s| (s < len).then(|| (s, len - 1))),
        (false, false) => match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(s), Ok(e)) if s <= e && s < len => Some((s, e.min(len - 1))),
            _ => None,
        },
        (true, true) => None,
    };
    match parsed {
        Some((s, e)) => Ranged::Part(s, e),
        None => Ranged::Unsatisfiable,
    }
}

/// A response streaming `file` (or the part `Range` asks for).
pub async fn respond(
    file: std::fs::File,
    headers: &HeaderMap,
    content_type: &str,
    download_name: Option<&str>,
) -> Result<Response, FileError> {
    let len = file
        .metadata()
        .map_err(|e| FileError::Io(e.to_string()))?
        .len();
    let range = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        len,
    );
    let mut b = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-store");
    if let Some(n) = download_name {
        let safe: String = n
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() && c != '"' && c != '\\' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
            b = b.header(header::CONTENT_DISPOSITION, v);
        }
    }
    let mut f = tokio::fs::File::from_std(file);
    let (status, start, count) = match range {
        Ranged::Full => (StatusCode::OK, 0, len),
        Ranged::Part(s, e) => {
            b = b.header(header::CONTENT_RANGE, format!("bytes {s}-{e}/{len}"));
            (StatusCode::PARTIAL_CONTENT, s, e - s + 1)
        }
        Ranged::Unsatisfiable => {
            return Ok(b
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                .body(Body::empty())
                .unwrap_or_default());
        }
    };
    if start > 0 {
        f.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| FileError::Io(e.to_string()))?;
    }
    let stream = tokio_util::io::ReaderStream::with_capacity(f.take(count), 256 * 1024);
    Ok(b.status(status)
        .header(header::CONTENT_LENGTH, count)
        .body(Body::from_stream(stream))
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), Ranged::Full);
        assert_eq!(parse_range(Some("bytes=0-3"), 10), Ranged::Part(0, 3));
        assert_eq!(parse_range(Some("bytes=4-"), 10), Ranged::Part(4, 9));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Ranged::Part(7, 9));
        assert_eq!(parse_range(Some("bytes=-30"), 10), Ranged::Part(0, 9));
        assert_eq!(parse_range(Some("bytes=5-100"), 10), Ranged::Part(5, 9));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Ranged::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Ranged::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=x-2"), 10), Ranged::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), Ranged::Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), Ranged::Full);
        assert_eq!(parse_range(Some("bytes=0-0"), 0), Ranged::Unsatisfiable);
    }

    #[test]
    fn confinement_refuses_symlinks_and_escapes() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("disk"), b"x").unwrap();
        std::fs::write(d.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(d.path().join("secret"), out.join("link")).unwrap();
        std::os::unix::fs::symlink(d.path(), out.join("up")).unwrap();
        assert!(open_confined(&out.join("disk"), Some(&out)).is_ok());
        assert!(matches!(
            open_confined(&out.join("link"), Some(&out)),
            Err(FileError::Refused(_))
        ));
        assert!(matches!(
            open_confined(&out.join("up/secret"), Some(&out)),
            Err(FileError::Refused(_))
        ));
        assert!(matches!(
            open_confined(&out, None),
            Err(FileError::Refused(_))
        ));
        assert!(matches!(
            open_confined(&out.join("nope"), None),
            Err(FileError::Refused(_))
        ));
    }
}

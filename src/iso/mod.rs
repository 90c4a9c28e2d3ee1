//! ISO acquisition for the native engine, with Packer's semantics and fewer of its surprises.
//!
//! * `iso_url` / `iso_urls` are tried in order; the first that yields a verified file wins and
//!   every failure is reported if none does.
//! * Local paths and `file://` URLs are used in place (never copied), after verification.
//! * Downloads go to `<target>.part`, resume with `Range: bytes=N-` + `If-Range`, are hashed
//!   while streaming and renamed atomically into the cache only when the checksum matches: a
//!   mismatch leaves nothing behind. HTTP errors (404, …) are reported as such, never as a
//!   checksum mismatch (hashicorp/packer#6203).
//! * Cache hits are verified cheaply: a sidecar `<file>.osimager-verified` records size, mtime
//!   and digest; the file is re-hashed only when size or mtime changed.
//! * Builds that want the same remote ISO at once (separate processes too) download it once:
//!   `.locks/<file>.lock` (flock) is held from the cache check to the rename, so the second build
//!   waits, then verifies the first one's file like any cache hit.
//!
//! Cache location: `iso_target_path` if given (a directory, or the exact file), else
//! `<packer_cache_dir>/iso` (default `~/.cache/osimager/iso`), file name
//! `<sha1 of checksum-or-url>.<iso_target_extension>` like Packer's cache.

mod cache;
pub mod checksum;
mod download;
mod progress;

pub use checksum::{Algo, ChecksumSpec, Digest};
pub use progress::{ByteCount, Meter};

use crate::secret::redact;
use sha1::Digest as _;
use std::path::{Path, PathBuf};

/// Errors of ISO acquisition. Each names the URL or file concerned and what to do.
#[derive(Debug, thiserror::Error)]
pub enum IsoError {
    #[error("iso_checksum {spec:?} is not valid: use HEX, md5:/sha1:/sha256:/sha512:HEX, file:SUMS or none")]
    BadChecksum { spec: String },
    #[error(
        "{url}: HTTP {status}: check iso_url (a file that moved after a point release can be \
         given for one build with -D iso_url=URL)"
    )]
    Http { url: String, status: String },
    #[error("{url}: {message} (check the address and network)")]
    Network { url: String, message: String },
    #[error("{url}: checksum mismatch: expected {expected}, got {actual}; the download was discarded (check iso_checksum or the mirror)")]
    Mismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error(
        "checksum file {sums} has no entry for {name}: check that iso_checksum (file:…) is the \
         checksum list published next to this ISO, or give the hash itself (-D \
         iso_checksum=sha256:HEX)"
    )]
    NoSumsEntry { sums: String, name: String },
    #[error("{url}: unsupported URL scheme (use http://, https://, file:// or a local path)")]
    Scheme { url: String },
    // The I/O error is in the message, not a `source`: a cause chain would print it twice.
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("no iso_url or iso_urls in the builder: set one")]
    NoUrl,
    #[error("could not obtain the ISO from any URL:\n  {}", .0.join("\n  "))]
    AllFailed(Vec<String>),
}

impl IsoError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> IsoError {
        IsoError::Io {
            path: path.to_path_buf(),
            err: source,
        }
    }
}

/// What to fetch and where to keep it.
#[derive(Debug, Clone)]
pub struct IsoRequest {
    /// `iso_urls`, or `[iso_url]`.
    pub urls: Vec<String>,
    /// `iso_checksum` as written.
    pub checksum: String,
    /// `iso_target_path`.
    pub target_path: Option<PathBuf>,
    /// `iso_target_extension` (default `iso`).
    pub target_extension: String,
    /// Cache directory used when `target_path` is not set.
    pub cache_dir: PathBuf,
}

fn kind(v: &serde_json::Value) -> &'static str {
    crate::config::loader::kind(v)
}

impl IsoRequest {
    /// Read the ISO keys from a builder block (Packer vocabulary). `None` when the builder has
    /// no `iso_url`/`iso_urls` (e.g. a `disk_image` build).
    /// Read the ISO keys of a builder block. `Err((key, message))` when a key has a type the
    /// build cannot use (a number for `iso_checksum` must not silently mean "no checksum").
    pub fn from_builder(
        builder: &serde_json::Map<String, serde_json::Value>,
        cache_dir: PathBuf,
    ) -> Result<Option<IsoRequest>, (&'static str, String)> {
        use serde_json::Value;
        fn s(
            builder: &serde_json::Map<String, Value>,
            k: &'static str,
        ) -> Result<Option<String>, (&'static str, String)> {
            match builder.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(v)) if v.trim().is_empty() => Ok(None),
                Some(Value::String(v)) => Ok(Some(v.trim().to_string())),
                Some(other) => Err((k, format!("expected a string, found {}", kind(other)))),
            }
        }
        let mut urls: Vec<String> = match builder.get("iso_urls") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(u) => Ok(u.clone()),
                    other => Err((
                        "iso_urls",
                        format!("expected a list of strings, found {} in it", kind(other)),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .filter(|v| !v.trim().is_empty())
                .collect(),
            Some(other) => {
                return Err((
                    "iso_urls",
                    format!("expected a list of strings, found {}", kind(other)),
                ))
            }
        };
        if urls.is_empty() {
            urls.extend(s(builder, "iso_url")?);
        }
        let checksum = s(builder, "iso_checksum")?;
        let target_path = s(builder, "iso_target_path")?;
        let target_extension = s(builder, "iso_target_extension")?;
        if urls.is_empty() {
            return Ok(None);
        }
        Ok(Some(IsoRequest {
            urls,
            checksum: checksum.unwrap_or_else(|| "none".into()),
            target_path: target_path.map(PathBuf::from),
            target_extension: target_extension.unwrap_or_else(|| "iso".into()),
            cache_dir,
        }))
    }

    /// Where a download of this request lands.
    pub fn target_file(&self) -> PathBuf {
        let key_src = match ChecksumSpec::parse(&self.checksum) {
            Ok(ChecksumSpec::Digest(d)) => d.to_string(),
            _ => self.urls.first().cloned().unwrap_or_default(),
        };
        let name = format!(
            "{}.{}",
            hex::encode(sha1::Sha1::digest(key_src.as_bytes())),
            self.target_extension
        );
        match &self.target_path {
            Some(p) if p.is_dir() || p.to_string_lossy().ends_with('/') => p.join(name),
            Some(p) => p.clone(),
            None => self.cache_dir.join(name),
        }
    }
}

/// A local file named by a path or `file://` URL, or `None` for a remote URL.
pub(crate) fn local_path(url: &str) -> Option<PathBuf> {
    if let Some(rest) = url.strip_prefix("file://") {
        let decoded = percent_decode(rest);
        return Some(PathBuf::from(decoded));
    }
    if url.contains("://") {
        return None;
    }
    Some(PathBuf::from(url))
}

fn percent_decode(s: &str) -> String {
    let hexval = |c: u8| (c as char).to_digit(16).map(|v| v as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hexval(b[i + 1]), hexval(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The basename a SUMS file lists for this URL.
pub(crate) fn url_basename(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    percent_decode(no_query.rsplit('/').next().unwrap_or(no_query))
}

/// Resolve the checksum spec for one URL (fetching a `file:` SUMS if needed).
async fn expected_digest(spec: &ChecksumSpec, url: &str) -> Result<Option<Digest>, IsoError> {
    match spec {
        ChecksumSpec::None => Ok(None),
        ChecksumSpec::Digest(d) => Ok(Some(d.clone())),
        ChecksumSpec::File(sums) => {
            let text = match local_path(sums) {
                Some(p) => std::fs::read_to_string(&p).map_err(|e| IsoError::io(&p, e))?,
                None => download::fetch_text(sums).await?,
            };
            checksum::find_in_sums(&text, &url_basename(url), sums).map(Some)
        }
    }
}

/// What identifies the ISO without reading it (the install cache's `ISO` input): the digest
/// `iso_checksum` expects for the first URL it resolves for (a `file:` list is read or
/// fetched); with `iso_checksum: none`, the URL and, for a local file, its size and
/// modification time.
pub async fn identity(req: &IsoRequest) -> Result<String, IsoError> {
    let spec = ChecksumSpec::parse(&req.checksum)?;
    let mut last = None;
    for url in &req.urls {
        match expected_digest(&spec, url).await {
            Ok(Some(d)) => return Ok(d.to_string()),
            Ok(None) => {
                let mut s = format!("url {url}");
                if let Some(m) = local_path(url).and_then(|p| std::fs::metadata(p).ok()) {
                    let mtime = m
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|d| d.as_nanos())
                        .unwrap_or(0);
                    s.push_str(&format!(" size {} mtime {mtime}", m.len()));
                }
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(IsoError::NoUrl))
}

/// Obtain the ISO: a verified local file, a verified cache hit, or a fresh verified download.
/// Returns the path to boot from.
pub async fn acquire(req: &IsoRequest, meter: &Meter) -> Result<PathBuf, IsoError> {
    if req.urls.is_empty() {
        return Err(IsoError::NoUrl);
    }
    let spec = ChecksumSpec::parse(&req.checksum)?;
    let mut failures: Vec<IsoError> = Vec::new();
    for url in &req.urls {
        match acquire_one(req, &spec, url, meter).await {
            Ok(p) => return Ok(p),
            Err(e) => {
                tracing::warn!("ISO {}: {}", redact(url), redact(&e.to_string()));
                failures.push(e);
            }
        }
    }
    if failures.len() == 1 {
        // Keep the precise error (404, mismatch, …) when there was only one URL.
        if let Some(e) = failures.pop() {
            return Err(e);
        }
    }
    Err(IsoError::AllFailed(
        failures.iter().map(|e| redact(&e.to_string())).collect(),
    ))
}

async fn acquire_one(
    req: &IsoRequest,
    spec: &ChecksumSpec,
    url: &str,
    meter: &Meter,
) -> Result<PathBuf, IsoError> {
    let expected = expected_digest(spec, url).await?;
    if let Some(path) = local_path(url) {
        if !path.is_file() {
            return Err(IsoError::io(
                &path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "ISO file not found"),
            ));
        }
        if let Some(d) = &expected {
            cache::verify(&path, d, url, meter, &req.cache_dir).await?;
        }
        return Ok(path);
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(IsoError::Scheme { url: url.into() });
    }
    let target = req.target_file();
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(|e| IsoError::io(dir, e))?;
    }
    // One download per cache file: a build that wants an ISO another build (another process)
    // is downloading waits for it, then verifies that build's file (issue 15: two builds used
    // to download it twice into the same `.part`).
    let _held = lock_target(&target).await?;
    if target.is_file() {
        match &expected {
            None => return Ok(target),
            Some(d) => match cache::verify(&target, d, url, meter, &req.cache_dir).await {
                Ok(()) => return Ok(target),
                Err(IsoError::Mismatch { .. }) => {
                    tracing::warn!(
                        "cached {} does not match {d}: downloading again",
                        target.display()
                    );
                    let _ = std::fs::remove_file(&target);
                    cache::forget(&req.cache_dir, &target);
                }
                Err(e) => return Err(e),
            },
        }
    }
    download::download(url, &target, expected.as_ref(), meter).await?;
    if let Some(d) = &expected {
        cache::remember(&req.cache_dir, &target, d);
    }
    Ok(target)
}

/// Hold `<dir>/.locks/<file>.lock` exclusively (flock; released when dropped or when the process dies),
/// polling so that a cancelled build stops waiting at once.
async fn lock_target(target: &Path) -> Result<crate::install_cache::lock::Locked, IsoError> {
    use crate::install_cache::lock::{try_lock, Mode};
    let dir = target.parent().unwrap_or(Path::new(".")).join(".locks");
    std::fs::create_dir_all(&dir).map_err(|e| IsoError::io(&dir, e))?;
    let mut name = target.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    let path = dir.join(name);
    let mut said = false;
    loop {
        if let Some(l) = try_lock(&path, Mode::Exclusive).map_err(|e| IsoError::io(&path, e))? {
            return Ok(l);
        }
        if !said {
            tracing::info!(
                "another build is downloading {}: waiting for it",
                target.display()
            );
            said = true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths() {
        assert_eq!(local_path("/iso/a.iso"), Some(PathBuf::from("/iso/a.iso")));
        assert_eq!(
            local_path("file:///iso/a%20b.iso"),
            Some(PathBuf::from("/iso/a b.iso"))
        );
        assert_eq!(local_path("http://h/a.iso"), None);
        assert_eq!(
            url_basename("http://h/x/debian-12.iso?dl=1"),
            "debian-12.iso"
        );
    }

    #[test]
    fn target_file_rules() {
        let mut r = IsoRequest {
            urls: vec!["http://h/a.iso".into()],
            checksum: "none".into(),
            target_path: None,
            target_extension: "iso".into(),
            cache_dir: "/cache".into(),
        };
        let t = r.target_file();
        assert!(t.starts_with("/cache") && t.extension().unwrap() == "iso");
        r.target_path = Some("/x/exact.img".into());
        assert_eq!(r.target_file(), PathBuf::from("/x/exact.img"));
        r.target_path = Some("/x/dir/".into());
        assert!(r.target_file().starts_with("/x/dir/"));
    }
}

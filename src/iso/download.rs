//! Resumable, verifying HTTP download into `<target>.part`, renamed into place when complete.

use super::{Digest, IsoError, Meter};
use futures_util::StreamExt;
use reqwest::header::{CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// Validators of a partial download, to resume it only if the remote file is unchanged.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PartMeta {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

pub(crate) fn client() -> Result<reqwest::Client, IsoError> {
    // reqwest is built without a bundled crypto provider; install ring's once per process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(30))
        .read_timeout(std::time::Duration::from_secs(120))
        .user_agent(concat!("osimager/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| IsoError::Network {
            url: String::new(),
            message: format!("cannot create HTTP client: {e}"),
        })
}

fn net(url: &str, e: impl std::fmt::Display) -> IsoError {
    IsoError::Network {
        url: crate::secret::redact(url),
        message: e.to_string(),
    }
}

fn http(url: &str, status: StatusCode) -> IsoError {
    IsoError::Http {
        url: crate::secret::redact(url),
        status: status.to_string(),
    }
}

/// GET a small text resource (a SUMS file).
pub(crate) async fn fetch_text(url: &str) -> Result<String, IsoError> {
    let resp = client()?.get(url).send().await.map_err(|e| net(url, e))?;
    if !resp.status().is_success() {
        return Err(http(url, resp.status()));
    }
    resp.text().await.map_err(|e| net(url, e))
}

/// Why one attempt stopped.
enum Attempt {
    Done,
    /// Connection dropped mid-stream: the `.part` is kept and may be resumed.
    Interrupted(IsoError),
}

/// Download `url` to `target`, verifying `expected` while streaming. Resumes an existing
/// `.part` of the same URL; retries a dropped connection up to three times, resuming each time.
pub(crate) async fn download(
    url: &str,
    target: &Path,
    expected: Option<&Digest>,
    meter: &Meter,
) -> Result<(), IsoError> {
    let client = client()?;
    let part = with_suffix(target, ".part");
    let meta_path = with_suffix(target, ".part.json");
    let mut last_err = None;
    for attempt in 0..4 {
        if attempt > 0 {
            tracing::info!(
                "resuming download of {} (attempt {})",
                crate::secret::redact(url),
                attempt + 1
            );
        }
        match attempt_once(&client, url, &part, &meta_path, expected, meter).await? {
            Attempt::Done => {
                std::fs::rename(&part, target).map_err(|e| IsoError::io(target, e))?;
                let _ = std::fs::remove_file(&meta_path);
                return Ok(());
            }
            Attempt::Interrupted(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| net(url, "download interrupted")))
}

async fn attempt_once(
    client: &reqwest::Client,
    url: &str,
    part: &Path,
    meta_path: &Path,
    expected: Option<&Digest>,
    meter: &Meter,
) -> Result<Attempt, IsoError> {
    let meta: PartMeta = std::fs::read(meta_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut offset = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    if offset > 0 && meta.url != url {
        offset = 0; // a leftover from another URL: start over
    }
    let mut rb = client.get(url);
    if offset > 0 {
        rb = rb.header(RANGE, format!("bytes={offset}-"));
        if let Some(v) = meta.etag.as_ref().or(meta.last_modified.as_ref()) {
            rb = rb.header(IF_RANGE, v.as_str());
        }
    }
    let resp = match rb.send().await {
        Ok(r) => r,
        Err(e) => return Err(net(url, e)),
    };
    let status = resp.status();
    let resumed = match status {
        StatusCode::PARTIAL_CONTENT if offset > 0 => {
            let cr = resp
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !cr.starts_with(&format!("bytes {offset}-")) {
                return Err(net(url, format!("server sent an unexpected range {cr:?}")));
            }
            true
        }
        StatusCode::RANGE_NOT_SATISFIABLE if offset > 0 => {
            // The part is complete or the file shrank: start over on the next attempt.
            let _ = std::fs::remove_file(part);
            let _ = std::fs::remove_file(meta_path);
            return Ok(Attempt::Interrupted(net(
                url,
                "stale partial download discarded",
            )));
        }
        s if s.is_success() => false,
        s => return Err(http(url, s)),
    };
    let header = |h| {
        resp.headers()
            .get(h)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(String::from)
    };
    let new_meta = PartMeta {
        url: url.to_string(),
        etag: header(ETAG),
        last_modified: header(LAST_MODIFIED),
    };
    if let Ok(text) = serde_json::to_vec(&new_meta) {
        std::fs::write(meta_path, text).map_err(|e| IsoError::io(meta_path, e))?;
    }
    let remaining = resp.content_length();
    let start = if resumed { offset } else { 0 };
    let total = remaining.map(|r| r + start);

    // Hash what is already there, then stream the rest through the same hasher.
    let mut hasher = match expected {
        Some(d) if resumed => Some(hash_prefix(part, d.algo).await?),
        Some(d) => Some(d.algo.hasher()),
        None => None,
    };
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(part)
        .await
        .map_err(|e| IsoError::io(part, e))?;
    let name = super::url_basename(url);
    let mut prog = meter.bytes(&format!("downloading {name}"), total, start);
    let mut stream = resp.bytes_stream();
    let mut got = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = file.flush().await;
                prog.finish();
                return Ok(Attempt::Interrupted(net(url, e)));
            }
        };
        file.write_all(&chunk)
            .await
            .map_err(|e| IsoError::io(part, e))?;
        if let Some(h) = hasher.as_mut() {
            h.update(&chunk);
        }
        got += chunk.len() as u64;
        prog.inc(chunk.len() as u64);
    }
    file.flush().await.map_err(|e| IsoError::io(part, e))?;
    file.sync_all().await.map_err(|e| IsoError::io(part, e))?;
    drop(file);
    prog.finish();
    if let Some(r) = remaining {
        if got < r {
            return Ok(Attempt::Interrupted(net(
                url,
                format!("connection closed after {got} of {r} bytes"),
            )));
        }
    }
    if let (Some(d), Some(h)) = (expected, hasher) {
        let actual = hex::encode(h.finalize());
        if actual != d.hex {
            // Nothing half-verified stays behind.
            let _ = std::fs::remove_file(part);
            let _ = std::fs::remove_file(meta_path);
            return Err(IsoError::Mismatch {
                url: crate::secret::redact(url),
                expected: d.to_string(),
                actual: format!("{}:{actual}", d.algo.name()),
            });
        }
    }
    Ok(Attempt::Done)
}

async fn hash_prefix(
    part: &Path,
    algo: super::Algo,
) -> Result<Box<dyn sha2::digest::DynDigest + Send>, IsoError> {
    let part = part.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut h = algo.hasher();
        let mut f = std::fs::File::open(&part).map_err(|e| IsoError::io(&part, e))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).map_err(|e| IsoError::io(&part, e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(h)
    })
    .await
    .map_err(|e| net("", format!("hashing task failed: {e}")))?
}

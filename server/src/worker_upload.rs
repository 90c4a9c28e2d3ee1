//! A worker's artifact upload: ask the server how much arrived, stream the rest from there,
//! retry through dropped connections, then have the server check size and SHA-256.

use crate::api::worker::CompleteBody;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;

/// The server connection.
pub(crate) struct Conn {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

fn pct(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Upload `path` as artifact `name` of build `id`.
pub(crate) async fn upload(c: Conn, id: i64, lease: u64, path: &Path) -> Result<(), String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{} has no file name", path.display()))?
        .to_string();
    let p = path.to_path_buf();
    let (size, sha256) = tokio::task::spawn_blocking(move || -> std::io::Result<(u64, String)> {
        let mut f = std::fs::File::open(&p)?;
        let mut h = Sha256::new();
        let n = std::io::copy(&mut f, &mut h)?;
        Ok((n, hex::encode(h.finalize())))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("reading {}: {e}", path.display()))?;
    let url = format!(
        "{}/api/v1/worker/jobs/{id}/artifacts/{}",
        c.base.trim_end_matches('/'),
        pct(&name)
    );
    let mut tries = 0;
    loop {
        tries += 1;
        let at: Value = c
            .http
            .get(format!("{url}?lease={lease}"))
            .bearer_auth(&c.token)
            .send()
            .await
            .map_err(|e| format!("asking where the upload of {name} stands: {e}"))?
            .json()
            .await
            .map_err(|e| format!("asking where the upload of {name} stands: {e}"))?;
        let offset = at["size"].as_u64().ok_or_else(|| {
            format!(
                "the server refused the upload of {name}: {}",
                at["message"].as_str().unwrap_or("?")
            )
        })?;
        if offset < size {
            let mut f = tokio::fs::File::open(path)
                .await
                .map_err(|e| format!("opening {}: {e}", path.display()))?;
            use tokio::io::AsyncSeekExt;
            f.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f));
            let r = c
                .http
                .put(format!("{url}?lease={lease}&offset={offset}"))
                .bearer_auth(&c.token)
                .body(body)
                .send()
                .await;
            match r {
                Ok(r) if r.status() == StatusCode::OK => {}
                Ok(r) if r.status() == StatusCode::CONFLICT && tries < 5 => continue,
                Ok(r) => {
                    let st = r.status();
                    let v: Value = r.json().await.unwrap_or(Value::Null);
                    return Err(format!(
                        "uploading {name}: {st}: {}",
                        v["message"].as_str().unwrap_or("?")
                    ));
                }
                Err(e) if tries < 5 => {
                    tracing::warn!(build = id, "uploading {name}: {e}; resuming");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Err(e) => return Err(format!("uploading {name}: {e}")),
            }
        }
        let r = c
            .http
            .post(format!("{url}/complete"))
            .bearer_auth(&c.token)
            .json(&CompleteBody {
                lease,
                size,
                sha256: sha256.clone(),
            })
            .send()
            .await
            .map_err(|e| format!("completing the upload of {name}: {e}"))?;
        let st = r.status();
        if st == StatusCode::OK {
            return Ok(());
        }
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if st == StatusCode::UNPROCESSABLE_ENTITY && tries < 3 {
            continue; // discarded by the server: again from 0
        }
        return Err(format!(
            "completing the upload of {name}: {st}: {}",
            v["message"].as_str().unwrap_or("?")
        ));
    }
}

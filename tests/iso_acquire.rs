//! ISO acquisition against real HTTP servers on 127.0.0.1: the project's own answer-file server
//! (osimager-http, which honours Range/If-Range) and a raw TCP server that drops the first
//! download half-way.

use osimager::iso::{acquire, IsoError, IsoRequest, Meter};
use osimager_http::{HttpConfig, HttpServer};
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn payload() -> Vec<u8> {
    (0..300_000u32).map(|i| (i % 251) as u8).collect()
}

fn sha256(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

async fn serve_dir(dir: &Path) -> HttpServer {
    HttpServer::start(HttpConfig {
        directory: Some(dir.to_path_buf()),
        port_min: 20000,
        port_max: 40000,
        ..HttpConfig::default()
    })
    .await
    .unwrap()
}

fn request(urls: Vec<String>, checksum: &str, cache: &Path) -> IsoRequest {
    IsoRequest {
        urls,
        checksum: checksum.into(),
        target_path: None,
        target_extension: "iso".into(),
        cache_dir: cache.to_path_buf(),
    }
}

/// Files in the cache dir other than the sidecar and lock directories.
fn cache_files(cache: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(cache) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| !p.ends_with(".verified") && !p.ends_with(".locks"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn downloads_verifies_and_hits_cache_without_network() {
    let t = tempfile::tempdir().unwrap();
    let www = t.path().join("www");
    std::fs::create_dir(&www).unwrap();
    let data = payload();
    std::fs::write(www.join("test.iso"), &data).unwrap();
    let cache = t.path().join("cache");
    let srv = serve_dir(&www).await;
    let url = format!("http://{}/test.iso", srv.local_addr());
    let req = request(
        vec![url.clone()],
        &format!("sha256:{}", sha256(&data)),
        &cache,
    );
    let got = acquire(&req, &Meter::quiet()).await.unwrap();
    assert!(got.starts_with(&cache));
    assert_eq!(std::fs::read(&got).unwrap(), data);
    assert_eq!(cache_files(&cache), vec![got.clone()], "no .part left");
    srv.shutdown().await;
    // Cache hit: the server is gone, the sidecar avoids both network and re-hash.
    let again = acquire(&req, &Meter::quiet()).await.unwrap();
    assert_eq!(again, got);
    // A changed cached file (same size, new mtime) is re-hashed, found wrong, and since the
    // server is gone the error is about the network, and the bad file is gone.
    let mut bad = data.clone();
    bad[0] ^= 1;
    std::fs::write(&got, &bad).unwrap();
    let err = acquire(&req, &Meter::quiet()).await.unwrap_err();
    assert!(matches!(err, IsoError::Network { .. }), "{err}");
    assert!(!got.exists(), "corrupt cache entry removed");
}

#[tokio::test]
async fn mismatch_leaves_nothing_and_404_is_not_a_mismatch() {
    let t = tempfile::tempdir().unwrap();
    let www = t.path().join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("test.iso"), payload()).unwrap();
    let cache = t.path().join("cache");
    let srv = serve_dir(&www).await;
    let wrong = "0".repeat(64);
    let req = request(
        vec![format!("http://{}/test.iso", srv.local_addr())],
        &wrong,
        &cache,
    );
    let err = acquire(&req, &Meter::quiet()).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, IsoError::Mismatch { .. }), "{msg}");
    assert!(
        msg.contains("checksum mismatch") && msg.contains(&wrong),
        "{msg}"
    );
    assert!(cache_files(&cache).is_empty(), "{:?}", cache_files(&cache));

    let req = request(
        vec![format!("http://{}/missing.iso", srv.local_addr())],
        &wrong,
        &cache,
    );
    let err = acquire(&req, &Meter::quiet()).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, IsoError::Http { .. }), "{msg}");
    assert!(msg.contains("404") && !msg.contains("mismatch"), "{msg}");
    // It says what to do, and does not call a missing file a refusal.
    assert!(
        msg.contains(": HTTP 404") && msg.contains("check iso_url") && !msg.contains("refused"),
        "{msg}"
    );
    assert!(cache_files(&cache).is_empty());
    srv.shutdown().await;
}

#[tokio::test]
async fn iso_urls_tried_in_order_and_sums_files() {
    let t = tempfile::tempdir().unwrap();
    let www = t.path().join("www");
    std::fs::create_dir(&www).unwrap();
    let data = payload();
    std::fs::write(www.join("os-1.0.iso"), &data).unwrap();
    let sum = sha256(&data);
    std::fs::write(
        www.join("SHA256SUMS"),
        format!("{}  other.iso\n{sum} *os-1.0.iso\n", "1".repeat(64)),
    )
    .unwrap();
    std::fs::write(
        www.join("CHECKSUM.bsd"),
        format!("SHA256 (os-1.0.iso) = {sum}\n"),
    )
    .unwrap();
    let srv = serve_dir(&www).await;
    let base = format!("http://{}", srv.local_addr());

    // file:URL (GNU form), first mirror 404s.
    let cache = t.path().join("c1");
    let req = request(
        vec![
            format!("{base}/gone/os-1.0.iso"),
            format!("{base}/os-1.0.iso"),
        ],
        &format!("file:{base}/SHA256SUMS"),
        &cache,
    );
    let got = acquire(&req, &Meter::quiet()).await.unwrap();
    assert_eq!(std::fs::read(got).unwrap(), data);

    // file:PATH (BSD form).
    let cache = t.path().join("c2");
    let req = request(
        vec![format!("{base}/os-1.0.iso")],
        &format!("file:{}", www.join("CHECKSUM.bsd").display()),
        &cache,
    );
    acquire(&req, &Meter::quiet()).await.unwrap();

    // Name absent from the SUMS file.
    let req = request(
        vec![format!("{base}/SHA256SUMS")],
        &format!("file:{base}/SHA256SUMS"),
        &t.path().join("c3"),
    );
    let msg = acquire(&req, &Meter::quiet())
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no entry for SHA256SUMS"), "{msg}");
    assert!(msg.contains("-D iso_checksum=sha256:HEX"), "{msg}");

    // Every URL failing lists every reason.
    let req = request(
        vec![format!("{base}/a.iso"), format!("{base}/b.iso")],
        "none",
        &t.path().join("c4"),
    );
    let msg = acquire(&req, &Meter::quiet())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("a.iso: HTTP 404") && msg.contains("b.iso: HTTP 404"),
        "{msg}"
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn local_files_are_used_in_place() {
    let t = tempfile::tempdir().unwrap();
    let data = payload();
    let iso = t.path().join("my os.iso");
    std::fs::write(&iso, &data).unwrap();
    let cache = t.path().join("cache");
    let sum = sha256(&data);
    let got = acquire(
        &request(vec![iso.display().to_string()], &sum, &cache),
        &Meter::quiet(),
    )
    .await
    .unwrap();
    assert_eq!(got, iso);
    let url = format!("file://{}", iso.display().to_string().replace(' ', "%20"));
    let got = acquire(&request(vec![url], &sum, &cache), &Meter::quiet())
        .await
        .unwrap();
    assert_eq!(got, iso, "file:// URL used in place, not copied");
    assert!(cache_files(&cache).is_empty());
    let err = acquire(
        &request(vec![iso.display().to_string()], &"f".repeat(64), &cache),
        &Meter::quiet(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, IsoError::Mismatch { .. }));
    assert!(iso.exists(), "a user's own file is never deleted");
}

/// A server that cuts the first download after `cut` bytes, then honours `Range`.
async fn flaky_server(data: Arc<Vec<u8>>, cut: usize) -> (String, Arc<Mutex<Vec<String>>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            n += 1;
            let mut buf = vec![0u8; 4096];
            let mut req = Vec::new();
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let k = s.read(&mut buf).await.unwrap_or(0);
                if k == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..k]);
            }
            let req = String::from_utf8_lossy(&req).to_lowercase();
            seen2.lock().unwrap().push(req.clone());
            let range = req
                .lines()
                .find_map(|l| l.strip_prefix("range: bytes="))
                .and_then(|r| r.trim().trim_end_matches('-').parse::<usize>().ok());
            let len = data.len();
            match range {
                Some(start) if req.contains("if-range: \"v1\"") => {
                    let head = format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{len}\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n",
                        len - start,
                        len - 1
                    );
                    let _ = s.write_all(head.as_bytes()).await;
                    let _ = s.write_all(&data[start..]).await;
                }
                _ => {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n"
                    );
                    let _ = s.write_all(head.as_bytes()).await;
                    let end = if n == 1 { cut } else { len };
                    let _ = s.write_all(&data[..end]).await;
                }
            }
            let _ = s.shutdown().await;
        }
    });
    (format!("http://{addr}/flaky.iso"), seen)
}

#[tokio::test]
async fn interrupted_download_resumes_with_range_and_if_range() {
    let t = tempfile::tempdir().unwrap();
    let data = Arc::new(payload());
    let (url, seen) = flaky_server(data.clone(), 100_000).await;
    let cache = t.path().join("cache");
    let req = request(vec![url], &format!("sha256:{}", sha256(&data)), &cache);
    let got = acquire(&req, &Meter::quiet()).await.unwrap();
    assert_eq!(std::fs::read(&got).unwrap(), *data);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(!seen[0].contains("range:"));
    assert!(seen[1].contains("range: bytes=100000-"), "{}", seen[1]);
    assert!(seen[1].contains("if-range: \"v1\""), "{}", seen[1]);
    assert_eq!(cache_files(&cache), vec![got]);
}

#[tokio::test]
async fn resumes_a_part_left_by_an_earlier_run() {
    // This test's own reqwest client (for the ETag) needs a TLS crypto provider even for plain
    // HTTP (reqwest is built with rustls-no-provider); install it here so the test passes
    // when run alone, not only after a test that happened to call `acquire` first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let t = tempfile::tempdir().unwrap();
    let www = t.path().join("www");
    std::fs::create_dir(&www).unwrap();
    let data = payload();
    std::fs::write(www.join("test.iso"), &data).unwrap();
    // Every request the server answers: "METHOD PATH STATUS BYTES".
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let log2 = log.clone();
    let srv = HttpServer::start(HttpConfig {
        directory: Some(www.clone()),
        port_min: 20000,
        port_max: 40000,
        on_request: Some(osimager_http::RequestLog(Arc::new(move |l: &str| {
            log2.lock().unwrap().push(l.to_string())
        }))),
        ..HttpConfig::default()
    })
    .await
    .unwrap();
    let url = format!("http://{}/test.iso", srv.local_addr());
    let cache = t.path().join("cache");
    let req = request(vec![url.clone()], &sha256(&data), &cache);
    // Simulate a killed earlier run: a .part with the first 1000 bytes and its validators.
    std::fs::create_dir_all(&cache).unwrap();
    let target = req.target_file();
    let etag = reqwest::get(&url).await.unwrap().headers()["etag"]
        .to_str()
        .unwrap()
        .to_string();
    let part = PathBuf::from(format!("{}.part", target.display()));
    std::fs::write(&part, &data[..1000]).unwrap();
    std::fs::write(
        format!("{}.part.json", target.display()),
        serde_json::json!({"url": url, "etag": etag, "last_modified": null}).to_string(),
    )
    .unwrap();
    log.lock().unwrap().clear();
    let got = acquire(&req, &Meter::quiet()).await.unwrap();
    assert_eq!(got, target);
    assert_eq!(std::fs::read(&got).unwrap(), data);
    assert!(!part.exists());
    srv.shutdown().await;
    // Resumed, not downloaded again: one partial response with the missing bytes only.
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log,
        vec![format!("GET /test.iso 206 {}", data.len() - 1000)],
        "the download must resume from byte 1000 with a Range request"
    );
}

/// A server that sends `data` slowly (in 16 chunks, 50 ms apart) and counts the requests.
async fn slow_counting_server(data: Arc<Vec<u8>>) -> (String, Arc<Mutex<usize>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(Mutex::new(0usize));
    let count2 = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            *count2.lock().unwrap() += 1;
            let data = data.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut req = Vec::new();
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    let k = s.read(&mut buf).await.unwrap_or(0);
                    if k == 0 {
                        return;
                    }
                    req.extend_from_slice(&buf[..k]);
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    data.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                for chunk in data.chunks(data.len().div_ceil(16)) {
                    let _ = s.write_all(chunk).await;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                let _ = s.shutdown().await;
            });
        }
    });
    (format!("http://{addr}/shared.iso"), count)
}

/// Regression (issue 15): two builds wanting the same remote ISO at once downloaded it twice,
/// into the same `.part`. Now the second waits for the first and verifies its file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_acquisitions_of_one_iso_download_it_once() {
    let t = tempfile::tempdir().unwrap();
    let data = Arc::new(payload());
    let (url, count) = slow_counting_server(data.clone()).await;
    let cache = t.path().join("cache");
    let req = request(vec![url], &format!("sha256:{}", sha256(&data)), &cache);
    let (a, b) = (req.clone(), req.clone());
    let ta = tokio::spawn(async move { acquire(&a, &Meter::quiet()).await });
    let tb = tokio::spawn(async move { acquire(&b, &Meter::quiet()).await });
    let (ga, gb) = (ta.await.unwrap().unwrap(), tb.await.unwrap().unwrap());
    assert_eq!(ga, gb);
    assert_eq!(std::fs::read(&ga).unwrap(), *data);
    assert_eq!(
        *count.lock().unwrap(),
        1,
        "the ISO was downloaded more than once"
    );
    assert_eq!(cache_files(&cache), vec![ga]);
}

//! The answer-file server against hostile clients, over real loopback sockets with raw
//! requests: encoded and double-encoded traversal, absolute-form and absolute paths, symlinks
//! out of and looping inside `http_directory`, huge and numerous headers, slow and idle clients,
//! connection floods, range abuse. Each must be refused or cut off while the server keeps
//! serving the build's own files. (Issue 15; the figures are in docs/RELIABILITY.md.)

use osimager_http::{HttpConfig, HttpServer, HEADER_READ_TIMEOUT, MAX_CONNECTIONS};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

const SECRET: &str = "canary-outside-9f1e";

fn tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("www");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("ks.cfg"), "install\n").unwrap();
    std::fs::write(root.join("sub/a.cfg"), "a").unwrap();
    std::fs::write(t.path().join("outside.txt"), SECRET).unwrap();
    std::os::unix::fs::symlink(t.path().join("outside.txt"), root.join("escape.txt")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
    std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
    std::os::unix::fs::symlink("sub/../../outside.txt", root.join("relative-escape")).unwrap();
    t
}

async fn server(root: &Path) -> HttpServer {
    let mut content = BTreeMap::new();
    content.insert("/answers.cfg".to_string(), "rootpw x\n".to_string());
    HttpServer::start(HttpConfig {
        directory: Some(root.to_path_buf()),
        content,
        ..HttpConfig::default()
    })
    .await
    .expect("start")
}

/// Send raw bytes, read until the server closes (or `limit`); the status code if any.
fn raw(addr: SocketAddr, request: &[u8], limit: Duration) -> (Option<u16>, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(limit)).unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let code = text.get(9..12).and_then(|c| c.parse().ok());
    (code, text)
}

fn get(addr: SocketAddr, target: &str) -> (Option<u16>, String) {
    raw(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        Duration::from_secs(10),
    )
}

/// The server still answers a well-formed request for the build's own file.
fn still_serves(addr: SocketAddr) {
    let (code, body) = get(addr, "/answers.cfg");
    assert_eq!(code, Some(200), "{body}");
    assert!(body.ends_with("rootpw x\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_in_every_encoding_is_refused() {
    let t = tree();
    let srv = server(&t.path().join("www")).await;
    let addr = srv.local_addr();
    let outside = t.path().join("outside.txt");
    let targets = [
        "/%252e%252e/outside.txt".to_string(),
        "/%252e%252e%252foutside.txt".to_string(),
        "/sub/%252E%252E/%252E%252E/outside.txt".to_string(),
        "/%25252e%25252e/outside.txt".to_string(),
        "/%2e%2e%2foutside.txt".to_string(),
        "/.%2e/outside.txt".to_string(),
        "/%2e./outside.txt".to_string(),
        "/sub%2f..%2f..%2foutside.txt".to_string(),
        "/..%c0%af..%c0%afoutside.txt".to_string(),
        "/%c0%ae%c0%ae/outside.txt".to_string(),
        "/..;/outside.txt".to_string(),
        "/....//outside.txt".to_string(),
        "/sub/..\\..\\outside.txt".to_string(),
        "/%5c..%5coutside.txt".to_string(),
        "/%00/../outside.txt".to_string(),
        "http://x/../outside.txt".to_string(),
        "http://x/%2e%2e/outside.txt".to_string(),
        outside.display().to_string(),
        format!("/{}", outside.display()),
        format!("file://{}", outside.display()),
        "/escape.txt".to_string(),
        "/relative-escape".to_string(),
        "/etc/passwd".to_string(),
        "/etc/hostname".to_string(),
        "/loop".to_string(),
        "/loop/x".to_string(),
        "*".to_string(),
    ];
    for target in &targets {
        let (code, body) = get(addr, target);
        assert!(
            matches!(code, Some(400) | Some(403) | Some(404)),
            "{target}: {code:?}\n{body}"
        );
        assert!(!body.contains(SECRET), "{target} leaked the outside file");
        assert!(!body.contains("root:x:0:0"), "{target} leaked /etc/passwd");
    }
    eprintln!(
        "http: {} traversal targets refused, 0 served",
        targets.len()
    );
    still_serves(addr);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_numerous_headers_are_refused() {
    let t = tree();
    let srv = server(&t.path().join("www")).await;
    let addr = srv.local_addr();
    // One 1 MiB header.
    let big = format!(
        "GET /ks.cfg HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let (code, _) = raw(addr, big.as_bytes(), Duration::from_secs(10));
    assert!(
        code.is_none() || code >= Some(400),
        "1 MiB header: {code:?}"
    );
    // 10 000 small headers.
    let mut many = String::from("GET /ks.cfg HTTP/1.1\r\nHost: x\r\n");
    for i in 0..10_000 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let (code, _) = raw(addr, many.as_bytes(), Duration::from_secs(10));
    assert!(code.is_none() || code >= Some(400), "10k headers: {code:?}");
    // A 100 KiB request target.
    let (code, _) = get(addr, &format!("/{}", "a".repeat(100 << 10)));
    assert!(code.is_none() || code >= Some(400), "long target: {code:?}");
    // Garbage and a body on GET.
    let (code, _) = raw(
        addr,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        Duration::from_secs(10),
    );
    assert!(code.is_none() || code >= Some(400), "TLS hello: {code:?}");
    let (code, _) = raw(
        addr,
        b"GET /ks.cfg HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(code.is_some(), "CL+TE request got no answer");
    let (code, _) = raw(
        addr,
        b"POST /ks.cfg HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(405));
    // Range abuse: thousands of ranges, reversed and overflowing ranges.
    let ranges: Vec<String> = (0..2000).map(|i| format!("{i}-{i}")).collect();
    for r in [
        format!("bytes={}", ranges.join(",")),
        "bytes=5-1".to_string(),
        "bytes=99999999999999999999-".to_string(),
        "bytes=-0".to_string(),
    ] {
        let req =
            format!("GET /ks.cfg HTTP/1.1\r\nHost: x\r\nRange: {r}\r\nConnection: close\r\n\r\n");
        let (code, _) = raw(addr, req.as_bytes(), Duration::from_secs(10));
        assert!(
            matches!(
                code,
                Some(200) | Some(206) | Some(416) | Some(431) | Some(400)
            ),
            "Range {}: {code:?}",
            &r[..r.len().min(30)]
        );
    }
    still_serves(addr);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_cut_off() {
    let t = tree();
    let srv = server(&t.path().join("www")).await;
    let addr = srv.local_addr();
    let limit = HEADER_READ_TIMEOUT + Duration::from_secs(5);
    // Slowloris: a header line every second, never finishing.
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(900)))
            .unwrap();
        let _ = s.write_all(b"GET /ks.cfg HTTP/1.1\r\n");
        let t = Instant::now();
        let mut buf = [0u8; 256];
        while t.elapsed() < limit {
            if s.write_all(b"X-Slow: 1\r\n").is_err() {
                return Some(t.elapsed());
            }
            match s.read(&mut buf) {
                Ok(0) => return Some(t.elapsed()),
                Ok(_) => return Some(t.elapsed()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return Some(t.elapsed()),
            }
        }
        None
    });
    // Idle: connects and says nothing.
    let idle = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(limit)).unwrap();
        let t = Instant::now();
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            // Closed, or told why (408) before closing: cut off either way.
            Ok(0) => Some(t.elapsed()),
            Ok(_) => Some(t.elapsed()),
            Err(_) => None,
        }
    });
    // Meanwhile the build's own requests are served.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let a = tokio::task::spawn_blocking(move || still_serves(addr));
    a.await.unwrap();
    let slow = tokio::task::spawn_blocking(move || slow.join().unwrap())
        .await
        .unwrap();
    let idle = tokio::task::spawn_blocking(move || idle.join().unwrap())
        .await
        .unwrap();
    eprintln!("http: slow client cut off after {slow:?}, idle client after {idle:?}");
    assert!(slow.is_some(), "a slowloris client was never cut off");
    assert!(idle.is_some(), "an idle client was never cut off");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_does_not_starve_the_installer() {
    let t = tree();
    let srv = server(&t.path().join("www")).await;
    let addr = srv.local_addr();
    // Twice the cap of idle connections held open.
    let held: Vec<TcpStream> = (0..MAX_CONNECTIONS * 2)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    assert!(held.len() >= MAX_CONNECTIONS);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Once the held ones are cut off (header timeout), the installer gets through.
    let t0 = Instant::now();
    let ok = tokio::task::spawn_blocking(move || loop {
        let (code, _) = get(addr, "/answers.cfg");
        if code == Some(200) {
            return Some(t0.elapsed());
        }
        if t0.elapsed() > HEADER_READ_TIMEOUT * 2 + Duration::from_secs(5) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    })
    .await
    .unwrap();
    eprintln!(
        "http: {} idle connections held; the next request served after {ok:?}",
        held.len()
    );
    assert!(ok.is_some(), "the server never recovered from the flood");
    drop(held);
    srv.shutdown().await;
}

#[tokio::test]
async fn binds_loopback_only_by_default() {
    let t = tree();
    let srv = server(&t.path().join("www")).await;
    assert!(srv.local_addr().ip().is_loopback());
    srv.shutdown().await;
}

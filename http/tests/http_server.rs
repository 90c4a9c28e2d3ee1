//! The embedded HTTP server against a real client (reqwest) over real loopback sockets.

/// Loopback ports found at run time (the repository's shared test harness, tests/support).
#[path = "../../tests/support/ports.rs"]
mod ports;

use osimager_http::{HttpConfig, HttpServer};
use reqwest::StatusCode;

/// A plain-HTTP client. In a workspace build reqwest is compiled with `rustls-no-provider`
/// (feature unification with the main crate), so a crypto provider must be installed before
/// any client is built, even one that never speaks TLS.
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::Path;

async fn server(dir: Option<&Path>) -> HttpServer {
    let mut content = BTreeMap::new();
    content.insert("/ks.cfg".to_string(), "rootpw secret\n".to_string());
    content.insert("nested/preseed.cfg".to_string(), "d-i x y\n".to_string());
    let cfg = HttpConfig {
        directory: dir.map(Path::to_path_buf),
        content,
        ..HttpConfig::default()
    };
    HttpServer::start(cfg).await.expect("start")
}

fn tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("www");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("hello.txt"), "0123456789abcdef").unwrap();
    // The same path as an entry of the content map (see `server`), with other content.
    std::fs::write(root.join("ks.cfg"), "from the directory\n").unwrap();
    std::fs::write(root.join("sub/a.cfg"), "a").unwrap();
    std::fs::write(t.path().join("outside.txt"), "top secret").unwrap();
    std::os::unix::fs::symlink(t.path().join("outside.txt"), root.join("escape.txt")).unwrap();
    std::os::unix::fs::symlink(t.path(), root.join("updir")).unwrap();
    std::os::unix::fs::symlink(root.join("hello.txt"), root.join("inside.txt")).unwrap();
    t
}

/// Send a raw request line (reqwest normalises `..` away, so traversal is tested raw).
fn raw_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out[9..12].parse().unwrap();
    (code, out)
}

#[tokio::test]
async fn binds_loopback_in_range_and_serves_content() {
    let srv = server(None).await;
    let addr = srv.local_addr();
    assert_eq!(addr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert!((8000..=9000).contains(&addr.port()));
    let c = client();
    let r = c.get(format!("http://{addr}/ks.cfg")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(r.text().await.unwrap(), "rootpw secret\n");
    let r = c
        .get(format!("http://{addr}/nested/preseed.cfg"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "d-i x y\n");
    // Conditional GET
    let r = c
        .get(format!("http://{addr}/ks.cfg"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    // Range
    let r = c
        .get(format!("http://{addr}/ks.cfg"))
        .header("Range", "bytes=0-5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["content-range"], "bytes 0-5/14");
    assert_eq!(r.text().await.unwrap(), "rootpw");
    // HEAD
    let r = c
        .head(format!("http://{addr}/ks.cfg"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-length"], "14");
    // Unknown path, wrong method
    let r = c.get(format!("http://{addr}/nope")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c
        .post(format!("http://{addr}/ks.cfg"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    srv.shutdown().await;
    assert!(
        TcpStream::connect(addr).is_err(),
        "port released after shutdown"
    );
}

#[tokio::test]
async fn serves_directory_with_range_etag_and_if_range() {
    let t = tree();
    let srv = server(Some(&t.path().join("www"))).await;
    let addr = srv.local_addr();
    let c = client();
    let url = format!("http://{addr}/hello.txt");
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let lm = r.headers()["last-modified"].to_str().unwrap().to_string();
    assert_eq!(r.text().await.unwrap(), "0123456789abcdef");

    let r = c
        .get(&url)
        .header("Range", "bytes=10-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.text().await.unwrap(), "abcdef");

    let r = c
        .get(&url)
        .header("Range", "bytes=10-")
        .header("If-Range", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    let r = c
        .get(&url)
        .header("Range", "bytes=10-")
        .header("If-Range", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "stale If-Range → full body");
    assert_eq!(r.text().await.unwrap().len(), 16);

    let r = c
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = c
        .get(&url)
        .header("If-Modified-Since", &lm)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = c
        .get(&url)
        .header("Range", "bytes=99-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    let r = c.head(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-length"], "16");

    let r = c
        .get(format!("http://{addr}/sub/a.cfg"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "a");
    // Symlink that stays inside the root is fine.
    let r = c
        .get(format!("http://{addr}/inside.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Content map wins over the directory (both have /ks.cfg); the directory still serves
    // the rest.
    let r = c.get(format!("http://{addr}/ks.cfg")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "rootpw secret\n");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_path_traversal() {
    let t = tree();
    let srv = server(Some(&t.path().join("www"))).await;
    let addr = srv.local_addr();
    for p in [
        "/../outside.txt",
        "/sub/../../outside.txt",
        "/%2e%2e/outside.txt",
        "/%2E%2E/outside.txt",
        "/sub/%2e%2e%2f%2e%2e%2foutside.txt",
        "/..%5coutside.txt",
        "/escape.txt",
        "/updir/outside.txt",
    ] {
        let (code, body) = raw_get(addr, p);
        assert!(code == 403 || code == 400 || code == 404, "{p}: got {code}");
        assert!(!body.contains("top secret"), "{p} leaked the file");
    }
    // An absolute filesystem path in the URL is a path under the root, not the real file.
    let abs = t.path().join("outside.txt");
    let (code, body) = raw_get(addr, abs.to_str().unwrap());
    assert_eq!(code, 404);
    assert!(!body.contains("top secret"));
    let (code, _) = raw_get(addr, "/etc/passwd");
    assert_eq!(code, 404);
    srv.shutdown().await;
}

#[tokio::test]
async fn generated_files_and_port_range() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("gen.cfg");
    std::fs::write(&f, "generated").unwrap();
    let mut files = BTreeMap::new();
    files.insert("answers/gen.cfg".to_string(), f.clone());
    // Two ports that are free right now; the servers take both, a third finds none.
    let (lo, hi) = ports::free_port_range(2);
    let cfg = HttpConfig {
        files,
        port_min: lo,
        port_max: hi,
        ..HttpConfig::default()
    };
    let a = HttpServer::start(cfg.clone()).await.unwrap();
    let b = HttpServer::start(cfg.clone()).await.unwrap();
    assert_ne!(a.port(), b.port(), "two servers never share a port");
    // Range exhausted: a clear error, not a silent reuse.
    let err = HttpServer::start(cfg).await.unwrap_err().to_string();
    assert!(
        err.contains("no free port") && err.contains(&format!("{lo}-{hi}")),
        "{err}"
    );
    let body = client()
        .get(format!("http://{}/answers/gen.cfg", a.local_addr()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "generated");
    // Files are read per request: regenerated content is served.
    std::fs::write(&f, "changed").unwrap();
    let body = client()
        .get(format!("http://{}/answers/gen.cfg", b.local_addr()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "changed");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn request_lines_reach_the_callback() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let s2 = seen.clone();
    let mut content = BTreeMap::new();
    content.insert("a.cfg".to_string(), "12345".to_string());
    let srv = HttpServer::start(HttpConfig {
        content,
        on_request: Some(osimager_http::RequestLog(std::sync::Arc::new(
            move |l: &str| s2.lock().unwrap().push(l.to_string()),
        ))),
        ..HttpConfig::default()
    })
    .await
    .unwrap();
    let base = format!("http://{}", srv.local_addr());
    client().get(format!("{base}/a.cfg")).send().await.unwrap();
    client()
        .get(format!("{base}/missing"))
        .send()
        .await
        .unwrap();
    srv.shutdown().await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, ["GET /a.cfg 200 5", "GET /missing 404 10"]);
}

#[tokio::test]
async fn bad_directory_is_a_clear_error() {
    let cfg = HttpConfig {
        directory: Some("/nonexistent/http/dir".into()),
        ..HttpConfig::default()
    };
    let err = HttpServer::start(cfg).await.unwrap_err().to_string();
    assert!(err.contains("/nonexistent/http/dir"), "{err}");
}

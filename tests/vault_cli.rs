//! Vault through the CLI, against a real OpenBao dev server (see tests/bao_support): the
//! messages a user sees for a refused token and for a secret stored under another mount.

mod bao_support;
use bao_support::*;
use serde_json::json;
use std::process::Command;

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

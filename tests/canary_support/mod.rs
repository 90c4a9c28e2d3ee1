//! The secret canary's configuration (docs/RELIABILITY.md section 5), shared by the tests that
//! feed it to a build: a user config dir made from the test OS's (tests/testos/config) where
//!
//! * the secrets file holds `images/linux` (the guest's password) and `locations/canary` (the
//!   location's password), each a tagged variant of the canary;
//! * a real OpenBao dev server (`bao server -dev`, tests/bao_support) holds the same two
//!   secrets under KV v2 mounts named `images` and `locations`, so the same references
//!   (`|>images/linux:password<|`, `|>locations/canary:password<|`) read either store;
//! * the spec's `testos_password` (the SSH password and the answer file's `password=`) reads
//!   `images/linux`; the `canary` location's def `location_password` reads
//!   `locations/canary`; the answer file carries it too (`location_password=`, a key the
//!   test OS installer ignores), so both reach the guest through the answer file.
//!
//! Built on the shared harness: the including test declares `mod support;` and
//! `mod bao_support;` first.
#![allow(dead_code)]

use crate::bao_support::{http, start_bao, Bao};
use crate::support::canary::Canary;
use crate::support::repo;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub const TARGET: &str = "qemu/canary/testos-1-x86_64";

/// Which secret store the configuration selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    File,
    Vault,
}

fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        let (p, to) = (e.path(), dst.join(e.file_name()));
        if p.is_dir() {
            copy_tree(&p, &to);
        } else {
            std::fs::copy(&p, &to).unwrap();
        }
    }
}

/// The values of each channel.
pub fn file_password(c: &Canary) -> String {
    c.tagged("file")
}
pub fn file_location_password(c: &Canary) -> String {
    c.tagged("file-location")
}
pub fn vault_password(c: &Canary) -> String {
    c.tagged("vault")
}
pub fn vault_location_password(c: &Canary) -> String {
    c.tagged("vault-location")
}

/// Write `<home>/osimager` (an XDG_CONFIG_HOME) for `store` and return `home`.
pub fn user_config(home: &Path, c: &Canary, store: Store, vault_addr: Option<&str>) -> PathBuf {
    let src = repo().join("tests/testos/config/osimager");
    let user = home.join("osimager");
    copy_tree(&src, &user);
    let mut settings = json!({"credential_source": match store {
        Store::File => "config",
        Store::Vault => "vault",
    }});
    if let Some(a) = vault_addr {
        settings["vault_addr"] = Value::String(a.into());
    }
    std::fs::write(user.join("config.json"), settings.to_string()).unwrap();
    std::fs::write(
        user.join("secrets"),
        format!(
            "images/linux username=testos password={}\nlocations/canary password={}\n",
            file_password(c),
            file_location_password(c)
        ),
    )
    .unwrap();
    let mut loc: Value = serde_json::from_str(
        &std::fs::read_to_string(src.join("locations/hermetic.json")).unwrap(),
    )
    .unwrap();
    loc["defs"]["location_password"] = json!("|>locations/canary:password<|");
    std::fs::write(
        user.join("locations/canary.json"),
        serde_json::to_string_pretty(&loc).unwrap(),
    )
    .unwrap();
    // A spec's own defs win over a location's: the user layer's copy carries the reference.
    let spec_file = user.join("specs/testos/spec.json");
    let mut spec: Value =
        serde_json::from_str(&std::fs::read_to_string(&spec_file).unwrap()).unwrap();
    spec["defs"]["testos_password"] = json!("|>images/linux:password<|");
    std::fs::write(&spec_file, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    let cfg = user.join("files/testos/testos.cfg");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("location_password=>>location_password<<\n");
    std::fs::write(&cfg, text).unwrap();
    home.to_path_buf()
}

/// A dev OpenBao holding the Vault channel's two secrets (KV v2 mounts `images` and
/// `locations`); root token `root`.
pub fn vault(c: &Canary) -> Bao {
    let bao = start_bao();
    let t = Some("root");
    for mount in ["images", "locations"] {
        let (st, b) = http(
            bao.port,
            "POST",
            &format!("/v1/sys/mounts/{mount}"),
            t,
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        );
        assert!((200..300).contains(&st), "mount {mount}: {st} {b}");
    }
    for (path, value) in [
        (
            "/v1/images/data/linux",
            json!({"username": "testos", "password": vault_password(c)}),
        ),
        (
            "/v1/locations/data/canary",
            json!({"password": vault_location_password(c)}),
        ),
    ] {
        let (st, b) = http(bao.port, "POST", path, t, Some(json!({ "data": value })));
        assert!((200..300).contains(&st), "write {path}: {st} {b}");
    }
    bao
}

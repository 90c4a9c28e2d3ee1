//! Vault secrets against a real OpenBao dev server (`bao server -dev`) on 127.0.0.1 (see
//! tests/bao_support).

mod bao_support;
use bao_support::*;
use osimager::config::markers::{resolve_packer_vault_refs, substitute_str, DefsEnv};
use osimager::config::secrets::{SecretError, SecretStore};
use osimager::config::vault::{VaultConfig, VaultSecrets};
use osimager::secret::Secret;
use serde_json::{json, Map};

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

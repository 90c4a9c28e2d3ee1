//! The secret-store check: is the store the settings select there, does Vault accept the token,
//! and does it hold the image account (`images/linux`) Linux images are built with.

use super::{Check, Status};
use crate::config::secrets::{FileSecrets, SecretStore};
use crate::config::vault::{VaultConfig, VaultSecrets};
use crate::config::Config;
use std::os::unix::fs::PermissionsExt;

/// The secret every bundled Linux spec reads (user name and password of the image account).
pub const IMAGE_ACCOUNT: &str = "images/linux";

pub(super) fn check(cfg: &Config, contact: bool) -> Check {
    if cfg.settings.get_str("credential_source") == "config" {
        file_check(cfg)
    } else {
        vault_check(cfg, contact)
    }
}

fn has_account(store: &SecretStore) -> Result<(), String> {
    for key in ["username", "password"] {
        store
            .get(&format!("{IMAGE_ACCOUNT}:{key}"))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn file_check(cfg: &Config) -> Check {
    let path = cfg.layers.user.join("secrets");
    if !path.exists() {
        return Check::new(
            "secrets",
            Status::Missing,
            format!(
                "no secrets file {} (credential_source=config): targets that read secrets \
                 (every Linux and Windows spec) cannot be resolved",
                path.display()
            ),
        )
        .path(&path)
        .fix("run `osimager init` (asks for the image account and writes the file)");
    }
    let store = match FileSecrets::load(&path) {
        Ok(f) => SecretStore::File(f),
        Err(e) => {
            return Check::new("secrets", Status::Error, e.to_string())
                .path(&path)
                .fix(format!("make {} readable by this user", path.display()))
        }
    };
    let mode = std::fs::metadata(&path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o600);
    if mode & 0o077 != 0 {
        return Check::new(
            "secrets",
            Status::Warn,
            format!(
                "secrets file {} can be read by other users (mode {mode:o})",
                path.display()
            ),
        )
        .path(&path)
        .fix(format!("chmod 600 {}", path.display()));
    }
    match has_account(&store) {
        Ok(()) => Check::new(
            "secrets",
            Status::Ok,
            format!(
                "secrets file {} (mode 600) has the image account ({IMAGE_ACCOUNT})",
                path.display()
            ),
        )
        .path(&path),
        Err(e) => Check::new(
            "secrets",
            Status::Warn,
            format!("the image account is missing, so Linux targets will not build: {e}"),
        )
        .path(&path)
        .fix("`osimager init --force` asks for it again (other lines of the file are kept)"),
    }
}

fn vault_check(cfg: &Config, contact: bool) -> Check {
    let vc = VaultConfig::from_settings(
        &cfg.settings.get_str("vault_addr"),
        &cfg.settings.get_str("vault_token"),
        "",
        "",
    );
    let fix_unset = "keep secrets in a file instead: `osimager init` (sets \
                     credential_source=config); or use Vault: export VAULT_ADDR and VAULT_TOKEN \
                     (or `osimager config set vault_addr=URL`)";
    if vc.addr.is_empty() {
        return Check::new(
            "secrets",
            Status::Missing,
            "no secret store: credential_source is 'vault' (the default) and no Vault address \
             is set (setting vault_addr, VAULT_ADDR); targets that read secrets (every Linux \
             and Windows spec) cannot be resolved",
        )
        .fix(fix_unset);
    }
    if vc.token.is_none() && vc.role_id.is_none() {
        return Check::new(
            "secrets",
            Status::Missing,
            format!(
                "Vault at {} is set, but no token (setting vault_token, VAULT_TOKEN) or AppRole \
                 (VAULT_ROLE_ID/VAULT_SECRET_ID)",
                vc.addr
            ),
        )
        .fix("export VAULT_TOKEN (or `bao login` / `vault login` and export the token)");
    }
    if !contact {
        return Check::new(
            "secrets",
            Status::Ok,
            format!("Vault at {} (not contacted)", vc.addr),
        );
    }
    let vs = match VaultSecrets::connect(&vc) {
        Ok(v) => v,
        Err(e) => return Check::new("secrets", Status::Error, e.to_string()),
    };
    let addr = vs.addr().to_string();
    match has_account(&SecretStore::Vault(vs)) {
        Ok(()) => Check::new(
            "secrets",
            Status::Ok,
            format!(
                "Vault at {addr}: reachable, token accepted, image account ({IMAGE_ACCOUNT}) \
                 present"
            ),
        ),
        Err(e) => Check::new(
            "secrets",
            Status::Warn,
            format!(
                "Vault at {addr}: reachable and the token is accepted, but the image account is \
                 missing, so Linux targets will not build: {e}"
            ),
        ),
    }
}

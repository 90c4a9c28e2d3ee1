//! Stage 5 of `make_build`: the secret store the settings select (`credential_source`), opened
//! only as far as the configuration needs it.

use super::load::Loaded;
use super::value::{err, path_str};
use crate::config::diags::Diags;
use crate::config::markers;
use crate::config::secrets::{SecretError, SecretStore};
use crate::config::vault::VaultConfig;
use crate::config::{Config, ConfigError};
use serde_json::Value;

/// Open the secret store the settings select (`credential_source`). `Ok(None)`: Vault is
/// selected (the default) but no address, or no token/AppRole, is set.
pub fn open_store(cfg: &Config) -> Result<Option<SecretStore>, SecretError> {
    let source = cfg.settings.get_str("credential_source");
    let vc = VaultConfig::from_settings(
        &cfg.settings.get_str("vault_addr"),
        &cfg.settings.get_str("vault_token"),
        "",
        "",
    );
    if source != "config" && (vc.addr.is_empty() || (vc.token.is_none() && vc.role_id.is_none())) {
        return Ok(None);
    }
    SecretStore::open(&source, &cfg.layers.user, &vc).map(Some)
}

/// The secret store for resolving `target` (as the user wrote it). When the merged files read
/// secrets, a store that is not set up or cannot be opened is an error saying why (a refused
/// token, an unreachable server, a missing secrets file); otherwise it is at most a warning.
pub(super) fn store_for(
    cfg: &Config,
    target: &str,
    l: &Loaded,
    warnings: &mut Diags,
) -> Result<Option<SecretStore>, ConfigError> {
    let uses_refs = markers::uses_secret_refs(&Value::Array(vec![
        Value::Object(l.platform.clone()),
        Value::Object(l.location.clone()),
        Value::Object(l.spec.clone()),
    ]));
    match open_store(cfg) {
        Ok(store) if store.is_some() || !uses_refs => Ok(store),
        Ok(_) => {
            let secrets = cfg.layers.user.join("secrets");
            Err(err(format!(
                "{target} reads secrets (|>…<|, 6>…<6 or {{{{vault …}}}} references), but no \
                 secret store is set up: credential_source is 'vault' and no Vault address and \
                 token are set. Either export VAULT_ADDR and VAULT_TOKEN (or `osimager config \
                 set vault_addr=URL`), or keep the secrets in a file: `osimager init` writes {} \
                 and sets credential_source=config (docs/DATA.md, Secrets, lists the paths)",
                path_str(&secrets)
            )))
        }
        Err(e) if uses_refs => Err(ConfigError::Other(format!(
            "{target} reads secrets, and the secret store cannot be used: {e}"
        ))),
        Err(e) => {
            warnings.push(format!(
                "{e} ({target} reads no secrets, so this does not stop it)"
            ));
            Ok(None)
        }
    }
}

//! Why a secret could not be read: the one error of the secret stores (the secrets file and
//! Vault), and of the markers that read them.

use std::path::PathBuf;

/// Why a secret could not be read. Messages name the path and key, never a value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SecretError {
    #[error(
        "no credential source is configured for secret '{reference}': run `osimager init` (a \
         secrets file, credential_source=config), or use Vault: export VAULT_ADDR and \
         VAULT_TOKEN (or an AppRole: VAULT_ROLE_ID/VAULT_SECRET_ID)"
    )]
    NotConfigured { reference: String },
    #[error(
        "secrets file {} not found: run `osimager init` (it asks for the image account and \
         writes the file), or create it yourself (mode 0600) with lines `path key=value …`, \
         e.g. `images/linux username=root password=…`", path.display()
    )]
    FileMissing { path: PathBuf },
    #[error("cannot read secrets file {}: {reason}", path.display())]
    FileRead { path: PathBuf, reason: String },
    #[error(
        "secret path '{path}' not found in {store}: add a line `{path} KEY=VALUE …` to it \
         (docs/DATA.md lists the keys each path needs)"
    )]
    PathNotFound { path: String, store: String },
    #[error("secret path '{path}' has no key '{key}' in {store}: add {key}=… to that secret")]
    KeyNotFound {
        path: String,
        key: String,
        store: String,
    },
    #[error("invalid secret path '{path}': expected <mount>/<path> (the first component is the KV v2 mount)")]
    InvalidPath { path: String },
    #[error("Vault at {addr} denied access to '{path}' (403 permission denied): grant the token or AppRole a policy with read on it")]
    Forbidden { addr: String, path: String },
    #[error("Vault at {addr} is unreachable ({reason}): check vault_addr/VAULT_ADDR and that the server is running")]
    Unreachable { addr: String, reason: String },
    #[error("Vault login at {addr} failed: {reason}")]
    Auth { addr: String, reason: String },
    #[error(
        "Vault at {addr} refused the token from {origin} ({reason}): the server is reachable but \
         the token is not accepted there (mistyped, expired or revoked). {}",
        token_fix(origin)
    )]
    TokenRejected {
        addr: String,
        /// Where the token came from (`the setting vault_token (config.json)`, `VAULT_TOKEN`).
        origin: String,
        reason: String,
    },
    #[error(
        "secret '{reference}' not found in Vault at {addr}: it is read from KV v2 mount \
         '{mount}', path '{path}'{}", vault_not_found_fix(mount, path, *no_mount)
    )]
    VaultNotFound {
        addr: String,
        /// The secret path as written in the configuration (`images/linux`).
        reference: String,
        mount: String,
        path: String,
        /// The server has no secrets engine mounted at `mount`.
        no_mount: bool,
    },
    #[error("Vault at {addr} failed reading '{path}': {reason}")]
    Vault {
        addr: String,
        path: String,
        reason: String,
    },
}

fn token_fix(origin: &str) -> &'static str {
    if origin.starts_with("the setting") {
        "Set a valid one with `osimager config set vault_token=…`, or clear the setting \
         (`osimager config set vault_token=`) and export VAULT_TOKEN; `bao token lookup` (or \
         `vault token lookup`) shows whether a token is valid"
    } else {
        "Export a valid VAULT_TOKEN (or log in again, e.g. `bao login`); `bao token lookup` (or \
         `vault token lookup`) shows whether a token is valid"
    }
}

fn vault_not_found_fix(mount: &str, path: &str, no_mount: bool) -> String {
    if no_mount {
        format!(
            ", and the server has no secrets engine mounted at '{mount}/'. The first component \
             of a secret path is the mount: create it (`bao secrets enable -path={mount} kv-v2`) \
             and store the secret there (`bao kv put -mount={mount} {path} KEY=-` reads the \
             value from stdin), or write the reference with the mount that holds the secret"
        )
    } else {
        format!(
            "; mount '{mount}' has no secret at '{path}': store it with `bao kv put \
             -mount={mount} {path} KEY=-` (reads the value from stdin; see docs/DATA.md for the \
             keys each path needs)"
        )
    }
}

impl SecretError {
    /// The secret does not exist (missing path or key, or a path without mount): the original
    /// went on with "".
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            SecretError::PathNotFound { .. }
                | SecretError::VaultNotFound { .. }
                | SecretError::KeyNotFound { .. }
                | SecretError::InvalidPath { .. }
        )
    }
}

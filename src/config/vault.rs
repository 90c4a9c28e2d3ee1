//! Vault / OpenBao KV v2 secrets (`credential_source = vault`).
//!
//! A reference `mount/rest/of/path[:key]` reads KV v2 secret `rest/of/path` from mount `mount`
//! (the first path component), like the original's `_get_vault`. Authentication: a token
//! (setting `vault_token`, else `VAULT_TOKEN`) or, when no token is given, an AppRole login
//! (`VAULT_ROLE_ID`/`VAULT_SECRET_ID`; auth mount `approle` or `VAULT_APPROLE_MOUNT`). Server:
//! setting `vault_addr`, else `VAULT_ADDR`.
//!
//! Errors say which of these was used (a refused token names where it came from) and, for a
//! missing secret, which mount and path were read and whether the mount exists.

use crate::config::secret_error::SecretError;
use crate::secret::{redact, Secret};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use vaultrs::client::{Client, VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

/// How to reach and authenticate to Vault.
#[derive(Debug, Clone, Default)]
pub struct VaultConfig {
    pub addr: String,
    pub token: Option<Secret>,
    /// Where `token` came from, for messages (`setting vault_token`, `VAULT_TOKEN`); empty when
    /// given directly.
    pub token_origin: String,
    pub role_id: Option<String>,
    pub secret_id: Option<Secret>,
    /// Auth mount of the AppRole method (default `approle`).
    pub approle_mount: String,
}

fn non_empty(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.trim().to_string())
}

fn env_non_empty(name: &str) -> Option<String> {
    crate::config::env::var(name).and_then(|v| non_empty(&v))
}

impl VaultConfig {
    /// From settings values ("" = unset), each falling back to its environment variable
    /// (`VAULT_ADDR`, `VAULT_TOKEN`, `VAULT_ROLE_ID`, `VAULT_SECRET_ID`, `VAULT_APPROLE_MOUNT`).
    pub fn from_settings(addr: &str, token: &str, role_id: &str, secret_id: &str) -> VaultConfig {
        let token_origin = if non_empty(token).is_some() {
            "the setting vault_token (config.json)"
        } else if env_non_empty("VAULT_TOKEN").is_some() {
            "VAULT_TOKEN"
        } else {
            ""
        };
        VaultConfig {
            token_origin: token_origin.to_string(),
            addr: non_empty(addr)
                .or_else(|| env_non_empty("VAULT_ADDR"))
                .unwrap_or_default(),
            token: non_empty(token)
                .or_else(|| env_non_empty("VAULT_TOKEN"))
                .map(Secret::new),
            role_id: non_empty(role_id).or_else(|| env_non_empty("VAULT_ROLE_ID")),
            secret_id: non_empty(secret_id)
                .or_else(|| env_non_empty("VAULT_SECRET_ID"))
                .map(Secret::new),
            approle_mount: env_non_empty("VAULT_APPROLE_MOUNT")
                .unwrap_or_else(|| "approle".to_string()),
        }
    }
}

type ReadResult = Result<Map<String, Value>, SecretError>;

/// A connected, authenticated Vault client with a per-path read cache.
pub struct VaultSecrets {
    addr: String,
    client: VaultClient,
    token: Secret,
    rt: Option<tokio::runtime::Runtime>,
    cache: Mutex<HashMap<String, ReadResult>>,
}

impl Drop for VaultSecrets {
    fn drop(&mut self) {
        // Never blocks, so dropping inside an async context is fine.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn reason(e: &ClientError) -> String {
    let mut text = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        src = s.source();
    }
    if let ClientError::APIError { errors, .. } = e {
        if !errors.is_empty() {
            text.push_str(": ");
            text.push_str(&errors.join("; "));
        }
    }
    redact(&text)
}

/// The server's answer in a few words: `status 403: permission denied`.
fn api_reason(e: &ClientError) -> String {
    match e {
        ClientError::APIError { code, errors } if !errors.is_empty() => {
            redact(&format!("status {code}: {}", errors.join("; ")))
        }
        _ => match status(e) {
            Some(code) => format!("status {code}: {}", reason(e)),
            None => reason(e),
        },
    }
}

/// Vault answers a read under a path no secrets engine is mounted at with 404 and
/// `no handler for route "…"`, and a missing secret in an existing KV v2 mount with 404 and no
/// error text.
fn no_such_mount(e: &ClientError) -> bool {
    match e {
        ClientError::APIError { errors, .. } => {
            errors.iter().any(|m| m.contains("no handler for route"))
        }
        _ => false,
    }
}

fn status(e: &ClientError) -> Option<u16> {
    match e {
        ClientError::APIError { code, .. } => Some(*code),
        // A non-JSON error body: rustify's ServerResponseError (not re-exported by vaultrs).
        ClientError::RestClientError { source } => {
            let dbg = format!("{source:?}");
            let rest = dbg.strip_prefix("ServerResponseError { code: ")?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        }
        _ => None,
    }
}

impl VaultSecrets {
    /// Connect and authenticate (token: verified with a self-lookup; AppRole: login).
    pub fn connect(cfg: &VaultConfig) -> Result<VaultSecrets, SecretError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let addr = cfg.addr.clone();
        if addr.is_empty() {
            return Err(SecretError::NotConfigured {
                reference: "(vault_addr)".to_string(),
            });
        }
        let auth_err = |r: String| SecretError::Auth {
            addr: addr.clone(),
            reason: r,
        };
        let settings = VaultClientSettingsBuilder::default()
            .address(&addr)
            .token(
                cfg.token
                    .as_ref()
                    .map(|t| t.expose().to_string())
                    .unwrap_or_default(),
            )
            .timeout(Some(Duration::from_secs(15)))
            .build()
            .map_err(|e| auth_err(format!("invalid Vault settings: {e}")))?;
        let mut client =
            VaultClient::new(settings).map_err(|e| auth_err(format!("client: {}", reason(&e))))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| auth_err(format!("cannot start a runtime: {e}")))?;
        let unreachable = |e: &ClientError| SecretError::Unreachable {
            addr: addr.clone(),
            reason: reason(e),
        };
        let token = if let Some(t) = &cfg.token {
            run(&rt, vaultrs::token::lookup_self(&client)).map_err(|e| match status(&e) {
                None => unreachable(&e),
                Some(_) => SecretError::TokenRejected {
                    addr: addr.clone(),
                    origin: if cfg.token_origin.is_empty() {
                        "the configuration".to_string()
                    } else {
                        cfg.token_origin.clone()
                    },
                    reason: api_reason(&e),
                },
            })?;
            t.clone()
        } else if let (Some(role), Some(sid)) = (&cfg.role_id, &cfg.secret_id) {
            let mount = if cfg.approle_mount.is_empty() {
                "approle"
            } else {
                cfg.approle_mount.as_str()
            };
            let info = run(
                &rt,
                vaultrs::auth::approle::login(&client, mount, role, sid.expose()),
            )
            .map_err(|e| match status(&e) {
                None => unreachable(&e),
                Some(_) => auth_err(format!(
                    "the AppRole login (role_id from VAULT_ROLE_ID, auth mount '{mount}') was \
                     refused ({}): check VAULT_ROLE_ID, VAULT_SECRET_ID (secret IDs expire) and \
                     VAULT_APPROLE_MOUNT",
                    api_reason(&e)
                )),
            })?;
            let t = Secret::new(info.client_token);
            client.set_token(t.expose());
            t
        } else {
            return Err(SecretError::NotConfigured {
                reference: "(vault_token or AppRole role_id/secret_id)".to_string(),
            });
        };
        Ok(VaultSecrets {
            addr,
            client,
            token,
            rt: Some(rt),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The server address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// How a secret path is read, for messages: `Vault at ADDR (KV v2 mount 'm', path 'p')`.
    pub fn describe(&self, full_path: &str) -> String {
        match full_path.split_once('/') {
            Some((mount, path)) => format!(
                "Vault at {} (KV v2 mount '{mount}', path '{path}')",
                self.addr
            ),
            None => format!("Vault at {}", self.addr),
        }
    }

    /// The token in use (the AppRole login's token when AppRole was used): what Packer and the
    /// provisioners get as `VAULT_TOKEN`.
    pub fn token(&self) -> &Secret {
        &self.token
    }

    /// The data of KV v2 secret `mount/path` (cached per path).
    pub fn read(&self, full_path: &str) -> Result<Map<String, Value>, SecretError> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = cache.get(full_path) {
            return r.clone();
        }
        let r = self.read_uncached(full_path);
        cache.insert(full_path.to_string(), r.clone());
        r
    }

    fn read_uncached(&self, full_path: &str) -> Result<Map<String, Value>, SecretError> {
        let Some((mount, path)) = full_path.split_once('/') else {
            return Err(SecretError::InvalidPath {
                path: full_path.to_string(),
            });
        };
        let rt = self
            .rt
            .as_ref()
            .expect("runtime lives as long as the client");
        let res: Result<Map<String, Value>, ClientError> =
            run(rt, vaultrs::kv2::read(&self.client, mount, path));
        res.map_err(|e| match status(&e) {
            Some(404) => SecretError::VaultNotFound {
                addr: self.addr.clone(),
                reference: full_path.to_string(),
                mount: mount.to_string(),
                path: path.to_string(),
                no_mount: no_such_mount(&e),
            },
            Some(403) => SecretError::Forbidden {
                addr: self.addr.clone(),
                path: full_path.to_string(),
            },
            Some(_) => SecretError::Vault {
                addr: self.addr.clone(),
                path: full_path.to_string(),
                reason: reason(&e),
            },
            None => SecretError::Unreachable {
                addr: self.addr.clone(),
                reason: reason(&e),
            },
        })
    }
}

/// Drive a future to completion on `rt` from a helper thread, so this works whether or not the
/// caller is itself inside a tokio runtime.
fn run<F>(rt: &tokio::runtime::Runtime, fut: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| rt.block_on(fut))
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

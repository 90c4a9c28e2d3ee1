//! Parts of `make_build`: allow-lists, `-D` defines, the secret store, ISO name defaults and the
//! `rfosimage` retrofit.

use super::diags::{sub, Diags};
use super::loader::State;
use super::pyjson::{py_str, truthy};
use super::resolve::Resolved;
use super::secrets::{SecretError, SecretStore};
use super::vault::VaultConfig;
use super::{Config, ConfigError};
use crate::plan::GeneratedFile;
use crate::urlname::filename_from_url;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

pub(super) fn err(msg: String) -> ConfigError {
    ConfigError::Target(msg)
}

pub(super) fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

pub(super) fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

pub(super) fn check_allowed(
    data: &Map<String, Value>,
    key: &str,
    name: &str,
    msg: impl Fn() -> String,
) -> Result<(), ConfigError> {
    let Some(list) = data.get(key) else {
        return Ok(());
    };
    let allowed: Vec<String> = match list {
        Value::Array(a) => a.iter().map(py_str).collect(),
        Value::String(s) => {
            return if s.contains(name) {
                Ok(())
            } else {
                Err(err(msg()))
            }
        }
        _ => Vec::new(),
    };
    if allowed.iter().any(|a| a == name) {
        Ok(())
    } else {
        Err(ConfigError::NotSupported(format!(
            "{}; allowed {key}: {}",
            msg(),
            if allowed.is_empty() {
                "(none)".into()
            } else {
                allowed.join(", ")
            }
        )))
    }
}

/// `-D "k=v,k2=v2"`.
pub(super) fn apply_defines(defs: &mut Map<String, Value>, item: &str) -> Result<(), ConfigError> {
    for pair in item.split(',') {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(err(format!(
                "invalid define '{pair}' in -D {item:?}: expected KEY=VALUE[,KEY=VALUE…]"
            )));
        };
        if k.is_empty() || v.is_empty() {
            return Err(err(format!("invalid define key/value pair: {k}={v}")));
        }
        defs.insert(k.trim().into(), s(v.trim()));
    }
    Ok(())
}

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

/// The secret store for resolving `target`. When the configuration reads secrets
/// (`uses_refs`), a store that is not set up or cannot be opened is an error saying why (a
/// refused token, an unreachable server, a missing secrets file); otherwise it is at most a
/// warning.
pub(super) fn store_for(
    cfg: &Config,
    target: &str,
    uses_refs: bool,
    warnings: &mut Diags,
) -> Result<Option<SecretStore>, ConfigError> {
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

/// The `urls` def (local copy), `iso_name`, `disk_image_name`, `image_import`.
pub(super) fn iso_defaults(
    cfg: &Config,
    st: &mut State,
    store: Option<&SecretStore>,
    warnings: &mut Diags,
) -> Result<(), ConfigError> {
    let urls = st
        .defs
        .get("urls")
        .cloned()
        .unwrap_or(Value::Array(Vec::new()));
    let local = st.defs.get("local_only").map(truthy).unwrap_or(true);
    let urls = sub(&urls, &st.defs.clone(), store, "defs.urls", warnings)?;
    let Value::Array(urls) = urls else {
        return Err(err("spec error: the `urls` def is not a list".into()));
    };
    if local {
        for e in &urls {
            let Some(u) = e.get("url").filter(|u| truthy(u)).map(py_str) else {
                continue;
            };
            let (name, path) = if u.starts_with('/') {
                let p = Path::new(&u);
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let dir = p.parent().map(path_str).unwrap_or_default();
                st.defs.insert("iso_name".into(), s(&name));
                st.defs.insert("iso_path".into(), s(&dir));
                (name, dir)
            } else {
                let name = filename_from_url(&u);
                let cache = cfg.settings.get_str("packer_cache_dir");
                let path = path_str(&Path::new(&cache).join(&name));
                (name, path)
            };
            st.config.shift_remove("iso_urls");
            st.defs.insert("iso_file".into(), s(path));
            st.defs.insert("iso_name".into(), s(name));
            st.defs.insert("iso_checksum".into(), s("none"));
            break;
        }
    } else if !urls.is_empty() {
        warnings.push(
            "the `urls` def is only honoured with local_only; checking mirrors over the network is not implemented (the spec's iso_url is used)".into(),
        );
    }
    let iso_url = st.defs.get("iso_url").filter(|v| truthy(v)).map(py_str);
    if let Some(u) = iso_url {
        if !st.defs.get("iso_name").is_some_and(truthy) {
            let name = if u.starts_with('/') {
                basename(&u)
            } else {
                filename_from_url(&u)
            };
            st.defs.insert("iso_name".into(), s(name));
        }
    }
    let disk = st
        .defs
        .get("disk_image_url")
        .filter(|v| truthy(v))
        .map(py_str);
    if let Some(u) = &disk {
        if !st.defs.get("disk_image_name").is_some_and(truthy) {
            let name = if u.starts_with('/') {
                basename(u)
            } else {
                filename_from_url(u)
            };
            st.defs.insert("disk_image_name".into(), s(name));
        }
    }
    st.defs.insert(
        "image_import".into(),
        s(if disk.is_some() { "true" } else { "" }),
    );
    Ok(())
}

pub(super) fn basename(p: &str) -> String {
    p.rsplit('/').next().unwrap_or("").to_string()
}

/// `rfosimage`: replace the builder by a `null` builder that keeps the communicator keys
/// (keys starting with the `communicator` value), so only provisioning runs.
pub fn retrofit(r: &mut Resolved) -> Result<(), ConfigError> {
    let Some(comm) = r
        .plan
        .builder
        .get("communicator")
        .map(py_str)
        .filter(|c| !c.is_empty())
    else {
        return Err(err(
            "build does not have a communicator defined (set config.communicator in the platform or spec)".into(),
        ));
    };
    let mut b = Map::new();
    b.insert(
        "name".into(),
        r.plan.defs.get("spec_name").cloned().unwrap_or(s("name")),
    );
    b.insert("type".into(), s("null"));
    for (k, v) in &r.plan.builder {
        if k.starts_with(&comm) {
            b.insert(k.clone(), v.clone());
        }
    }
    r.plan.builder = b.clone();
    if let Some(Value::Array(bs)) = r.build.get_mut("builders") {
        *bs = vec![Value::Object(b)];
    }
    Ok(())
}

/// `pre_build` / `post_build`: OSImager runs the spec's hook, then the platform's. One hook is
/// kept as written; two become a list (the engines accept either).
pub fn hooks(spec: &Map<String, Value>, platform: &Map<String, Value>, key: &str) -> Option<Value> {
    let found: Vec<Value> = [spec.get(key), platform.get(key)]
        .into_iter()
        .flatten()
        .filter(|v| super::pyjson::truthy(v))
        .cloned()
        .collect();
    match found.len() {
        0 => None,
        1 => found.into_iter().next(),
        _ => Some(Value::Array(found)),
    }
}

/// The spec's `files` as the plan carries them (gen_files substitutes markers at generation).
pub(super) fn generated_files(files: &[Value]) -> Vec<GeneratedFile> {
    files
        .iter()
        .filter_map(Value::as_object)
        .map(|f| GeneratedFile {
            dest: f.get("dest").map(py_str).unwrap_or_default(),
            sources: f
                .get("sources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|x| PathBuf::from(py_str(x)))
                .collect(),
        })
        .collect()
}

/// The spec's `required_files`: a plain name, or the whole entry (file, description, url,
/// location) as JSON text, so the engine's "required file missing" message can say where to
/// get it.
pub(super) fn required_files(spec: &Map<String, Value>) -> Vec<String> {
    spec.get("required_files")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| match r {
            Value::Object(_) => r.to_string(),
            other => py_str(other),
        })
        .collect()
}

pub(super) fn split_build(build: &Value) -> (Map<String, Value>, Vec<Value>, Map<String, Value>) {
    let v = build
        .get("variables")
        .cloned()
        .map(into_map)
        .unwrap_or_default();
    let p = build
        .get("provisioners")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let b = build
        .get("builders")
        .and_then(|b| b.get(0))
        .cloned()
        .map(into_map)
        .unwrap_or_default();
    (v, p, b)
}

pub(super) fn into_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub(super) fn random_hex(n: usize) -> String {
    use rand::Rng;
    let mut r = rand::thread_rng();
    (0..n)
        .map(|_| format!("{:x}", r.gen_range(0..16u8)))
        .collect()
}

pub(super) fn random_build_id() -> String {
    format!("packer-{}", random_hex(12))
}

//! Stage 6 of `make_build`: the ISO and disk image names. A local copy from the `urls` def
//! (with `local_only`), else `iso_name` from `iso_url`; `disk_image_name` and `image_import`
//! for builds that boot a prebuilt disk image.

use super::value::{err, path_str, s};
use crate::config::diags::{sub, Diags};
use crate::config::loader::State;
use crate::config::pyjson::{py_str, truthy};
use crate::config::secrets::SecretStore;
use crate::config::{Config, ConfigError};
use crate::urlname::filename_from_url;
use serde_json::Value;
use std::path::Path;

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

fn basename(p: &str) -> String {
    p.rsplit('/').next().unwrap_or("").to_string()
}

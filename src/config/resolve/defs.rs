//! Stage 3 of `make_build`: the defs OSImager computes once the files are merged (version
//! parts, paths, the build id, `iso_path`), the builder's name and boot/shutdown switches, the
//! Packer variables naming the target; and, after the network defs, the user's `-D` defines.

use super::target::Target;
use super::types::ResolveRequest;
use super::value::{err, path_str, random_hex, s};
use crate::config::loader::State;
use crate::config::pyjson::truthy;
use crate::config::{settings, Config, ConfigError};
use serde_json::{Map, Value};

/// Fill the computed defs and variables; creates the request's temp directory (unless it is
/// only named).
pub(super) fn computed(
    cfg: &Config,
    req: &ResolveRequest,
    t: &Target,
    st: &mut State,
) -> Result<(), ConfigError> {
    st.config.insert("name".into(), s(&t.spec));
    let version = &t.entry.version;
    let mut vparts = version.split('.');
    let major = vparts.next().unwrap_or("").to_string();
    let minor = vparts.next().unwrap_or("").to_string();
    if !st.defs.get("boot").map(truthy).unwrap_or(true) {
        st.config.shift_remove("boot_command");
        st.config.shift_remove("boot_wait");
    }
    if !st.defs.get("shutcmd").map(truthy).unwrap_or(true) {
        st.config.shift_remove("shutdown_command");
    }
    if !req.temp_dir_named_only {
        std::fs::create_dir_all(&req.temp_dir).map_err(|e| ConfigError::io(&req.temp_dir, e))?;
    }
    let temp = path_str(&req.temp_dir);
    let spec_dir = t.entry.path.parent().map(path_str).unwrap_or_default();
    let build_id = req.build_id.clone().unwrap_or_else(random_build_id);
    let base_dir = cfg
        .settings
        .values
        .get("base_dir")
        .cloned()
        .unwrap_or(Value::Null);
    for (k, v) in [
        ("base_path", base_dir),
        ("data_path", s(path_str(&cfg.layers.system))),
        ("user_dir", s(path_str(&cfg.layers.user))),
        ("temp_dir", s(&temp)),
        ("tmpdir", s(&temp)),
        ("spec_dir", s(spec_dir)),
        ("build_id", s(build_id)),
        ("dist", s(&t.entry.dist)),
        ("version", s(version)),
        ("major", s(major)),
        ("minor", s(minor)),
        ("arch", s(&t.entry.arch)),
    ] {
        st.defs.insert(k.into(), v);
    }
    // iso_path is a directory on this machine: only the global setting sets it.
    let iso_path = cfg
        .settings
        .values
        .get("iso_path")
        .cloned()
        .unwrap_or(s("/iso"));
    st.defs.insert("iso_path".into(), iso_path);
    for key in ["iso_path", "vms_path"] {
        if let Some(Value::String(v)) = st.defs.get(key) {
            if !v.is_empty() {
                let mut v = v.clone();
                if !v.starts_with('/') {
                    v = path_str(&settings::home_dir().join(&v));
                }
                let v = v.trim_end_matches('/').to_string();
                st.defs.insert(key.into(), s(v));
            }
        }
    }
    let spec_config = st
        .defs
        .get("spec_config")
        .cloned()
        .unwrap_or(s("tasks/spec.yml"));
    for (k, v) in [
        ("platform-name", s(&t.platform)),
        ("location-name", s(&t.location)),
        ("spec-name", s(&t.spec)),
        ("spec-config", spec_config),
    ] {
        st.variables.insert(k.into(), v);
    }
    Ok(())
}

/// `-D "k=v,k2=v2"`, each item in order.
pub(super) fn apply_defines(
    defs: &mut Map<String, Value>,
    defines: &[String],
) -> Result<(), ConfigError> {
    for item in defines {
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
    }
    Ok(())
}

/// `packer-` and 12 random hex digits.
fn random_build_id() -> String {
    format!("packer-{}", random_hex(12))
}

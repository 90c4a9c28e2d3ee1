//! Stage 8 of `make_build`: the Packer build — the builder's empty keys dropped, a bridged QEMU
//! builder given a MAC of its own, and `{{vault …}}` references resolved.

use super::substitute::Substituted;
use super::value::random_hex;
use crate::config::diags::{take_warnings, Diags};
use crate::config::markers::{self, DefsEnv};
use crate::config::pyjson::{py_str, truthy};
use crate::config::secrets::SecretStore;
use crate::config::ConfigError;
use serde_json::{json, Map, Value};

/// Drop the builder's keys whose value is "" (that is how specs switch a key off; OSImager
/// announces each), and give a bridged QEMU builder without `qemuargs` a unique NIC MAC, so
/// that Packer's bridge address discovery cannot match a stale ARP entry of an earlier build.
pub(super) fn tidy(builder: &mut Map<String, Value>, warnings: &mut Diags) {
    let empty: Vec<String> = builder
        .iter()
        .filter(|(_, v)| matches!(v, Value::String(x) if x.is_empty()))
        .map(|(k, _)| k.clone())
        .collect();
    for k in empty {
        warnings.push(format!("removing empty value for: {k}"));
        builder.shift_remove(&k);
    }
    if builder.get("type").and_then(Value::as_str) == Some("qemu")
        && builder.get("net_bridge").is_some_and(truthy)
        && !builder.contains_key("qemuargs")
    {
        let h = random_hex(6);
        let nic_mac = format!("52:54:00:{}:{}:{}", &h[0..2], &h[2..4], &h[4..6]);
        let dev = builder
            .get("net_device")
            .map(py_str)
            .unwrap_or("virtio-net".into());
        let br = builder.get("net_bridge").map(py_str).unwrap_or_default();
        builder.insert(
            "qemuargs".into(),
            json!([
                ["-netdev", format!("bridge,id=user.0,br={br}")],
                ["-device", format!("{dev},netdev=user.0,mac={nic_mac}")]
            ]),
        );
    }
}

/// `{"variables", "provisioners", "builders": [builder]}` with its `{{vault …}}` references
/// read from the store (left as written when there is none).
pub(super) fn assemble(
    s: &Substituted,
    store: Option<&SecretStore>,
    warnings: &mut Diags,
) -> Result<Value, ConfigError> {
    let build = json!({
        "variables": Value::Object(s.variables.clone()),
        "provisioners": Value::Array(s.provisioners.clone()),
        "builders": [Value::Object(s.builder.clone())],
    });
    let Some(store) = store else {
        return Ok(build);
    };
    let env = DefsEnv::new(&s.defs).with_secrets(store);
    let out = markers::resolve_packer_vault_refs(&build, &env)
        .map_err(|e| ConfigError::Other(format!("build: {e}")))?;
    take_warnings(&env, "build", warnings);
    Ok(out)
}

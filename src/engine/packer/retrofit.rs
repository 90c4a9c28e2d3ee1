//! Retrofit (`osimager retrofit`, `rfosimage`): re-run provisioning on a machine that already
//! exists. OSImager replaces the builder with Packer's `null` builder that keeps only the
//! communicator keys (`ssh_*` for `"communicator": "ssh"`), drops the spec's `files`, and runs
//! the same `run_packer` (same environment, venv, hooks, dispatcher lines).
//!
//! Two deliberate fixes, listed in the README: the `communicator` key itself is kept (OSImager
//! dropped it, so a `winrm` spec fell back to Packer's default `ssh`), and when the builder has no
//! `<communicator>_host` the machine's IP (else its FQDN) is used, since the null builder cannot
//! discover an address and Packer refuses to start without one.

use super::PackerError;
use crate::plan::BuildPlan;
use serde_json::{Map, Value};

/// The plan with the builder replaced by the retrofit `null` builder.
pub fn retrofit_plan(plan: &BuildPlan) -> Result<BuildPlan, PackerError> {
    let comm = plan
        .builder
        .get("communicator")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty() && *c != "none")
        .ok_or(PackerError::NoCommunicator)?
        .to_string();
    let name = plan
        .defs
        .get("spec_name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("name")
        .to_string();
    let mut builder = Map::new();
    builder.insert("name".into(), Value::String(name));
    builder.insert("type".into(), Value::String("null".into()));
    builder.insert("communicator".into(), Value::String(comm.clone()));
    for (k, v) in &plan.builder {
        if k.starts_with(&comm) {
            builder.insert(k.clone(), v.clone());
        }
    }
    let host_key = format!("{comm}_host");
    let host_missing = builder
        .get(&host_key)
        .and_then(Value::as_str)
        .is_none_or(|h| h.is_empty());
    if host_missing {
        let host = if plan.ip.is_empty() {
            &plan.fqdn
        } else {
            &plan.ip
        };
        if !host.is_empty() {
            builder.insert(host_key, Value::String(host.clone()));
        }
    }
    let mut out = plan.clone();
    out.builder = builder;
    out.files.clear();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_communicator_keys_only() {
        let mut plan = BuildPlan {
            ip: "192.0.2.10".into(),
            ..Default::default()
        };
        plan.defs
            .insert("spec_name".into(), json!("debian-12-x86_64"));
        plan.builder = serde_json::from_value(json!({
            "type": "qemu", "name": "x", "communicator": "ssh", "ssh_username": "root",
            "ssh_password": "pw", "iso_url": "http://h/x.iso", "boot_command": ["<enter>"]
        }))
        .unwrap();
        let r = retrofit_plan(&plan).unwrap();
        assert_eq!(
            Value::Object(r.builder),
            json!({"name": "debian-12-x86_64", "type": "null", "communicator": "ssh",
                   "ssh_username": "root", "ssh_password": "pw", "ssh_host": "192.0.2.10"})
        );
    }

    #[test]
    fn needs_a_communicator() {
        let plan = BuildPlan::default();
        assert!(matches!(
            retrofit_plan(&plan),
            Err(PackerError::NoCommunicator)
        ));
    }
}

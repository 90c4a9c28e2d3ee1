//! Which `vmware-iso` builder keys the native driver reads, which the engine reads, and which
//! it cannot honour: an unsupported or unknown key fails validation with a message saying
//! what to do, instead of being silently ignored.

use serde_json::{Map, Value};

/// A builder key with a value the VMware driver cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("VMware builder key {key:?}: {message}")]
pub struct ConfigError {
    /// The builder key, e.g. `disk_adapter_type`.
    pub key: String,
    /// What is wrong with its value and what is accepted.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

impl From<crate::qemu::ConfigError> for ConfigError {
    fn from(e: crate::qemu::ConfigError) -> Self {
        ConfigError {
            key: e.key,
            message: e.message,
        }
    }
}

/// Keys this driver reads (Packer's vmware-iso vocabulary).
pub(crate) const DRIVER_KEYS: &[&str] = &[
    "type",
    "vm_name",
    "display_name",
    "guest_os_type",
    "version",
    "cpus",
    "cores",
    "memory",
    "firmware",
    "disk_size",
    "disk_additional_size",
    "disk_adapter_type",
    "disk_type_id",
    "vmdk_name",
    "cdrom_adapter_type",
    "network",
    "network_adapter_type",
    "sound",
    "usb",
    "usb_version",
    "serial",
    "parallel",
    "vhv_enabled",
    "vmx_data",
    "vmx_data_post",
    "vmx_remove_ethernet_interfaces",
    "headless",
    "disable_vnc",
    "vnc_bind_address",
    "vnc_port_min",
    "vnc_port_max",
    "vnc_disable_password",
    "boot_key_interval",
    "format",
    "ovftool_options",
    "skip_export",
    "skip_compaction",
    "ssh_host",
    "ssh_port",
    "winrm_host",
    "winrm_port",
    "communicator",
];

/// Keys of Packer's remote (ESXi) mode that Packer itself ignores for a local Workstation
/// build; OSImager's data sets some of them. Accepted with a warning.
pub(crate) const REMOTE_ONLY_IGNORED: &[&str] = &[
    "keep_registered",
    "insecure_connection",
    "skip_validate_credentials",
];

/// Keys (or key prefixes, ending in `_`) the engine reads, not the driver.
const ENGINE_KEYS: &[&str] = &[
    "name",
    "boot_command",
    "boot_steps",
    "boot_wait",
    "boot_keygroup_interval",
    "http_directory",
    "http_content",
    "http_port_min",
    "http_port_max",
    "http_bind_address",
    "http_interface",
    "iso_url",
    "iso_urls",
    "iso_checksum",
    "iso_target_path",
    "iso_target_extension",
    "output_directory",
    "shutdown_command",
    "shutdown_timeout",
    "pause_before_connecting",
    "ssh_",
    "winrm_",
];

/// vmware-iso keys the native driver does not implement, with what to do instead.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("remote_type", "remote (ESXi) builds are not supported natively"),
    ("remote_host", "remote (ESXi) builds are not supported natively"),
    ("remote_port", "remote (ESXi) builds are not supported natively"),
    ("remote_username", "remote (ESXi) builds are not supported natively"),
    ("remote_password", "remote (ESXi) builds are not supported natively"),
    ("remote_private_key_file", "remote (ESXi) builds are not supported natively"),
    ("remote_datastore", "remote (ESXi) builds are not supported natively"),
    ("remote_cache_datastore", "remote (ESXi) builds are not supported natively"),
    ("remote_cache_directory", "remote (ESXi) builds are not supported natively"),
    ("remote_output_directory", "remote (ESXi) builds are not supported natively"),
    ("fusion_app_path", "VMware Fusion (macOS) is not supported natively"),
    ("network_name", "named networks are a Fusion feature; use network (nat, bridged, hostonly or a vmnet device)"),
    ("vmx_template_path", "custom .vmx templates are not supported natively; express the changes as vmx_data"),
    ("vmx_disk_template_path", "custom disk templates are not supported natively"),
    ("snapshot_name", "snapshots after the build are not supported natively"),
    ("tools_mode", "uploading or attaching VMware Tools is not supported natively; install open-vm-tools from the guest's packages in a provisioner"),
    ("tools_upload_flavor", "uploading VMware Tools is not supported natively; install open-vm-tools from the guest's packages in a provisioner"),
    ("tools_upload_path", "uploading VMware Tools is not supported natively"),
    ("tools_source_path", "uploading VMware Tools is not supported natively"),
    ("floppy_files", "floppy images are not supported by the native VMware driver"),
    ("floppy_dirs", "floppy images are not supported by the native VMware driver"),
    ("floppy_content", "floppy images are not supported by the native VMware driver"),
    ("floppy_label", "floppy images are not supported by the native VMware driver"),
    ("cd_files", "extra CD images (cd_files) are not supported by the native VMware driver yet; serve the files over HTTP (http_directory)"),
    ("cd_content", "extra CD images (cd_content) are not supported by the native VMware driver yet; use http_content"),
    ("cd_label", "extra CD images are not supported by the native VMware driver yet"),
    ("source_path", "vmware-vmx (building from an existing VM) is not supported natively"),
    ("linked", "vmware-vmx linked clones are not supported natively"),
    ("attach_snapshot", "vmware-vmx snapshots are not supported natively"),
];

fn is_engine_key(k: &str) -> bool {
    ENGINE_KEYS.iter().any(|e| {
        if e.ends_with('_') {
            k.starts_with(e)
        } else {
            k == *e
        }
    })
}

fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.trim().is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

/// Check every key of the builder block. Keys whose value is empty count as unset (OSImager
/// blanks keys a platform does not use). Returns warnings for accepted-but-ignored keys.
pub(crate) fn check(builder: &Map<String, Value>) -> Result<Vec<String>, ConfigError> {
    let mut warnings = Vec::new();
    let mut unknown = Vec::new();
    for (k, v) in builder {
        if !is_set(v) || DRIVER_KEYS.contains(&k.as_str()) || is_engine_key(k) {
            continue;
        }
        if let Some((_, why)) = UNSUPPORTED.iter().find(|(u, _)| u == k) {
            return Err(ConfigError::new(
                k,
                format!("{why} (build this target with --engine packer, or remove the key)"),
            ));
        }
        if REMOTE_ONLY_IGNORED.contains(&k.as_str()) {
            warnings.push(format!(
                "builder key {k} only applies to remote (ESXi) builds; ignored for VMware Workstation"
            ));
            continue;
        }
        unknown.push(k.clone());
    }
    if !unknown.is_empty() {
        return Err(ConfigError::new(
            &unknown[0],
            format!(
                "not a vmware-iso key the native driver knows (unknown: {}); check the spelling, or \
                 move keys meant for another hypervisor into a platform_specific block",
                unknown.join(", ")
            ),
        ));
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn engine_and_driver_keys_pass() {
        let b = m(json!({
            "type": "vmware-iso", "vm_name": "x", "ssh_username": "u", "ssh_password": "p",
            "boot_command": ["a"], "http_directory": "/tmp", "iso_url": "x.iso",
            "vmx_data": {"firmware": "efi"}, "keep_registered": true, "cd_files": ""
        }));
        let w = check(&b).unwrap();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("keep_registered"), "{w:?}");
    }

    #[test]
    fn unsupported_and_unknown_keys_are_errors() {
        let e = check(&m(json!({"type": "vmware-iso", "remote_type": "esx5"}))).unwrap_err();
        assert_eq!(e.key, "remote_type");
        assert!(e.to_string().contains("--engine packer"), "{e}");
        let e = check(&m(json!({"cd_files": ["a"]}))).unwrap_err();
        assert!(e.to_string().contains("http_directory"), "{e}");
        let e = check(&m(
            json!({"disk_interface": "virtio", "net_device": "e1000"}),
        ))
        .unwrap_err();
        assert!(e.to_string().contains("disk_interface, net_device"), "{e}");
        assert!(e.to_string().contains("platform_specific"), "{e}");
    }
}

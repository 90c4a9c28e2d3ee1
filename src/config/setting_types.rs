//! What each known setting accepts. OSImager 1.11.1 stores whatever `--set` is given (as a
//! string) and the mistake surfaces later, in a build, far from its cause (`memory=lots` becomes
//! a Packer/QEMU error). osimager checks the value when it is set and names the expected form
//! (a deliberate deviation, docs/COMPAT.md). Values are still stored as strings, as 1.11.1 does.

use serde_json::Value;

/// The expected form of a setting's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingType {
    /// A whole number ≥ 1, with what it counts (`MiB`, …) and an example.
    Count {
        unit: &'static str,
        example: &'static str,
    },
    /// true/false (also yes/no, on/off, 1/0, as OSImager's `to_bool`).
    Bool,
    /// One of a fixed set of words.
    OneOf(&'static [&'static str]),
    /// An http(s) URL, or empty (unset).
    UrlOrEmpty,
    /// Anything, including empty (paths, command names, tokens).
    Text,
}

/// The type of a known setting (`None`: not a setting osimager knows).
pub fn setting_type(key: &str) -> Option<SettingType> {
    use SettingType::*;
    Some(match key {
        "memory" => Count {
            unit: "the VM's memory in MiB",
            example: "4096",
        },
        "boot_disk_size" => Count {
            unit: "the boot disk size in MiB",
            example: "32768",
        },
        "cpu_sockets" => Count {
            unit: "the number of CPU sockets",
            example: "1",
        },
        "cpu_cores" => Count {
            unit: "the number of CPU cores per socket",
            example: "2",
        },
        "local_only" => Bool,
        "credential_source" => OneOf(&["config", "vault"]),
        "vault_addr" => UrlOrEmpty,
        "base_dir" | "user_dir" | "data_dir" | "venv_dir" | "packer_cmd" | "packer_cache_dir"
        | "iso_path" | "ansible_playbook" | "vault_token" => Text,
        _ => return None,
    })
}

/// Check `value` (a string from `config set`/`--set`) for `key`: `Err` says what is expected.
pub fn check(key: &str, value: &str) -> Result<(), String> {
    let Some(t) = setting_type(key) else {
        return Ok(());
    };
    let v = value.trim();
    match t {
        SettingType::Count { unit, example } => match v.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(()),
            _ => Err(format!(
                "{key} must be a whole number ≥ 1 ({unit}), e.g. {key}={example}; got {value:?}"
            )),
        },
        SettingType::Bool => {
            let l = v.to_ascii_lowercase();
            if ["true", "false", "yes", "no", "on", "off", "1", "0"].contains(&l.as_str()) {
                Ok(())
            } else {
                Err(format!(
                    "{key} must be true or false (yes/no, on/off, 1/0 also work); got {value:?}"
                ))
            }
        }
        SettingType::OneOf(words) => {
            if words.contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "{key} must be one of: {}; got {value:?}",
                    words.join(", ")
                ))
            }
        }
        SettingType::UrlOrEmpty => {
            if v.is_empty() || v.starts_with("http://") || v.starts_with("https://") {
                Ok(())
            } else {
                Err(format!(
                    "{key} must be the server's URL, e.g. {key}=https://vault.example.com:8200 \
                     (or empty to use VAULT_ADDR); got {value:?}"
                ))
            }
        }
        SettingType::Text => Ok(()),
    }
}

/// Check a value read from `config.json` (any JSON type): numbers and booleans may be JSON
/// numbers/booleans there.
pub fn check_loaded(key: &str, value: &Value) -> Result<(), String> {
    match (setting_type(key), value) {
        (Some(SettingType::Count { .. }), Value::Number(n))
            if n.as_u64().is_some_and(|n| n >= 1) =>
        {
            Ok(())
        }
        (Some(SettingType::Bool), Value::Bool(_)) => Ok(()),
        (Some(SettingType::Text), _) => Ok(()),
        (_, Value::String(s)) => check(key, s),
        (_, other) => check(key, &other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_bools_words_urls() {
        assert!(check("memory", "4096").is_ok());
        assert!(check("memory", " 4096 ").is_ok());
        let e = check("memory", "lots").unwrap_err();
        assert!(e.contains("whole number") && e.contains("MiB"), "{e}");
        assert!(e.contains("memory=4096") && e.contains("\"lots\""), "{e}");
        assert!(check("cpu_cores", "0").is_err());
        assert!(check("boot_disk_size", "-5").is_err());
        assert!(check("local_only", "Yes").is_ok());
        assert!(check("local_only", "maybe").is_err());
        assert!(check("credential_source", "config").is_ok());
        let e = check("credential_source", "file").unwrap_err();
        assert!(e.contains("config, vault"), "{e}");
        assert!(check("vault_addr", "").is_ok());
        assert!(check("vault_addr", "https://v:8200").is_ok());
        assert!(check("vault_addr", "v:8200").is_err());
        assert!(check("iso_path", "").is_ok());
        assert!(check("packer_cmd", "/opt/packer").is_ok());
    }

    #[test]
    fn loaded_json_types() {
        assert!(check_loaded("memory", &json!(2048)).is_ok());
        assert!(check_loaded("memory", &json!("2048")).is_ok());
        assert!(check_loaded("memory", &json!("lots")).is_err());
        assert!(check_loaded("memory", &json!(2.5)).is_err());
        assert!(check_loaded("local_only", &json!(false)).is_ok());
        assert!(check_loaded("local_only", &json!("no")).is_ok());
        assert!(check_loaded("iso_path", &json!("/iso")).is_ok());
    }
}

//! Reading values of the `virtualbox-iso` builder block (helpers of [`super::config`]).

use super::settings::{GuestAdditions, NatForward, VBOXMANAGE_FIELDS};
use crate::bootcmd::{parse_duration, render, Fields};
use crate::qemu::value::Builder;
use crate::qemu::ConfigError as ValueError;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A builder key the VirtualBox driver cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("VirtualBox builder key {key:?}: {message}")]
pub struct VBoxConfigError {
    /// The builder key, e.g. `hard_drive_interface`.
    pub key: String,
    /// What is wrong with its value and what is accepted.
    pub message: String,
}

impl From<ValueError> for VBoxConfigError {
    fn from(e: ValueError) -> Self {
        VBoxConfigError {
            key: e.key,
            message: e.message,
        }
    }
}

impl From<VBoxConfigError> for crate::DriverError {
    fn from(e: VBoxConfigError) -> Self {
        crate::DriverError::Msg(e.to_string())
    }
}

pub(super) fn cerr(key: &str, message: impl Into<String>) -> VBoxConfigError {
    VBoxConfigError {
        key: key.into(),
        message: message.into(),
    }
}

pub(super) fn choice(
    b: &Builder,
    key: &str,
    accepted: &[&str],
    default: &str,
) -> Result<String, VBoxConfigError> {
    // Case as written in Packer's validation (`UTC`, `82540EM`), compared case-insensitively.
    match b.string(key)? {
        None => Ok(default.to_string()),
        Some(v) => accepted
            .iter()
            .find(|a| a.eq_ignore_ascii_case(&v))
            .map(|a| a.to_string())
            .ok_or_else(|| {
                cerr(
                    key,
                    format!("{v:?} is not accepted; use one of: {}", accepted.join(", ")),
                )
            }),
    }
}

pub(super) fn port(b: &Builder, key: &str, default: u16) -> Result<u16, VBoxConfigError> {
    Ok(b.port(key, default)?)
}

pub(super) fn duration(
    b: &Builder,
    key: &str,
    default: Duration,
) -> Result<Duration, VBoxConfigError> {
    match b.string(key)? {
        None => Ok(default),
        Some(s) => parse_duration(&s).map_err(|e| {
            cerr(
                key,
                format!("{s:?} is not a duration ({e}); write e.g. \"100ms\" or \"2s\""),
            )
        }),
    }
}

/// `[["modifyvm", "{{.Name}}", "--x", "y"], …]`: checked and templated with placeholders so
/// an unknown `{{ .Field }}` fails now.
pub(super) fn commands(b: &Builder, key: &str) -> Result<Vec<Vec<String>>, VBoxConfigError> {
    let Some(v) = b.value(key) else {
        return Ok(Vec::new());
    };
    let bad = || {
        cerr(
            key,
            "expected a list of commands, each a list of strings, e.g. [[\"modifyvm\", \"{{ .Name }}\", \"--vram\", \"32\"]]",
        )
    };
    let placeholders = Fields::placeholders();
    let mut out = Vec::new();
    for entry in v.as_array().ok_or_else(bad)? {
        let cmd: Vec<String> = entry
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|a| match a {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                Value::Bool(x) => Ok(x.to_string()),
                _ => Err(bad()),
            })
            .collect::<Result<_, _>>()?;
        if cmd.is_empty() {
            return Err(cerr(key, "an empty command"));
        }
        for a in &cmd {
            render(a, &placeholders).map_err(|e| {
                cerr(
                    key,
                    format!("{a:?}: {e} (fields here: {})", VBOXMANAGE_FIELDS.join(", ")),
                )
            })?;
        }
        out.push(cmd);
    }
    Ok(out)
}

/// `ssh_port` is the guest's SSH port. OSImager's older data writes `{{ .SSHHostPort }}` there
/// (Packer's own host port); that means the default guest port.
fn guest_ssh_port(b: &Builder) -> Result<u16, VBoxConfigError> {
    match b.string("ssh_port")? {
        Some(s) if s.contains("{{") => Ok(22),
        _ => port(b, "ssh_port", 22),
    }
}

/// `guest_additions_mode` (+ path). Packer's default "upload" is not possible natively: unset
/// means disable, with a warning; an explicit "upload" is an error.
pub(super) fn read_guest_additions(
    b: &Builder,
    warnings: &mut Vec<String>,
) -> Result<GuestAdditions, VBoxConfigError> {
    let ga = match choice(
        b,
        "guest_additions_mode",
        &["disable", "attach", "upload"],
        "upload",
    )?
    .as_str()
    {
        "disable" => GuestAdditions::Disable,
        "attach" => GuestAdditions::Attach {
            path: b.string("guest_additions_path")?.map(PathBuf::from),
        },
        _ => {
            if b.value("guest_additions_mode").is_some() {
                return Err(cerr(
                    "guest_additions_mode",
                    "\"upload\" is not supported by the native VirtualBox driver (the guest \
                     additions ISO would have to be uploaded over the communicator); use \
                     \"attach\" or \"disable\", or --engine packer",
                ));
            }
            warnings.push(
                "guest_additions_mode is not set: Packer would upload the guest additions ISO \
                 (mode \"upload\"); the native driver does not upload it. Set \
                 guest_additions_mode to \"disable\" or \"attach\" to silence this."
                    .to_string(),
            );
            GuestAdditions::Disable
        }
    };
    Ok(ga)
}

/// The communicator's NAT forward (`None` with communicator "none").
pub(super) fn read_forward(b: &Builder) -> Result<Option<NatForward>, VBoxConfigError> {
    let communicator = b.choice("communicator", &["ssh", "winrm", "none"])?;
    let forward = if communicator.as_deref() == Some("none") {
        None
    } else {
        let winrm = communicator.as_deref() == Some("winrm");
        let min_key = if b.value("ssh_host_port_min").is_some() {
            "ssh_host_port_min"
        } else {
            "host_port_min"
        };
        let max_key = if b.value("ssh_host_port_max").is_some() {
            "ssh_host_port_max"
        } else {
            "host_port_max"
        };
        let f = NatForward {
            guest_port: if winrm {
                port(b, "winrm_port", 5985)?
            } else {
                guest_ssh_port(b)?
            },
            host_port_min: port(b, min_key, 2222)?,
            host_port_max: port(b, max_key, 4444)?,
        };
        if f.host_port_min > f.host_port_max {
            return Err(cerr(
                min_key,
                format!("{} is above {max_key} {}", f.host_port_min, f.host_port_max),
            ));
        }
        Some(f)
    };
    Ok(forward)
}

pub(super) fn read_cd_content(b: &Builder) -> Result<BTreeMap<String, String>, VBoxConfigError> {
    Ok(b.text_files("cd_content")?)
}

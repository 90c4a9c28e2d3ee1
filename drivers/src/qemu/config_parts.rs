//! The parts of the QEMU builder block that need more than a plain key read: `qemuargs`, the
//! VNC and SSH port ranges, the floppy label, `qemu_img_args` and the firmware. Each function
//! reads its keys from the block and names the key in its error; the types they read into
//! live here too.

use super::value::{err, Builder, ConfigError};
use serde_json::Value;
use std::path::PathBuf;

/// The guest firmware (`firmware`, `efi_boot`, `efi_firmware_code`/`_vars`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Firmware {
    /// QEMU's default BIOS (SeaBIOS).
    Bios,
    /// `firmware: PATH`: `-bios PATH`.
    BiosFile(PathBuf),
    /// UEFI with pflash code (read-only) and a private copy of the variable store.
    Efi {
        /// The OVMF code image (`efi_firmware_code`), attached read-only.
        code: PathBuf,
        /// The OVMF variable-store template (`efi_firmware_vars`); the VM gets a copy.
        vars: PathBuf,
    },
}

/// VNC display, only when the builder asks for one (keys are typed through QMP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VncConfig {
    /// `vnc_bind_address`: where QEMU's VNC server listens.
    pub bind_address: String,
    /// `vnc_port_min`: lowest TCP port to try.
    pub port_min: u16,
    /// `vnc_port_max`: highest TCP port to try.
    pub port_max: u16,
}

/// SSH port forwarding from the host's loopback to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshForward {
    /// `ssh_port`: the guest's sshd port.
    pub guest_port: u16,
    /// `host_port_min`: lowest loopback port to forward from.
    pub host_port_min: u16,
    /// `host_port_max`: highest loopback port to forward from.
    pub host_port_max: u16,
}

/// `qemu_img_args` (Packer's key): extra arguments for the `qemu-img` commands, inserted
/// before the file names, e.g. `{"convert": ["-o", "compression_type=zstd"]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QemuImgArgs {
    /// Extra `qemu-img convert` arguments (compaction, compression).
    pub convert: Vec<String>,
    /// Extra `qemu-img create` arguments.
    pub create: Vec<String>,
    /// Extra `qemu-img resize` arguments.
    pub resize: Vec<String>,
}

const OVMF_CODE: &[&str] = &[
    "/usr/share/OVMF/OVMF_CODE_4M.fd",
    "/usr/share/OVMF/OVMF_CODE.fd",
];
const OVMF_VARS: &[&str] = &[
    "/usr/share/OVMF/OVMF_VARS_4M.fd",
    "/usr/share/OVMF/OVMF_VARS.fd",
];

fn first_existing(key: &str, candidates: &[&str]) -> Result<PathBuf, ConfigError> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            err(
                key,
                format!(
                    "no OVMF firmware found (looked for {}); install the Debian package `ovmf` \
                     or set efi_firmware_code / efi_firmware_vars",
                    candidates.join(", ")
                ),
            )
        })
}

/// `qemuargs`: a list of argument lists, each starting with a flag.
pub(super) fn qemuargs(b: &Builder) -> Result<Vec<Vec<String>>, ConfigError> {
    let mut qemuargs = Vec::new();
    let Some(v) = b.value("qemuargs") else {
        return Ok(qemuargs);
    };
    let bad = || {
        err(
            "qemuargs",
            "expected a list of lists of strings, e.g. [[\"-m\", \"1024M\"]]",
        )
    };
    for entry in v.as_array().ok_or_else(bad)? {
        let args: Vec<String> = entry
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|a| match a {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(bad()),
            })
            .collect::<Result<_, _>>()?;
        if args.is_empty() || !args[0].starts_with('-') {
            return Err(err(
                "qemuargs",
                format!("entry {args:?} must start with a flag such as \"-netdev\""),
            ));
        }
        qemuargs.push(args);
    }
    Ok(qemuargs)
}

/// `vnc_bind_address`, `vnc_port_min`, `vnc_port_max`: a VNC display only when one is set.
pub(super) fn vnc(b: &Builder) -> Result<Option<VncConfig>, ConfigError> {
    if !["vnc_bind_address", "vnc_port_min", "vnc_port_max"]
        .iter()
        .any(|k| b.value(k).is_some())
    {
        return Ok(None);
    }
    let bind_address = b
        .string("vnc_bind_address")?
        .unwrap_or_else(|| "127.0.0.1".into());
    // QEMU would only say "address resolution failed" once the VM starts.
    if bind_address.parse::<std::net::IpAddr>().is_err() {
        return Err(err(
            "vnc_bind_address",
            format!("{bind_address:?} is not an IP address (e.g. 127.0.0.1)"),
        ));
    }
    let v = VncConfig {
        bind_address,
        port_min: b.port("vnc_port_min", 5900)?,
        port_max: b.port("vnc_port_max", 6000)?,
    };
    if v.port_min < 5900 || v.port_max < v.port_min {
        return Err(err(
            "vnc_port_min",
            format!(
                "need 5900 ≤ vnc_port_min ≤ vnc_port_max, got {}–{}",
                v.port_min, v.port_max
            ),
        ));
    }
    Ok(Some(v))
}

/// `floppy_label`: a FAT volume label, `packer` when unset.
pub(super) fn floppy_label(b: &Builder) -> Result<String, ConfigError> {
    let label = b
        .string("floppy_label")?
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "packer".into());
    if label.len() > 11
        || !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " _-!#$%&'()@^`{}~".contains(c))
    {
        return Err(err(
            "floppy_label",
            format!("{label:?} is not a FAT volume label (at most 11 ASCII letters, digits, spaces or _-!#$%&'()@^`{{}}~)"),
        ));
    }
    Ok(label)
}

/// `communicator`, `ssh_port`/`winrm_port`, `host_port_min`/`host_port_max`: the host port
/// range forwarded to the guest's communicator port; `None` with `communicator: none`.
pub(super) fn ssh_forward(b: &Builder) -> Result<Option<SshForward>, ConfigError> {
    let communicator = b.choice("communicator", &["ssh", "none", "winrm"])?;
    let (port_key, guest_default) = match communicator.as_deref() {
        Some("none") => return Ok(None),
        Some("winrm") => ("winrm_port", 5985),
        _ => ("ssh_port", 22),
    };
    let s = SshForward {
        guest_port: b.port(port_key, guest_default)?,
        host_port_min: b.port("host_port_min", 2222)?,
        host_port_max: b.port("host_port_max", 4444)?,
    };
    if s.host_port_max < s.host_port_min {
        return Err(err(
            "host_port_min",
            format!(
                "host_port_min {} is above host_port_max {}",
                s.host_port_min, s.host_port_max
            ),
        ));
    }
    Ok(Some(s))
}

/// `qemu_img_args`: extra arguments for `qemu-img convert`, `create` and `resize`.
pub(super) fn qemu_img_args(b: &Builder) -> Result<QemuImgArgs, ConfigError> {
    let mut out = QemuImgArgs::default();
    let Some(v) = b.value("qemu_img_args") else {
        return Ok(out);
    };
    let m = v.as_object().ok_or_else(|| {
        err(
            "qemu_img_args",
            "expected {\"convert\": [...], \"create\": [...], \"resize\": [...]}",
        )
    })?;
    for (k, v) in m {
        let list = match k.as_str() {
            "convert" => &mut out.convert,
            "create" => &mut out.create,
            "resize" => &mut out.resize,
            other => {
                return Err(err(
                    "qemu_img_args",
                    format!("{other:?} is not one of convert, create, resize"),
                ))
            }
        };
        let bad = || err(&format!("qemu_img_args.{k}"), "expected a list of strings");
        for a in v.as_array().ok_or_else(bad)? {
            list.push(match a {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(bad()),
            });
        }
    }
    Ok(out)
}

/// `efi_boot`, `firmware`, `efi_firmware_code`, `efi_firmware_vars`.
pub(super) fn firmware(b: &Builder) -> Result<Firmware, ConfigError> {
    let efi_boot = b.bool("efi_boot")?.unwrap_or(false);
    let fw = b.string("firmware")?;
    let wants_efi = efi_boot
        || matches!(
            fw.as_deref().map(str::to_ascii_lowercase).as_deref(),
            Some("efi" | "uefi")
        );
    if wants_efi {
        let code = match b.string("efi_firmware_code")? {
            Some(p) => PathBuf::from(p),
            None => first_existing("efi_firmware_code", OVMF_CODE)?,
        };
        let vars = match b.string("efi_firmware_vars")? {
            Some(p) => PathBuf::from(p),
            None => first_existing("efi_firmware_vars", OVMF_VARS)?,
        };
        for (key, p) in [("efi_firmware_code", &code), ("efi_firmware_vars", &vars)] {
            if !p.is_file() {
                return Err(err(key, format!("{} does not exist", p.display())));
            }
        }
        return Ok(Firmware::Efi { code, vars });
    }
    match fw {
        None => Ok(Firmware::Bios),
        Some(f) if f.eq_ignore_ascii_case("bios") => Ok(Firmware::Bios),
        Some(f) => {
            let p = PathBuf::from(&f);
            if p.is_file() {
                Ok(Firmware::BiosFile(p))
            } else {
                Err(err(
                    "firmware",
                    format!("{f:?} is neither a firmware file nor one of \"bios\", \"efi\""),
                ))
            }
        }
    }
}

//! `VmwareConfig`: the vmware-iso builder block (Packer vocabulary) read into typed settings,
//! with Packer's defaults where the builder is silent.

use super::keys::{self, ConfigError};
use crate::bootcmd::parse_duration;
use crate::driver::DriverEnv;
use crate::qemu::value::{parse_size_mib, Builder};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

impl From<ConfigError> for crate::DriverError {
    fn from(e: ConfigError) -> Self {
        crate::DriverError::Msg(e.to_string())
    }
}

/// Packer's defaults (builder/vmware/common/driver.go of the vmware plugin).
pub const DEFAULT_HARDWARE_VERSION: u32 = 21;
pub const MINIMUM_HARDWARE_VERSION: u32 = 19;
pub const DEFAULT_MEMORY_MIB: u64 = 512;
pub const DEFAULT_DISK_MIB: u64 = 40000;
pub const DEFAULT_GUEST_OS: &str = "other-64";
/// Packer waits 100 ms after every VNC key event; VMware drops keys sent faster.
pub const DEFAULT_KEY_INTERVAL: Duration = Duration::from_millis(100);

/// `firmware`: what the `.vmx` sets as `firmware` (and secure boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// `bios`: legacy BIOS.
    Bios,
    /// `efi`: UEFI.
    Efi,
    /// `efi-secure`: UEFI with Secure Boot.
    EfiSecure,
}

/// `format`: what `export` leaves in the output directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The VM's own files (.vmx + disks): no conversion.
    Vmx,
    /// `ovf`: an OVF descriptor and disks, written by ovftool.
    Ovf,
    /// `ova`: one OVA archive, written by ovftool.
    Ova,
}

impl Format {
    /// The name as the `format` key spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Vmx => "vmx",
            Format::Ovf => "ovf",
            Format::Ova => "ova",
        }
    }
}

/// VNC for typing: where VMware's VNC server listens, and whether it gets a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VncSettings {
    pub bind_address: String,
    pub port_min: u16,
    pub port_max: u16,
    pub disable_password: bool,
}

/// A `vmware-iso` builder block read into typed settings, with Packer's defaults applied.
#[derive(Debug, Clone)]
pub struct VmwareConfig {
    /// `vm_name`: the `.vmx`/VM file name (default `packer-<build name>`).
    pub vm_name: String,
    /// `display_name`: the name VMware shows (`displayName`; default the VM name).
    pub display_name: Option<String>,
    /// `guest_os_type`: the `.vmx` `guestOS` id (default `other-64`).
    pub guest_os_type: String,
    /// `version`: the virtual hardware version (`virtualHW.version`, default 21, at least 19).
    pub version: u32,
    /// `cpus`: vCPUs (`numvcpus`); VMware's default when unset.
    pub cpus: Option<u32>,
    /// `cores`: cores per socket (`cpuid.coresPerSocket`).
    pub cores: Option<u32>,
    /// `memory`: guest RAM in MiB (`memsize`, default 512).
    pub memory_mib: u64,
    /// `firmware`; `None`: VMware's default (BIOS).
    pub firmware: Option<Firmware>,
    /// `disk_size`: size of the main disk in MiB (default 40000).
    pub disk_size_mib: u64,
    /// `disk_additional_size`: sizes of extra disks, in MiB.
    pub disk_additional_size_mib: Vec<u64>,
    /// `lsilogic` (default), `buslogic`, `lsisas1068`, `pvscsi`, `ide`, `sata`, `nvme`.
    pub disk_adapter_type: String,
    /// vmware-vdiskmanager `-t`: 0 growable single file, 1 growable 2 GB extents (default),
    /// 2 preallocated single file, 3 preallocated 2 GB extents, 4 ESX preallocated,
    /// 5 compressed stream-optimized.
    pub disk_type_id: u8,
    /// `vmdk_name`: base name of the disk files (default `disk`).
    pub vmdk_name: String,
    /// `cdrom_adapter_type`: `ide`, `sata` or `scsi`; unset: IDE (SATA beside a SATA or NVMe disk).
    pub cdrom_adapter_type: Option<String>,
    /// `nat` (default), `bridged`, `hostonly`, or a device such as `vmnet2` (custom).
    pub network: String,
    /// `network_adapter_type`: the NIC model (`ethernet0.virtualDev`, e.g. `e1000e`, `vmxnet3`).
    pub network_adapter_type: String,
    /// `sound`: add a sound card.
    pub sound: bool,
    /// `usb`: add a USB controller.
    pub usb: bool,
    /// `usb_version`: `2.0`, `3.1` (default with `usb`) or `3.2`.
    pub usb_version: Option<String>,
    /// `serial: "FILE:<path>"`: the guest's first serial port written to a file.
    pub serial_file: Option<PathBuf>,
    /// `vhv_enabled`: expose hardware virtualization to the guest (nested VMs).
    pub vhv_enabled: bool,
    /// `vmx_data`: `.vmx` entries set on top of the generated ones.
    pub vmx_data: BTreeMap<String, String>,
    /// `vmx_data_post`: `.vmx` entries set after the build, before export.
    pub vmx_data_post: BTreeMap<String, String>,
    /// `vmx_remove_ethernet_interfaces`: drop the `ethernet*` entries from the exported `.vmx`.
    pub vmx_remove_ethernet_interfaces: bool,
    /// `headless`: power on without the Workstation GUI (`vmrun -T ws start … nogui`).
    pub headless: bool,
    /// `None` with `disable_vnc` (then no boot command can be typed).
    pub vnc: Option<VncSettings>,
    /// `boot_key_interval`: delay between VNC key events (default [`DEFAULT_KEY_INTERVAL`]).
    pub boot_key_interval: Duration,
    /// `format`: what `export` writes (default the VM's own files).
    pub format: Format,
    /// `ovftool_options`: extra ovftool arguments for `ovf`/`ova`.
    pub ovftool_options: Vec<String>,
    /// `skip_export`: no ovftool conversion; the VM's own files are exported as with format `vmx`.
    pub skip_export: bool,
    /// `skip_compaction`: do not defragment and shrink the disks after the build.
    pub skip_compaction: bool,
    /// `ssh_host` / `winrm_host`: connect there instead of discovering the guest's address.
    pub comm_host: Option<String>,
    /// The guest port the communicator probes (`ssh_port` 22 / `winrm_port` 5985); `None`
    /// with `communicator: none`.
    pub comm_port: Option<u16>,
    /// Warnings found while reading the block (shown by the engine).
    pub warnings: Vec<String>,
    /// What the engine knows that the builder block does not say.
    pub env: DriverEnv,
}

const DISK_ADAPTERS: &[&str] = &[
    "lsilogic",
    "buslogic",
    "lsisas1068",
    "pvscsi",
    "scsi",
    "ide",
    "sata",
    "nvme",
];
const CDROM_ADAPTERS: &[&str] = &["ide", "sata", "scsi"];
const NIC_TYPES: &[&str] = &["vmxnet3", "e1000e", "e1000"];

fn string_map(b: &Builder, key: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let Some(v) = b.value(key) else {
        return Ok(BTreeMap::new());
    };
    let m = v
        .as_object()
        .ok_or_else(|| ConfigError::new(key, "expected a map of .vmx key → value"))?;
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
            other => {
                return Err(ConfigError::new(
                    key,
                    format!("the value of {k:?} must be a string, got {other}"),
                ))
            }
        };
        if k.contains(['=', '\n', '"']) || s.contains(['\n', '"']) {
            return Err(ConfigError::new(
                key,
                format!("{k:?} = {s:?}: .vmx keys and values cannot contain quotes, newlines or '=' in keys"),
            ));
        }
        out.insert(k.to_ascii_lowercase(), s);
    }
    Ok(out)
}

/// A value that is a Packer template (`{{ .Host }}`) means "let the builder decide".
fn literal(s: Option<String>) -> Option<String> {
    s.filter(|v| !v.contains("{{"))
}

impl VmwareConfig {
    /// Read the vmware-iso builder block. Every error names the key and what it accepts.
    pub fn from_builder(
        builder: &Map<String, Value>,
        env: DriverEnv,
    ) -> Result<VmwareConfig, ConfigError> {
        let b = Builder(builder);
        if let Some(t) = b.string("type")? {
            if t != "vmware-iso" {
                return Err(ConfigError::new(
                    "type",
                    format!("{t:?} is not a VMware builder (expected \"vmware-iso\")"),
                ));
            }
        }
        let mut warnings = keys::check(builder)?;
        let vm_name = b
            .string("vm_name")?
            .unwrap_or_else(|| format!("packer-{}", env.build_name));
        if vm_name.contains('/') || vm_name.starts_with('.') || vm_name.contains('"') {
            return Err(ConfigError::new(
                "vm_name",
                format!("{vm_name:?} must be a plain file name"),
            ));
        }
        let version = b.u32("version")?.unwrap_or(DEFAULT_HARDWARE_VERSION);
        if version < MINIMUM_HARDWARE_VERSION {
            return Err(ConfigError::new(
                "version",
                format!("virtual hardware version {version} is below {MINIMUM_HARDWARE_VERSION}, the oldest VMware Workstation 17 creates; use {DEFAULT_HARDWARE_VERSION}"),
            ));
        }
        let firmware = match b
            .choice("firmware", &["bios", "efi", "efi-secure"])?
            .as_deref()
        {
            Some("bios") => Some(Firmware::Bios),
            Some("efi") => Some(Firmware::Efi),
            Some("efi-secure") => Some(Firmware::EfiSecure),
            _ => None,
        };
        let disk_size_mib = match b.value("disk_size") {
            None => DEFAULT_DISK_MIB,
            Some(v) => parse_size_mib("disk_size", v)?,
        };
        let disk_additional_size_mib = match b.value("disk_additional_size") {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| parse_size_mib("disk_additional_size", v))
                .collect::<Result<_, _>>()?,
            Some(v) => vec![parse_size_mib("disk_additional_size", v)?],
        };
        let mut disk_adapter_type = b
            .choice("disk_adapter_type", DISK_ADAPTERS)?
            .unwrap_or_else(|| "lsilogic".into());
        if disk_adapter_type == "scsi" {
            disk_adapter_type = "lsilogic".into();
        }
        let disk_type_id = match b.u64("disk_type_id")? {
            None => 1,
            Some(t @ 0..=5) => t as u8,
            Some(t) => {
                return Err(ConfigError::new(
                    "disk_type_id",
                    format!("{t} is not a vmware-vdiskmanager disk type (0–5; 1 is the default)"),
                ))
            }
        };
        let network_adapter_type =
            b.choice("network_adapter_type", NIC_TYPES)?
                .ok_or_else(|| {
                    ConfigError::new(
                        "network_adapter_type",
                        format!("is required; use one of {}", NIC_TYPES.join(", ")),
                    )
                })?;
        let usb = b.bool("usb")?.unwrap_or(false);
        let usb_version = b.choice("usb_version", &["2.0", "3.1", "3.2"])?;
        if usb_version.is_some() && !usb {
            return Err(ConfigError::new(
                "usb_version",
                "can only be set with usb: true",
            ));
        }
        let serial_file = match b.string("serial")? {
            None => None,
            Some(s) if s.eq_ignore_ascii_case("none") => None,
            Some(s) => match s.split_once(':') {
                Some((kind, path)) if kind.eq_ignore_ascii_case("file") && !path.is_empty() => {
                    Some(PathBuf::from(path))
                }
                _ => {
                    return Err(ConfigError::new(
                        "serial",
                        format!("{s:?}: only \"FILE:<path>\" (or none) is supported natively"),
                    ))
                }
            },
        };
        if let Some(p) = b.string("parallel")? {
            if !p.eq_ignore_ascii_case("none") {
                return Err(ConfigError::new(
                    "parallel",
                    "parallel ports are not supported natively (use --engine packer)",
                ));
            }
        }
        let vnc = if b.bool("disable_vnc")?.unwrap_or(false) {
            if builder.get("boot_command").is_some_and(|v| {
                v.as_array().is_some_and(|a| !a.is_empty())
                    || v.as_str().is_some_and(|s| !s.is_empty())
            }) {
                return Err(ConfigError::new(
                    "disable_vnc",
                    "the boot command is typed over VNC: remove disable_vnc or the boot_command",
                ));
            }
            None
        } else {
            let v = VncSettings {
                bind_address: b
                    .string("vnc_bind_address")?
                    .unwrap_or_else(|| "127.0.0.1".into()),
                port_min: b.port("vnc_port_min", 5900)?,
                port_max: b.port("vnc_port_max", 6000)?,
                disable_password: b.bool("vnc_disable_password")?.unwrap_or(false),
            };
            if v.port_max < v.port_min {
                return Err(ConfigError::new(
                    "vnc_port_min",
                    format!(
                        "vnc_port_min {} is above vnc_port_max {}",
                        v.port_min, v.port_max
                    ),
                ));
            }
            if v.bind_address.parse::<std::net::IpAddr>().is_err() {
                return Err(ConfigError::new(
                    "vnc_bind_address",
                    format!("{:?} is not an IP address", v.bind_address),
                ));
            }
            Some(v)
        };
        let boot_key_interval = match b.string("boot_key_interval")? {
            None => DEFAULT_KEY_INTERVAL,
            Some(s) => parse_duration(&s).map_err(|e| {
                ConfigError::new(
                    "boot_key_interval",
                    format!("{s:?} is not a duration ({e}); write e.g. \"100ms\""),
                )
            })?,
        };
        let format = match b.choice("format", &["vmx", "ovf", "ova"])?.as_deref() {
            Some("ovf") => Format::Ovf,
            Some("ova") => Format::Ova,
            _ => Format::Vmx,
        };
        let skip_export = b.bool("skip_export")?.unwrap_or(false);
        let communicator = b.choice("communicator", &["ssh", "winrm", "none"])?;
        let (comm_host, comm_port) = match communicator.as_deref() {
            Some("none") => (None, None),
            Some("winrm") => (
                literal(b.string("winrm_host")?),
                Some(b.port("winrm_port", 5985)?),
            ),
            _ => (
                literal(b.string("ssh_host")?),
                Some(b.port("ssh_port", 22)?),
            ),
        };
        let cfg = VmwareConfig {
            display_name: b.string("display_name")?,
            guest_os_type: b
                .string("guest_os_type")?
                .unwrap_or_else(|| DEFAULT_GUEST_OS.into()),
            version,
            cpus: b.u32("cpus")?.filter(|c| *c > 0),
            cores: b.u32("cores")?.filter(|c| *c > 0),
            memory_mib: b
                .u64("memory")?
                .filter(|m| *m > 0)
                .unwrap_or(DEFAULT_MEMORY_MIB),
            firmware,
            disk_size_mib,
            disk_additional_size_mib,
            disk_adapter_type,
            disk_type_id,
            vmdk_name: b.string("vmdk_name")?.unwrap_or_else(|| "disk".into()),
            cdrom_adapter_type: b.choice("cdrom_adapter_type", CDROM_ADAPTERS)?,
            network: b.string("network")?.unwrap_or_else(|| "nat".into()),
            network_adapter_type,
            sound: b.bool("sound")?.unwrap_or(false),
            usb,
            usb_version: usb_version.or_else(|| usb.then(|| "3.1".to_string())),
            serial_file,
            vhv_enabled: b.bool("vhv_enabled")?.unwrap_or(false),
            vmx_data: string_map(&b, "vmx_data")?,
            vmx_data_post: string_map(&b, "vmx_data_post")?,
            vmx_remove_ethernet_interfaces: b
                .bool("vmx_remove_ethernet_interfaces")?
                .unwrap_or(false),
            headless: b.bool("headless")?.unwrap_or(false),
            vnc,
            boot_key_interval,
            format,
            ovftool_options: b.string_list("ovftool_options")?,
            skip_export,
            skip_compaction: b.bool("skip_compaction")?.unwrap_or(false),
            comm_host,
            comm_port,
            warnings: std::mem::take(&mut warnings),
            vm_name,
            env,
        };
        if cfg.needs_ovftool() && super::tools::find(&cfg.env, "ovftool").is_none() {
            return Err(ConfigError::new(
                "format",
                format!(
                    "format {:?} needs VMware's ovftool (4.6 or later), which is not on PATH: install \
                     it from VMware/Broadcom, use format \"vmx\" (the VM's own .vmx and disks), or set \
                     skip_export",
                    cfg.format.as_str()
                ),
            ));
        }
        Ok(cfg)
    }

    /// Whether the export runs ovftool (format ovf/ova and not skipped).
    pub fn needs_ovftool(&self) -> bool {
        self.format != Format::Vmx && !self.skip_export
    }

    /// The disk files, main disk first (Packer's names: `disk.vmdk`, `disk-1.vmdk`, …,
    /// skipping 7, the reserved SCSI unit).
    pub fn disk_names(&self) -> Vec<String> {
        let mut v = vec![format!("{}.vmdk", self.vmdk_name)];
        let mut inc = 1;
        for i in 0..self.disk_additional_size_mib.len() {
            if i + inc == 7 {
                inc = 2;
            }
            v.push(format!("{}-{}.vmdk", self.vmdk_name, i + inc));
        }
        v
    }

    /// The disk sizes in MiB, in the order of [`disk_names`](Self::disk_names).
    pub fn disk_sizes(&self) -> Vec<u64> {
        let mut v = vec![self.disk_size_mib];
        v.extend(&self.disk_additional_size_mib);
        v
    }

    /// The guest's serial console log the driver adds while building (unless `serial` is set).
    pub fn build_serial_log(&self) -> PathBuf {
        self.env
            .log_dir
            .join(format!("{}-serial.log", self.vm_name))
    }
}

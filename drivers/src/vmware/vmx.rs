//! The `.vmx` file: parsing and writing the way Packer does (keys lower-cased, sorted,
//! `key = "value"`), and the configuration a new VM starts from (Packer's default template
//! where the builder is silent, `vmx_data` on top).

use super::config::{Firmware, VmwareConfig};
use std::collections::BTreeMap;
use std::path::Path;

/// A `.vmx` as key → value, keys lower-cased (VMware reads them case-insensitively).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vmx(pub BTreeMap<String, String>);

impl Vmx {
    /// Parse `.vmx` text: `key = "value"` lines; comments (`#`) and other lines are skipped.
    pub fn parse(text: &str) -> Vmx {
        let mut m = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with("//") {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let k = k.trim();
            if k.is_empty() {
                continue;
            }
            let v = v.trim();
            let v = v.strip_prefix('"').unwrap_or(v);
            let v = v.strip_suffix('"').unwrap_or(v);
            m.insert(k.to_ascii_lowercase(), v.to_string());
        }
        Vmx(m)
    }

    /// The file text: one `key = "value"` line per key, sorted (Packer's EncodeVMX; the
    /// `.virtualSSD` keys are unquoted and keep their case, as VMware requires).
    pub fn encode(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.0 {
            if let Some(i) = k.find(".virtualssd") {
                s.push_str(&format!("{}.virtualSSD{} = {v}\n", &k[..i], &k[i + 11..]));
            } else {
                s.push_str(&format!("{k} = \"{v}\"\n"));
            }
        }
        s
    }

    /// Read and parse the `.vmx` at `path`.
    pub fn read(path: &Path) -> std::io::Result<Vmx> {
        Ok(Vmx::parse(&std::fs::read_to_string(path)?))
    }

    /// Write the `.vmx` to `path`.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.encode())
    }

    /// The value of `key` (any case).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(&key.to_ascii_lowercase()).map(String::as_str)
    }

    /// Set `key` (any case) to `value`.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.0.insert(key.to_ascii_lowercase(), value.into());
    }

    /// Remove `key` (any case), returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.0.remove(&key.to_ascii_lowercase())
    }

    /// Remove every key starting with `prefix` (lower-case).
    pub fn remove_prefix(&mut self, prefix: &str) {
        let p = prefix.to_ascii_lowercase();
        self.0.retain(|k, _| !k.starts_with(&p));
    }

    /// Apply `vmx_data` (keys already lower-cased).
    pub fn apply(&mut self, data: &BTreeMap<String, String>) {
        for (k, v) in data {
            self.0.insert(k.to_ascii_lowercase(), v.clone());
        }
    }
}

/// Where the disk and the installation CD-ROM go (Packer's `DefaultDiskAndCDROMTypes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buses {
    pub scsi_present: bool,
    pub scsi_virtual_dev: String,
    pub sata_present: bool,
    pub nvme_present: bool,
    /// `scsi`, `ide`, `sata` or `nvme`.
    pub disk_bus: &'static str,
    /// `ide`, `sata` or `scsi`.
    pub cdrom_bus: &'static str,
    /// The CD-ROM's unit on bus 0 (`0` or `1`).
    pub cdrom_unit: u8,
}

pub fn buses(disk_adapter: &str, cdrom_adapter: Option<&str>) -> Buses {
    let mut b = Buses {
        scsi_present: false,
        scsi_virtual_dev: "lsilogic".into(),
        sata_present: false,
        nvme_present: false,
        disk_bus: "scsi",
        cdrom_bus: "ide",
        cdrom_unit: 0,
    };
    match disk_adapter {
        "ide" => {
            b.disk_bus = "ide";
            b.cdrom_unit = 1;
        }
        "sata" => {
            b.sata_present = true;
            b.disk_bus = "sata";
            b.cdrom_bus = "sata";
            b.cdrom_unit = 1;
        }
        "nvme" => {
            b.nvme_present = true;
            b.disk_bus = "nvme";
            b.sata_present = true;
            b.cdrom_bus = "sata";
        }
        scsi => {
            b.scsi_present = true;
            b.scsi_virtual_dev = scsi.to_string();
        }
    }
    match cdrom_adapter {
        None => {}
        Some(c) if c == disk_adapter => b.cdrom_unit = 1,
        Some(_) => b.cdrom_unit = 0,
    }
    match cdrom_adapter {
        Some("ide") => b.cdrom_bus = "ide",
        Some("sata") => {
            b.sata_present = true;
            b.cdrom_bus = "sata";
        }
        Some("scsi") => {
            b.scsi_present = true;
            b.cdrom_bus = "scsi";
        }
        _ => {}
    }
    b
}

fn tf(b: bool) -> &'static str {
    if b {
        "TRUE"
    } else {
        "FALSE"
    }
}

/// The devices added only for the build (removed or reset by [`clean`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Temporary {
    /// The installation CD-ROM, e.g. `ide0:0`.
    pub cdrom: Option<String>,
    /// A serial port writing the console log (when the builder did not ask for one).
    pub serial: bool,
}

/// The `.vmx` of a new VM: Packer's default template (vmware-iso `step_create_vmx.go`),
/// then `StepConfigureVMX` (`msg.autoanswer`, `uuid.action`, `vmx_data`), then the build's
/// temporary devices. `iso` is the installation ISO (absolute path); `serial_log` is where
/// the console goes when the builder set no `serial` of its own.
pub fn initial(cfg: &VmwareConfig, iso: Option<&Path>, serial_log: &Path) -> (Vmx, Temporary) {
    let mut v = Vmx::default();
    let mut tmp = Temporary::default();
    let name = &cfg.vm_name;
    v.set(".encoding", "UTF-8");
    v.set("displayName", cfg.display_name.as_deref().unwrap_or(name));
    match cfg.firmware {
        Some(Firmware::Bios) => v.set("firmware", "bios"),
        Some(Firmware::Efi) => v.set("firmware", "efi"),
        Some(Firmware::EfiSecure) => {
            v.set("firmware", "efi");
            v.set("uefi.secureBoot.enabled", "TRUE");
        }
        None => {}
    }
    if let Some(c) = cfg.cpus {
        v.set("numvcpus", c.to_string());
    }
    if let Some(c) = cfg.cores {
        v.set("cpuid.coresPerSocket", c.to_string());
    }
    v.set("memsize", cfg.memory_mib.to_string());
    for (k, val) in [
        ("config.version", "8"),
        ("virtualHW.productCompatibility", "hosted"),
        ("floppy0.present", "FALSE"),
        ("bios.bootOrder", "hdd,cdrom"),
        ("gui.fullScreenAtPowerOn", "FALSE"),
        ("gui.viewModeAtPowerOn", "windowed"),
        ("hgfs.linkRootShare", "TRUE"),
        ("hgfs.mapRootShare", "TRUE"),
        ("isolation.tools.hgfs.disable", "FALSE"),
        ("proxyApps.publishToHost", "FALSE"),
        ("replay.filename", ""),
        ("replay.supported", "FALSE"),
        ("checkpoint.vmState", ""),
        ("vmotion.checkpointFBSize", "65536000"),
        ("cleanShutdown", "TRUE"),
        ("powerType.powerOff", "soft"),
        ("powerType.powerOn", "soft"),
        ("powerType.reset", "soft"),
        ("powerType.suspend", "soft"),
        ("tools.syncTime", "TRUE"),
        ("tools.upgrade.policy", "upgradeAtPowerCycle"),
        ("pciBridge0.pciSlotNumber", "17"),
        ("pciBridge0.present", "TRUE"),
        ("vmci0.present", "TRUE"),
        ("vmci0.id", "1861462627"),
        ("vmci0.pciSlotNumber", "35"),
        ("hpet0.present", "TRUE"),
        ("sound.fileName", "-1"),
        ("sound.autodetect", "TRUE"),
        ("parallel0.present", "FALSE"),
        ("parallel0.startConnected", "FALSE"),
    ] {
        v.set(k, val);
    }
    for (n, slot) in [(4, 21), (5, 22), (6, 23), (7, 24)] {
        v.set(&format!("pciBridge{n}.functions"), "8");
        v.set(&format!("pciBridge{n}.pciSlotNumber"), slot.to_string());
        v.set(&format!("pciBridge{n}.present"), "TRUE");
        v.set(&format!("pciBridge{n}.virtualDev"), "pcieRootPort");
    }
    v.set("virtualHW.version", cfg.version.to_string());
    v.set("vhv.enable", tf(cfg.vhv_enabled));
    v.set("nvram", format!("{name}.nvram"));
    v.set("extendedConfigFile", format!("{name}.vmxf"));
    v.set("guestOS", &cfg.guest_os_type);
    // Network: a named network (nat, bridged, hostonly) lets VMware pick the device; any
    // other value is a device of a custom network (Packer's NameIntoDevices for a stock
    // netmap.conf).
    let net = cfg.network.to_ascii_lowercase();
    let named = matches!(net.as_str(), "nat" | "bridged" | "hostonly");
    for (k, val) in [
        ("addressType", "generated"),
        ("bsdName", "en0"),
        ("displayName", "Ethernet"),
        ("linkStatePropagation.enable", "FALSE"),
        ("pciSlotNumber", "33"),
        ("present", "TRUE"),
        ("wakeOnPcktRcv", "FALSE"),
    ] {
        v.set(&format!("ethernet0.{k}"), val);
    }
    v.set(
        "ethernet0.connectionType",
        if named { net.as_str() } else { "custom" },
    );
    v.set(
        "ethernet0.vnet",
        if named { "" } else { cfg.network.as_str() },
    );
    v.set("ethernet0.virtualDev", &cfg.network_adapter_type);
    // Disks and the installation CD-ROM.
    let b = buses(&cfg.disk_adapter_type, cfg.cdrom_adapter_type.as_deref());
    v.set("scsi0.present", tf(b.scsi_present));
    v.set("scsi0.virtualDev", &b.scsi_virtual_dev);
    v.set("scsi0.pciSlotNumber", "16");
    v.set("scsi0:0.redo", "");
    v.set("sata0.present", tf(b.sata_present));
    v.set("nvme0.present", tf(b.nvme_present));
    let names = cfg.disk_names();
    v.set(&format!("{}0:0.present", b.disk_bus), "TRUE");
    v.set(&format!("{}0:0.fileName", b.disk_bus), &names[0]);
    let unit_skip = if b.cdrom_bus == b.disk_bus { 2 } else { 1 };
    let mut skip = unit_skip;
    for (i, n) in names.iter().enumerate().skip(1) {
        if i == 7 {
            skip += 1;
        }
        let unit = i - 1 + skip;
        v.set(&format!("{}0:{unit}.fileName", b.disk_bus), n);
        v.set(&format!("{}0:{unit}.present", b.disk_bus), "TRUE");
        v.set(&format!("{}0:{unit}.redo", b.disk_bus), "");
    }
    let cd = format!("{}0:{}", b.cdrom_bus, b.cdrom_unit);
    v.set(&format!("{cd}.present"), "TRUE");
    v.set(
        &format!("{cd}.fileName"),
        iso.map(|p| p.display().to_string()).unwrap_or_default(),
    );
    v.set(&format!("{cd}.deviceType"), "cdrom-image");
    if iso.is_some() {
        tmp.cdrom = Some(cd);
    }
    // Sound and USB.
    v.set("sound.startConnected", tf(cfg.sound));
    v.set("sound.present", tf(cfg.sound));
    if cfg.usb {
        v.set("usb.present", "TRUE");
        v.set("ehci.present", "TRUE");
        if matches!(cfg.usb_version.as_deref(), Some("3.1" | "3.2")) {
            v.set("usb_xhci.present", "TRUE");
        }
    }
    // Serial: the builder's file, else the build's console log (temporary).
    let (file, temporary) = match &cfg.serial_file {
        Some(f) => (f.as_path(), false),
        None => (serial_log, true),
    };
    v.set("serial0.present", "TRUE");
    v.set("serial0.startConnected", "TRUE");
    v.set("serial0.fileType", "file");
    v.set("serial0.fileName", file.display().to_string());
    v.set("serial0.autodetect", "FALSE");
    v.set("serial0.tryNoRxLoss", "FALSE");
    tmp.serial = temporary;
    // StepConfigureVMX.
    v.set("msg.autoanswer", "true");
    v.set("uuid.action", "create");
    v.apply(&cfg.vmx_data);
    if let Some(d) = &cfg.display_name {
        v.set("displayName", d);
        v.set("extendedConfigFile", format!("{d}.vmxf"));
    }
    (v, tmp)
}

/// VNC for typing (Packer's StepConfigureVNC).
pub fn enable_vnc(v: &mut Vmx, ip: &str, port: u16, password: Option<&str>) {
    v.set("RemoteDisplay.vnc.enabled", "TRUE");
    v.set("RemoteDisplay.vnc.port", port.to_string());
    v.set("RemoteDisplay.vnc.ip", ip);
    match password {
        Some(p) => v.set("RemoteDisplay.vnc.password", p),
        None => {
            v.remove("RemoteDisplay.vnc.password");
        }
    }
}

/// After the build (Packer's StepConfigureVMX with `vmx_data_post`, then StepCleanVMX):
/// the installation CD-ROM is reset to an auto-detected host drive, the temporary serial
/// port disabled, and every `RemoteDisplay.vnc.*` key removed — Packer only sets
/// `enabled = FALSE` and leaves the port and password in the file; we remove them so no
/// password outlives the build. With `remove_ethernet`, every `ethernet*` key goes.
pub fn clean(v: &mut Vmx, tmp: &Temporary, post: &BTreeMap<String, String>, remove_ethernet: bool) {
    v.apply(post);
    if let Some(cd) = &tmp.cdrom {
        if v.get(&format!("{cd}.deviceType"))
            .is_some_and(|t| t.starts_with("cdrom-"))
        {
            v.set(&format!("{cd}.deviceType"), "cdrom-raw");
            v.set(&format!("{cd}.fileName"), "auto detect");
            v.set(&format!("{cd}.clientDevice"), "TRUE");
        }
    }
    if tmp.serial {
        v.remove_prefix("serial0.");
        v.set("serial0.present", "FALSE");
    }
    v.remove_prefix("remotedisplay.vnc.");
    if remove_ethernet {
        v.remove_prefix("ethernet");
    }
    // Packer's StepConfigureVMX runs again here: VMware's generated MAC address (and its
    // offset) goes, so every copy of the image gets its own.
    v.0.retain(|k, _| !is_generated_address(k));
    v.set("msg.autoanswer", "true");
    v.set("uuid.action", "create");
}

/// `ethernet<N>.generatedAddress…` (Packer's `(?i)^ethernet\d+\.generatedAddress`).
fn is_generated_address(k: &str) -> bool {
    k.strip_prefix("ethernet")
        .map(|r| r.trim_start_matches(|c: char| c.is_ascii_digit()))
        .is_some_and(|r| r.len() < k.len() - 8 && r.starts_with(".generatedaddress"))
}

//! `VBoxConfig`: the `virtualbox-iso` builder block (Packer vocabulary) read into typed
//! settings. Defaults are Packer's unless a comment says otherwise. Every key is checked:
//! unknown keys and Packer keys the native driver does not implement are errors here, before
//! anything is created.

pub use super::config_read::VBoxConfigError;
use super::config_read::{
    cerr, choice, commands, duration, port, read_cd_content, read_forward, read_guest_additions,
};
use super::keys::check_key;
pub use super::settings::{
    DiskBus, ExportFormat, GuestAdditions, NatForward, Vrdp, DEFAULT_KEYGROUP_INTERVAL,
};
use super::vboxmanage::LockRetry;
use crate::bootcmd::Fields;
use crate::driver::DriverEnv;
use crate::qemu::value::{parse_size_mib, Builder};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A `virtualbox-iso` builder block read into typed settings, with Packer's defaults applied.
#[derive(Debug, Clone)]
pub struct VBoxConfig {
    /// `vm_name`: the VirtualBox VM name (default `packer-<build name>`).
    pub vm_name: String,
    /// `guest_os_type`: VirtualBox's OS type id (`--ostype`, default `Other`).
    pub guest_os_type: String,
    /// `cpus`: number of vCPUs.
    pub cpus: u32,
    /// `memory`: guest RAM in MiB (default 512).
    pub memory_mib: u64,
    /// `disk_size`: size of the main disk in MiB.
    pub disk_size_mib: u64,
    /// `disk_additional_size`: sizes of extra disks on the same controller, in MiB.
    pub disk_additional_size_mib: Vec<u64>,
    /// `hard_drive_interface`: the controller the disks hang on (default IDE).
    pub disk_bus: DiskBus,
    /// `hard_drive_nonrotational`: the guest sees the disks as SSDs.
    pub nonrotational: bool,
    /// `hard_drive_discard`: pass the guest's TRIM/discard through to the disk image.
    pub discard: bool,
    /// `sata_port_count`: ports of the SATA controller (1–30).
    pub sata_port_count: u32,
    /// `nvme_port_count`: ports of the NVMe controller (1–255).
    pub nvme_port_count: u32,
    /// `iso_interface`: `ide`, `sata` or `virtio`.
    pub iso_bus: DiskBus,
    /// `bios` or `efi`.
    pub firmware: String,
    /// `chipset`: `piix3` (default), `ich9`, `armv8` or `armv8virtual`.
    pub chipset: String,
    /// `rtc_time_base` is UTC.
    pub rtc_utc: bool,
    /// `nic_type`: the NIC model (`--nictype1`), VirtualBox's default when unset.
    pub nic_type: String,
    /// `audio_controller`: `ac97` (default), `hda`, `sb16` or `none`.
    pub audio_controller: String,
    /// `sound`: the host audio driver (`--audio-driver`, default `none`).
    pub sound: String,
    /// `usb`: enable a USB controller.
    pub usb: bool,
    /// `usb_controller`: `ohci`, `ehci` (default), `xhci` or `none`.
    pub usb_controller: String,
    /// `mouse`: the pointing device (`ps2` default, `usb`, `usbtablet`, `usbmultitouch`).
    pub mouse: String,
    /// `keyboard`: `ps2` (default) or `usb`.
    pub keyboard: String,
    /// `gfx_controller`: the graphics adapter (`vboxsvga`, `vmsvga`, …); VirtualBox's default when unset.
    pub gfx_controller: Option<String>,
    /// `gfx_vram_size`: video memory in MiB (at most 128).
    pub gfx_vram_mib: Option<u32>,
    /// `gfx_accelerate_3d`: enable 3D acceleration.
    pub gfx_accelerate_3d: bool,
    /// `gfx_efi_resolution`: the EFI framebuffer resolution, `WIDTHxHEIGHT`.
    pub gfx_efi_resolution: Option<String>,
    /// `nested_virt`: expose VT-x/AMD-V to the guest (left alone when unset).
    pub nested_virt: Option<bool>,
    /// `headless`: start the VM without a GUI window (VRDP then serves the console).
    pub headless: bool,
    /// The VRDP server of a headless VM (`vrdp_bind_address`, `vrdp_port_min`/`max`).
    pub vrdp: Vrdp,
    /// `vboxmanage`: run after the VM is configured, before it starts (templated).
    pub vboxmanage: Vec<Vec<String>>,
    /// `vboxmanage_post`: run after shutdown, before export (templated).
    pub vboxmanage_post: Vec<Vec<String>>,
    /// `guest_additions_mode`/`guest_additions_path`: whether to attach the additions ISO.
    pub guest_additions: GuestAdditions,
    /// `format`: what `export` writes, OVF (default) or OVA.
    pub format: ExportFormat,
    /// `export_opts`: extra `VBoxManage export` arguments.
    pub export_opts: Vec<String>,
    /// `output_filename`: base name of the exported file (default the VM name).
    pub output_filename: Option<String>,
    /// `skip_export`: copy the disks to the output directory instead of exporting.
    pub skip_export: bool,
    /// `keep_registered`: leave the VM registered (in VirtualBox's machine folder) after the build.
    pub keep_registered: bool,
    /// `None`: communicator `none`.
    pub forward: Option<NatForward>,
    /// `skip_nat_mapping`: no NAT forward; the communicator connects to the guest's own address.
    pub skip_nat_mapping: bool,
    /// `boot_keygroup_interval`: pause between groups of 25 scancodes (default 100 ms).
    pub keygroup_interval: Duration,
    /// `post_shutdown_delay`: wait this long after the guest powers off before export.
    pub post_shutdown_delay: Duration,
    /// `cd_files`: files put on a generated ISO attached as an extra DVD.
    pub cd_files: Vec<PathBuf>,
    /// `cd_content`: (path on the CD, text) pairs for that generated ISO.
    pub cd_content: BTreeMap<String, String>,
    /// `cd_label`: volume label of that generated ISO.
    pub cd_label: Option<String>,
    /// What the engine knows that the builder block does not say.
    pub env: DriverEnv,
    /// Bound for retrying session-lock failures (not a builder key; tests shorten it).
    pub lock_retry: LockRetry,
    /// How long `destroy` and `force_stop` wait for a powered-off VM's session to unlock.
    pub unlock_timeout: Duration,
    /// Warnings found while reading the block (shown by the engine).
    pub warnings: Vec<String>,
}

impl VBoxConfig {
    /// Read the builder block. Every error names the key and what it accepts.
    pub fn from_builder(
        builder: &Map<String, Value>,
        env: DriverEnv,
    ) -> Result<VBoxConfig, VBoxConfigError> {
        let b = Builder(builder);
        if let Some(t) = b.string("type")? {
            if t != "virtualbox-iso" {
                return Err(cerr(
                    "type",
                    format!(
                        "{t:?} is not built by the VirtualBox driver (expected \"virtualbox-iso\")"
                    ),
                ));
            }
        }
        let mut problems: Vec<String> = builder
            .keys()
            .filter_map(|k| check_key(k).map(|m| format!("{k:?}: {m}")))
            .collect();
        if !problems.is_empty() {
            problems.sort();
            let key = problems[0]
                .split(':')
                .next()
                .unwrap_or("")
                .trim_matches('"')
                .to_string();
            return Err(cerr(&key, problems.join("; ")));
        }
        for key in ["disable_shutdown", "acpi_shutdown"] {
            if b.bool(key)? == Some(true) {
                return Err(cerr(
                    key,
                    "true is not supported natively (the native engine shuts the guest down with \
                     shutdown_command, else the ACPI power button); remove it or use --engine packer",
                ));
            }
        }
        let mut warnings = Vec::new();
        let vm_name = b
            .string("vm_name")?
            .unwrap_or_else(|| format!("packer-{}", env.build_name));
        if vm_name.is_empty() || vm_name.contains(['/', '\\']) || vm_name.starts_with('.') {
            return Err(cerr(
                "vm_name",
                format!("{vm_name:?} must be a plain file name"),
            ));
        }
        let disk_size_mib = match b.value("disk_size") {
            None => 40000,
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
        let disk_bus = match choice(
            &b,
            "hard_drive_interface",
            &["ide", "sata", "scsi", "pcie", "virtio"],
            "ide",
        )?
        .as_str()
        {
            "sata" => DiskBus::Sata,
            "scsi" => DiskBus::Scsi,
            "pcie" => DiskBus::Nvme,
            "virtio" => DiskBus::Virtio,
            _ => DiskBus::Ide,
        };
        let iso_bus = match choice(&b, "iso_interface", &["ide", "sata", "virtio"], "ide")?.as_str()
        {
            "sata" => DiskBus::Sata,
            "virtio" => DiskBus::Virtio,
            _ => DiskBus::Ide,
        };
        let sata_port_count = b.u32("sata_port_count")?.unwrap_or(1).max(1);
        if sata_port_count > 30 {
            return Err(cerr("sata_port_count", "cannot be greater than 30"));
        }
        let nvme_port_count = b.u32("nvme_port_count")?.unwrap_or(1).max(1);
        if nvme_port_count > 255 {
            return Err(cerr("nvme_port_count", "cannot be greater than 255"));
        }
        let firmware = choice(&b, "firmware", &["bios", "efi"], "bios")?;
        let gfx_vram_mib = b.u32("gfx_vram_size")?.filter(|v| *v > 0);
        if let Some(v) = gfx_vram_mib {
            if v > 128 {
                return Err(cerr("gfx_vram_size", format!("{v} MiB: at most 128")));
            }
        }
        let gfx_efi_resolution = b.string("gfx_efi_resolution")?;
        if let Some(r) = &gfx_efi_resolution {
            let ok = r.split_once('x').is_some_and(|(w, h)| {
                !w.is_empty()
                    && !h.is_empty()
                    && (w.to_owned() + h).bytes().all(|c| c.is_ascii_digit())
            });
            if !ok {
                return Err(cerr(
                    "gfx_efi_resolution",
                    format!("{r:?}: write WIDTHxHEIGHT, e.g. 1920x1080"),
                ));
            }
        }
        let guest_additions = read_guest_additions(&b, &mut warnings)?;
        if let Some(f) = b.string("virtualbox_version_file")? {
            warnings.push(format!(
                "virtualbox_version_file {f:?}: the native driver does not upload the VirtualBox \
                 version into the guest"
            ));
        }
        let format = match choice(&b, "format", &["ovf", "ova"], "ovf")?.as_str() {
            "ova" => ExportFormat::Ova,
            _ => ExportFormat::Ovf,
        };
        let export_opts = b.string_list("export_opts")?;
        let forward = read_forward(&b)?;
        let vrdp = Vrdp {
            bind_address: b
                .string("vrdp_bind_address")?
                .unwrap_or_else(|| "127.0.0.1".into()),
            port_min: port(&b, "vrdp_port_min", 5900)?,
            port_max: port(&b, "vrdp_port_max", 6000)?,
        };
        if vrdp.port_min > vrdp.port_max {
            return Err(cerr("vrdp_port_min", "must not be above vrdp_port_max"));
        }
        let cd_content = read_cd_content(&b)?;
        let skip_nat_mapping = b.bool("skip_nat_mapping")?.unwrap_or(false)
            || b.bool("ssh_skip_nat_mapping")?.unwrap_or(false);
        let cfg = VBoxConfig {
            vm_name,
            guest_os_type: b.string("guest_os_type")?.unwrap_or_else(|| "Other".into()),
            cpus: b.u32("cpus")?.unwrap_or(1).max(1),
            memory_mib: b.u64("memory")?.filter(|m| *m > 0).unwrap_or(512),
            disk_size_mib,
            disk_additional_size_mib,
            disk_bus,
            nonrotational: b.bool("hard_drive_nonrotational")?.unwrap_or(false),
            discard: b.bool("hard_drive_discard")?.unwrap_or(false),
            sata_port_count,
            nvme_port_count,
            iso_bus,
            firmware,
            chipset: choice(
                &b,
                "chipset",
                &["piix3", "ich9", "armv8", "armv8virtual"],
                "piix3",
            )?,
            rtc_utc: choice(&b, "rtc_time_base", &["UTC", "local"], "local")? == "UTC",
            nic_type: choice(
                &b,
                "nic_type",
                &[
                    "82540EM",
                    "82543GC",
                    "82545EM",
                    "Am79C970A",
                    "Am79C973",
                    "Am79C960",
                    "virtio",
                    "usbnet",
                ],
                "82540EM",
            )?,
            audio_controller: choice(
                &b,
                "audio_controller",
                &["ac97", "hda", "sb16", "none"],
                "ac97",
            )?,
            sound: b.string("sound")?.unwrap_or_else(|| "none".into()),
            usb: b.bool("usb")?.unwrap_or(false),
            usb_controller: choice(
                &b,
                "usb_controller",
                &["ohci", "ehci", "xhci", "none"],
                "ehci",
            )?,
            mouse: choice(
                &b,
                "mouse",
                &["ps2", "usb", "usbtablet", "usbmultitouch"],
                "ps2",
            )?,
            keyboard: choice(&b, "keyboard", &["ps2", "usb"], "ps2")?,
            gfx_controller: match b.string("gfx_controller")? {
                None => None,
                Some(_) => Some(choice(
                    &b,
                    "gfx_controller",
                    &["vboxvga", "vboxsvga", "vmsvga", "qemuramfb", "none"],
                    "vboxsvga",
                )?),
            },
            gfx_vram_mib,
            gfx_accelerate_3d: b.bool("gfx_accelerate_3d")?.unwrap_or(false),
            gfx_efi_resolution,
            nested_virt: b.bool("nested_virt")?,
            headless: b.bool("headless")?.unwrap_or(false),
            vrdp,
            vboxmanage: commands(&b, "vboxmanage")?,
            vboxmanage_post: commands(&b, "vboxmanage_post")?,
            guest_additions,
            format,
            export_opts,
            output_filename: b.string("output_filename")?,
            skip_export: b.bool("skip_export")?.unwrap_or(false),
            keep_registered: b.bool("keep_registered")?.unwrap_or(false),
            forward,
            skip_nat_mapping,
            keygroup_interval: duration(&b, "boot_keygroup_interval", DEFAULT_KEYGROUP_INTERVAL)?,
            post_shutdown_delay: duration(&b, "post_shutdown_delay", Duration::ZERO)?,
            cd_files: b
                .string_list("cd_files")?
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            cd_content,
            cd_label: b.string("cd_label")?,
            env,
            lock_retry: LockRetry::default(),
            unlock_timeout: Duration::from_secs(60),
            warnings,
        };
        Ok(cfg)
    }

    /// The name of the exported file (`output_filename` or `vm_name`, plus `.ovf`/`.ova`).
    pub fn export_file_name(&self) -> String {
        format!(
            "{}.{}",
            self.output_filename.as_deref().unwrap_or(&self.vm_name),
            self.format.extension()
        )
    }

    /// Template fields for `vboxmanage` commands.
    pub fn fields(&self, http: Option<&crate::HttpEndpoint>) -> Fields {
        let mut f = Fields::new().with("Name", self.vm_name.clone());
        if let Some(h) = http {
            f.insert("HTTPIP", h.ip.clone());
            f.insert("HTTPPort", h.port.to_string());
        }
        f
    }
}

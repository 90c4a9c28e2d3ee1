//! The VBoxManage command lines that create and configure a build VM, as pure functions of the
//! configuration and the VirtualBox version (so every spelling is unit-tested per version).
//!
//! Spellings: the pre-7.0 option names are still accepted by VirtualBox 7.x, so they are used
//! on every version, except where 7.x needs its own: `--audio-driver`/`--audio-enabled` (7.x
//! changed the audio options) and `--nat-localhostreachable1 on` (7.x NAT no longer lets the
//! guest reach the host's loopback through 10.0.2.2 without it; 6.x rejects the option).
//! This is also what Packer's virtualbox plugin sends.

use super::config::{DiskBus, VBoxConfig};
use super::version::VBoxVersion;
use crate::DriverError;
use std::path::{Path, PathBuf};

/// The name of the communicator's NAT rule (Packer's, so a leftover rule of a Packer build is
/// recognised too).
pub const NAT_RULE: &str = "packercomm";

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn on_off(b: bool) -> String {
    if b { "on" } else { "off" }.to_string()
}

/// `createvm`: registered, in `basefolder` (the build's work directory) unless the VM is to be
/// kept registered, in which case VirtualBox's default machine folder holds it.
pub fn createvm(cfg: &VBoxConfig, basefolder: Option<&Path>) -> Vec<String> {
    let mut a = vec![
        "createvm".into(),
        "--name".into(),
        cfg.vm_name.clone(),
        "--ostype".into(),
        cfg.guest_os_type.clone(),
        "--register".into(),
    ];
    if let Some(b) = basefolder {
        a.extend(["--basefolder".into(), s(b)]);
    }
    a
}

/// One `modifyvm` with the hardware settings (Packer sends one per setting; one call is
/// faster and fails the same way).
pub fn modifyvm_hardware(cfg: &VBoxConfig, v: &VBoxVersion) -> Vec<String> {
    let mut a: Vec<String> = vec!["modifyvm".into(), cfg.vm_name.clone()];
    let mut add = |k: &str, val: String| {
        a.push(k.to_string());
        a.push(val);
    };
    add("--boot1", "disk".into());
    add("--boot2", "dvd".into());
    add("--boot3", "none".into());
    add("--boot4", "none".into());
    add("--cpus", cfg.cpus.to_string());
    if cfg.cpus > 1 {
        add("--ioapic", "on".into());
    }
    add("--memory", cfg.memory_mib.to_string());
    if cfg.usb && cfg.usb_controller != "none" {
        add("--usb", "on".into());
        for c in ["ohci", "ehci", "xhci"] {
            add(&format!("--usb{c}"), on_off(cfg.usb_controller == c));
        }
    } else {
        add("--usb", "off".into());
    }
    if v.is_7x() {
        if cfg.audio_controller == "none" {
            add("--audio-enabled", "off".into());
        } else {
            add("--audio-driver", cfg.sound.clone());
            add("--audiocontroller", cfg.audio_controller.clone());
        }
    } else if cfg.audio_controller == "none" {
        add("--audio", "none".into());
    } else {
        add("--audio", cfg.sound.clone());
        add("--audiocontroller", cfg.audio_controller.clone());
    }
    if cfg.audio_controller != "none" && cfg.sound != "none" {
        add("--audioin", "on".into());
        add("--audioout", "on".into());
    }
    add("--mouse", cfg.mouse.clone());
    add("--keyboard", cfg.keyboard.clone());
    add("--chipset", cfg.chipset.clone());
    add("--firmware", cfg.firmware.clone());
    add("--nictype1", cfg.nic_type.clone());
    if let Some(g) = &cfg.gfx_controller {
        add("--graphicscontroller", g.clone());
    }
    if cfg.gfx_controller.is_some() || cfg.gfx_vram_mib.is_some() {
        add("--vram", cfg.gfx_vram_mib.unwrap_or(4).to_string());
    }
    add("--rtcuseutc", on_off(cfg.rtc_utc));
    if let Some(n) = cfg.nested_virt {
        add("--nested-hw-virt", on_off(n));
    }
    add("--accelerate3d", on_off(cfg.gfx_accelerate_3d));
    a
}

/// COM1 written to a file: the guest's serial console in the build's log directory (the
/// engine shows its tail on failure). Turned off again before export ([`serial_off`]).
pub fn serial_to_file(vm: &str, log: &Path) -> Vec<String> {
    vec![
        "modifyvm".into(),
        vm.into(),
        "--uart1".into(),
        "0x3F8".into(),
        "4".into(),
        "--uartmode1".into(),
        "file".into(),
        s(log),
    ]
}

pub fn serial_off(vm: &str) -> Vec<String> {
    vec!["modifyvm".into(), vm.into(), "--uart1".into(), "off".into()]
}

/// `setextradata` calls (EFI resolution).
pub fn extradata(cfg: &VBoxConfig) -> Vec<Vec<String>> {
    cfg.gfx_efi_resolution
        .iter()
        .map(|r| {
            vec![
                "setextradata".into(),
                cfg.vm_name.clone(),
                "VBoxInternal2/EfiGraphicsResolution".into(),
                r.clone(),
            ]
        })
        .collect()
}

/// The NIC and, on 7.x, loopback reachability. The forwarding rule is added separately.
pub fn modifyvm_nat(cfg: &VBoxConfig, v: &VBoxVersion) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "modifyvm".into(),
        cfg.vm_name.clone(),
        "--nic1".into(),
        "nat".into(),
    ];
    if v.is_7x() {
        a.extend(["--nat-localhostreachable1".into(), "on".into()]);
    }
    a
}

/// `name,tcp,127.0.0.1,HOST,,GUEST`.
pub fn nat_rule(host_port: u16, guest_port: u16) -> String {
    format!("{NAT_RULE},tcp,127.0.0.1,{host_port},,{guest_port}")
}

pub fn add_forward(vm: &str, host_port: u16, guest_port: u16) -> Vec<String> {
    vec![
        "modifyvm".into(),
        vm.into(),
        "--natpf1".into(),
        nat_rule(host_port, guest_port),
    ]
}

pub fn delete_forward(vm: &str) -> Vec<String> {
    vec![
        "modifyvm".into(),
        vm.into(),
        "--natpf1".into(),
        "delete".into(),
        NAT_RULE.into(),
    ]
}

/// The VRDP server of a headless VM (Packer's step: null auth, on the bind address).
pub fn modifyvm_vrde(cfg: &VBoxConfig, port: u16) -> Vec<String> {
    vec![
        "modifyvm".into(),
        cfg.vm_name.clone(),
        "--vrdeaddress".into(),
        cfg.vrdp.bind_address.clone(),
        "--vrdeauthtype".into(),
        "null".into(),
        "--vrde".into(),
        "on".into(),
        "--vrdeport".into(),
        port.to_string(),
    ]
}

/// `createmedium disk` (the modern name of Packer's `createhd`).
pub fn createmedium(path: &Path, size_mib: u64) -> Vec<String> {
    vec![
        "createmedium".into(),
        "disk".into(),
        "--filename".into(),
        s(path),
        "--size".into(),
        size_mib.to_string(),
        "--format".into(),
        "VDI".into(),
        "--variant".into(),
        "Standard".into(),
    ]
}

/// Disk file names: `<vm>.vdi`, or `<vm>-0.vdi`, `<vm>-1.vdi`, … with additional disks
/// (Packer's names).
pub fn disk_paths(cfg: &VBoxConfig, dir: &Path) -> Vec<(PathBuf, u64)> {
    if cfg.disk_additional_size_mib.is_empty() {
        return vec![(dir.join(format!("{}.vdi", cfg.vm_name)), cfg.disk_size_mib)];
    }
    std::iter::once(cfg.disk_size_mib)
        .chain(cfg.disk_additional_size_mib.iter().copied())
        .enumerate()
        .map(|(i, mib)| (dir.join(format!("{}-{i}.vdi", cfg.vm_name)), mib))
        .collect()
}

/// What a drive holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediumKind {
    Hdd,
    Dvd,
}

/// One `storageattach`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub controller: &'static str,
    pub port: u32,
    pub device: u32,
    pub kind: MediumKind,
    pub medium: PathBuf,
}

impl Attachment {
    pub fn attach_args(&self, cfg: &VBoxConfig) -> Vec<String> {
        let mut a = self.base(&cfg.vm_name);
        a.push(s(&self.medium));
        if self.kind == MediumKind::Hdd {
            a.extend([
                "--nonrotational".into(),
                on_off(cfg.nonrotational),
                "--discard".into(),
                on_off(cfg.discard),
            ]);
        }
        a
    }

    /// Empty the drive (DVDs only: the disks stay).
    pub fn detach_args(&self, vm: &str) -> Vec<String> {
        let mut a = self.base(vm);
        a.push("none".into());
        a
    }

    fn base(&self, vm: &str) -> Vec<String> {
        vec![
            "storageattach".into(),
            vm.into(),
            "--storagectl".into(),
            self.controller.into(),
            "--port".into(),
            self.port.to_string(),
            "--device".into(),
            self.device.to_string(),
            "--type".into(),
            match self.kind {
                MediumKind::Hdd => "hdd",
                MediumKind::Dvd => "dvddrive",
            }
            .into(),
            "--medium".into(),
        ]
    }
}

/// Lays the drives out on their controllers in order (disks first, then the installer ISO,
/// the `cd_files` image and the guest additions). Unlike Packer, a DVD on SATA or VirtIO goes
/// on the first free port (Packer uses port 13, from which EFI firmware does not boot).
#[derive(Debug, Default)]
pub struct Layout {
    ide_used: usize,
    ports: std::collections::BTreeMap<&'static str, u32>,
    pub attachments: Vec<Attachment>,
}

const IDE_SLOTS: [(u32, u32); 4] = [(0, 0), (0, 1), (1, 0), (1, 1)];

impl Layout {
    pub fn add(
        &mut self,
        bus: DiskBus,
        kind: MediumKind,
        medium: PathBuf,
    ) -> Result<(), DriverError> {
        let controller = bus.controller();
        let (port, device) = if bus == DiskBus::Ide {
            let slot = IDE_SLOTS.get(self.ide_used).copied().ok_or_else(|| {
                DriverError::Msg(
                    "the IDE controller has only 4 drives (disks, installer ISO, cd_files, guest \
                     additions): put the disks on SATA (hard_drive_interface \"sata\")"
                        .into(),
                )
            })?;
            self.ide_used += 1;
            slot
        } else {
            let p = self.ports.entry(controller).or_insert(0);
            let port = *p;
            *p += 1;
            (port, 0)
        };
        self.attachments.push(Attachment {
            controller,
            port,
            device,
            kind,
            medium,
        });
        Ok(())
    }

    /// Ports used on `bus` (0 for IDE, which has a fixed size).
    pub fn ports_used(&self, bus: DiskBus) -> u32 {
        self.ports.get(bus.controller()).copied().unwrap_or(0)
    }

    /// The `storagectl` calls: IDE always (as Packer), plus each other controller in use.
    pub fn controllers(&self, cfg: &VBoxConfig) -> Vec<Vec<String>> {
        let vm = &cfg.vm_name;
        let ctl = |name: &str, rest: &[String]| {
            let mut a: Vec<String> = vec![
                "storagectl".into(),
                vm.clone(),
                "--name".into(),
                name.into(),
            ];
            a.extend_from_slice(rest);
            a
        };
        let mut out = vec![ctl("IDE", &["--add".into(), "ide".into()])];
        let used = |bus: DiskBus| self.ports_used(bus) > 0;
        if used(DiskBus::Sata) {
            let count = self.ports_used(DiskBus::Sata).max(cfg.sata_port_count);
            out.push(ctl(
                "SATA",
                &[
                    "--add".into(),
                    "sata".into(),
                    "--portcount".into(),
                    count.to_string(),
                ],
            ));
        }
        if used(DiskBus::Virtio) {
            out.push(ctl(
                "VirtioSCSI",
                &[
                    "--add".into(),
                    "VirtIO".into(),
                    "--controller".into(),
                    "VirtIO".into(),
                ],
            ));
        }
        if used(DiskBus::Scsi) {
            out.push(ctl(
                "SCSI",
                &[
                    "--add".into(),
                    "scsi".into(),
                    "--controller".into(),
                    "LSILogic".into(),
                ],
            ));
        }
        if used(DiskBus::Nvme) {
            let count = self.ports_used(DiskBus::Nvme).max(cfg.nvme_port_count);
            out.push(ctl(
                "NVMe",
                &[
                    "--add".into(),
                    "pcie".into(),
                    "--controller".into(),
                    "NVMe".into(),
                    "--portcount".into(),
                    count.to_string(),
                ],
            ));
        }
        out
    }
}

/// Render a `vboxmanage` / `vboxmanage_post` command.
pub fn render_command(
    cmd: &[String],
    fields: &crate::bootcmd::Fields,
) -> Result<Vec<String>, DriverError> {
    cmd.iter()
        .map(|a| {
            crate::bootcmd::render(a, fields)
                .map_err(|e| DriverError::Msg(format!("vboxmanage command {cmd:?}: {a:?}: {e}")))
        })
        .collect()
}

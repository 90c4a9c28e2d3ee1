//! The typed settings a `virtualbox-iso` builder block is read into (by `config` and
//! `config_read`): buses, guest additions, export format, NAT forward, VRDP.

use std::path::PathBuf;
use std::time::Duration;

/// Where the hard disks hang (`hard_drive_interface`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskBus {
    /// `ide`: the IDE controller (Packer's default).
    Ide,
    /// `sata`: an AHCI controller.
    Sata,
    /// `scsi`: an LsiLogic SCSI controller.
    Scsi,
    /// `pcie`: NVMe.
    Nvme,
    /// `virtio`: VirtIO SCSI.
    Virtio,
}

impl DiskBus {
    /// The storage controller's name (Packer's names, so `vboxmanage` commands written for
    /// Packer find the same controllers).
    pub fn controller(self) -> &'static str {
        match self {
            DiskBus::Ide => "IDE",
            DiskBus::Sata => "SATA",
            DiskBus::Scsi => "SCSI",
            DiskBus::Nvme => "NVMe",
            DiskBus::Virtio => "VirtioSCSI",
        }
    }
}

/// `guest_additions_mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestAdditions {
    /// `disable`: no guest-additions ISO.
    Disable,
    /// Attach the additions ISO as a second DVD drive.
    Attach {
        /// `guest_additions_path`; `None`: VirtualBox's own `VBoxGuestAdditions.iso`.
        path: Option<PathBuf>,
    },
}

/// `format`: what `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// `ovf`: an `.ovf` descriptor with the `.vmdk` disks beside it.
    Ovf,
    /// `ova`: one tar archive holding the descriptor and disks.
    Ova,
}

impl ExportFormat {
    /// The file extension of the export (`ovf`, `ova`).
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Ovf => "ovf",
            ExportFormat::Ova => "ova",
        }
    }
}

/// The NAT port forward the communicator uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatForward {
    /// The guest's port (`ssh_port`/`winrm_port`).
    pub guest_port: u16,
    /// `host_port_min`: lowest host port to forward from.
    pub host_port_min: u16,
    /// `host_port_max`: highest host port to forward from.
    pub host_port_max: u16,
}

/// The VRDP (remote console) server of a headless VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vrdp {
    /// `vrdp_bind_address`: where VirtualBox's VRDP server listens (default 127.0.0.1).
    pub bind_address: String,
    /// `vrdp_port_min`: lowest port to try (default 5900).
    pub port_min: u16,
    /// `vrdp_port_max`: highest port to try (default 6000).
    pub port_max: u16,
}

/// Packer's default pause between groups of 25 scancodes (`boot_keygroup_interval`).
pub const DEFAULT_KEYGROUP_INTERVAL: Duration = Duration::from_millis(100);

/// Template fields `vboxmanage` / `vboxmanage_post` may use (Packer: Name, HTTPIP, HTTPPort).
pub const VBOXMANAGE_FIELDS: &[&str] = &["Name", "HTTPIP", "HTTPPort"];

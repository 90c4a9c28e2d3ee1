//! The typed settings a `virtualbox-iso` builder block is read into (by `config` and
//! `config_read`): buses, guest additions, export format, NAT forward, VRDP.

use std::path::PathBuf;
use std::time::Duration;

/// Where the hard disks hang (`hard_drive_interface`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskBus {
    Ide,
    Sata,
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
    Disable,
    /// Attach the additions ISO as a second DVD drive.
    Attach {
        path: Option<PathBuf>,
    },
}

/// `format`: what `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Ovf,
    Ova,
}

impl ExportFormat {
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
    pub guest_port: u16,
    pub host_port_min: u16,
    pub host_port_max: u16,
}

/// The VRDP (remote console) server of a headless VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vrdp {
    pub bind_address: String,
    pub port_min: u16,
    pub port_max: u16,
}

/// Packer's default pause between groups of 25 scancodes (`boot_keygroup_interval`).
pub const DEFAULT_KEYGROUP_INTERVAL: Duration = Duration::from_millis(100);

/// Template fields `vboxmanage` / `vboxmanage_post` may use (Packer: Name, HTTPIP, HTTPPort).
pub const VBOXMANAGE_FIELDS: &[&str] = &["Name", "HTTPIP", "HTTPPort"];

//! The QEMU driver: disks with qemu-img, the VM as a child process, control over QMP.

mod accel;
mod args;
mod config;
mod config_parts;
mod glob;
mod launch;
mod lifecycle;
pub(crate) mod media;
mod pacer;
mod state;
mod typing;
pub(crate) mod value;

pub use accel::{kvm_usable, KvmCheck};
pub use config::{Accelerator, DiskFormat, QemuConfig, DEFAULT_KEY_INTERVAL, DISK_INTERFACES};
pub use config_parts::{Firmware, QemuImgArgs, SshForward, VncConfig};
pub use value::ConfigError;

/// The guest's view of the host's loopback under QEMU user networking.
pub const USER_NET_HOST_IP: &str = "10.0.2.2";
pub(crate) use pacer::VcpuPacer;

use crate::qmp::Qmp;
use crate::{DriverError, DriverResult};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use tokio::process::Child;

/// How many times `start` retries when the SSH forwarding port was taken (see `start`).
const PORT_ATTEMPTS: usize = 8;

/// One QEMU virtual machine. Create with [`QemuDriver::new`], then use it through [`Driver`](crate::Driver).
pub struct QemuDriver {
    cfg: QemuConfig,
    argv: Vec<String>,
    child: Option<Child>,
    exit_status: Option<ExitStatus>,
    qmp: Option<Arc<Qmp>>,
    runtime_dir: Option<tempfile::TempDir>,
    disks: Vec<PathBuf>,
    /// Files and directories `create` made; `destroy` removes them.
    work_files: Vec<PathBuf>,
    created_work_dir: bool,
    cd_image: Option<PathBuf>,
    floppy_image: Option<PathBuf>,
    efi_vars: Option<PathBuf>,
    ssh_port: Option<u16>,
    vnc_port: Option<u16>,
    accel: Option<&'static str>,
    shutdown_event: Arc<Mutex<Option<Value>>>,
    shutdown_notify: Arc<tokio::sync::Notify>,
    warnings: Vec<String>,
    pacer: Option<VcpuPacer>,
    /// The saved disk state this VM starts from (install cache hit).
    saved_state: Option<crate::driver::DiskState>,
    /// The disks are overlays over other files (a saved state, or frozen by
    /// `save_disk_state`): export must flatten them, never copy.
    chained: bool,
    /// The saved memory state to resume at `start` (install cache hit).
    resume: Option<state::Resume>,
}

impl QemuDriver {
    /// A driver for `cfg`; nothing runs until `create`.
    pub fn new(cfg: QemuConfig) -> Self {
        QemuDriver {
            cfg,
            argv: Vec::new(),
            child: None,
            exit_status: None,
            qmp: None,
            runtime_dir: None,
            disks: Vec::new(),
            work_files: Vec::new(),
            created_work_dir: false,
            cd_image: None,
            floppy_image: None,
            efi_vars: None,
            ssh_port: None,
            vnc_port: None,
            accel: None,
            shutdown_event: Arc::new(Mutex::new(None)),
            shutdown_notify: Arc::new(tokio::sync::Notify::new()),
            warnings: Vec::new(),
            pacer: None,
            saved_state: None,
            chained: false,
            resume: None,
        }
    }

    /// The settings this driver was made with.
    pub fn config(&self) -> &QemuConfig {
        &self.cfg
    }

    /// The argv of the running (last launched) QEMU, program first. It holds no secrets.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The QMP connection while QEMU runs.
    pub fn qmp(&self) -> Option<&Qmp> {
        self.qmp.as_deref()
    }

    /// `kvm` or `tcg` once started.
    pub fn accelerator_used(&self) -> Option<&'static str> {
        self.accel
    }

    /// The TCP port of QEMU's VNC server, when the builder asked for VNC.
    pub fn vnc_port(&self) -> Option<u16> {
        self.vnc_port
    }

    /// The serial console log.
    pub fn serial_log(&self) -> PathBuf {
        self.cfg.serial_log()
    }

    /// QEMU's own stderr log.
    pub fn qemu_log(&self) -> PathBuf {
        self.cfg
            .env
            .log_dir
            .join(format!("{}-qemu.log", self.cfg.vm_name))
    }

    /// The work disks (main disk first).
    pub fn disks(&self) -> &[PathBuf] {
        &self.disks
    }

    /// Whether typing is paced by the guest's vCPU threads (each key waits until a vCPU has run).
    pub fn typing_paced(&self) -> bool {
        self.pacer.is_some()
    }

    /// Warnings to show the user (e.g. the fall-back from KVM to TCG).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The data of the guest's SHUTDOWN event, once seen.
    pub fn shutdown_event(&self) -> Option<Value> {
        self.shutdown_event.lock().ok().and_then(|g| g.clone())
    }

    /// Has QEMU exited (polls without blocking)?
    pub fn is_stopped(&mut self) -> bool {
        if self.exit_status.is_some() {
            return true;
        }
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(st))) => {
                self.exit_status = Some(st);
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    /// The bridge the VM's network is on (`-netdev bridge,…,br=NAME` in qemuargs, which is
    /// what OSImager writes for `net_bridge`), if any.
    pub fn bridge(&self) -> Option<String> {
        self.cfg
            .qemuargs
            .iter()
            .filter(|a| a.first().is_some_and(|f| f == "-netdev"))
            .map(|a| a[1..].concat())
            .filter(|v| v.starts_with("bridge"))
            .map(|v| {
                v.split(',')
                    .find_map(|kv| kv.strip_prefix("br="))
                    .unwrap_or("br0")
                    .to_string()
            })
            .next()
    }

    fn live_qmp(&self) -> DriverResult<Arc<Qmp>> {
        self.qmp.clone().ok_or_else(|| {
            DriverError::Msg(format!(
                "QEMU VM {} is not running (start it first)",
                self.cfg.vm_name
            ))
        })
    }

    async fn resolve_accel(&mut self) -> &'static str {
        if self.cfg.accelerator == Accelerator::Tcg {
            return "tcg";
        }
        let check = kvm_usable(&self.cfg.qemu_binary).await;
        if check.usable {
            "kvm"
        } else {
            let w = format!(
                "KVM is not usable ({}); using the TCG accelerator (slower)",
                check.reason
            );
            tracing::warn!("{w}");
            self.warnings.push(w);
            "tcg"
        }
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod config_tests;
#[cfg(test)]
#[path = "launch_tests.rs"]
mod launch_tests;

//! The VirtualBox driver (`virtualbox-iso`): the VM is made, run and exported with
//! `VBoxManage`, as Packer's virtualbox plugin does, without Packer.
//!
//! * `config`: the builder block (Packer's keys and defaults; unknown keys are errors).
//! * `vboxmanage`: running VBoxManage (errors on stderr with exit 0, lock retries).
//! * `version`, `info`: `--version` and the machine-readable output, parsed.
//! * `setup`: the command lines that create and configure the VM, per version.
//! * `typing`: boot command → `keyboardputscancode` calls.
//! * `ports`: the NAT forward's host port, held until the VM starts and verified after.
//!
//! Lifecycle (see [`Driver`]): `create` registers the VM in the build's work directory (or in
//! VirtualBox's machine folder with `keep_registered`), creates and attaches the disks and
//! DVDs, sets up NAT (+ the SSH forward) and VRDP, runs `vboxmanage`; `start` runs it headless
//! and checks the forward; `export` detaches the DVDs, runs `vboxmanage_post`, drops the
//! forward and runs `VBoxManage export` (or copies the disks with `skip_export`); `destroy`
//! powers off, detaches the DVDs and unregisters with `--delete` — on every path.

mod config;
mod config_read;
mod info;
mod keys;
mod lifecycle;
mod ports;
mod settings;
mod setup;
mod stop;
mod storage;
mod typing;
mod vboxmanage;
mod version;

pub use config::{VBoxConfig, VBoxConfigError};
pub use vboxmanage::LockRetry;
pub(crate) use vboxmanage::VBoxManage;
pub use version::VBoxVersion;

use crate::bootcmd::KeyEvent;
use crate::driver::{Capabilities, HostAddress, KeyProgress, LeftRunning, Media, SshAddress};
use crate::{Driver, DriverError, DriverResult};
use async_trait::async_trait;
use info::VmInfo;
use ports::HeldPort;
use setup::Attachment;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The guest's view of the host under VirtualBox NAT (Packer's fixed `{{ .HTTPIP }}`).
pub const NAT_HOST_IP: &str = "10.0.2.2";

/// One VirtualBox VM. Create with [`VirtualBoxDriver::new`], use through [`Driver`].
pub struct VirtualBoxDriver {
    cfg: VBoxConfig,
    vbox: Option<VBoxManage>,
    version: Option<VBoxVersion>,
    media: Media,
    /// `createvm --register` succeeded: `destroy` unregisters.
    registered: bool,
    /// The VM's settings file (`CfgFile`), once known.
    cfg_file: Option<PathBuf>,
    /// The VM's log folder (`LogFldr`), once started.
    log_folder: Option<PathBuf>,
    /// Disk files this build created (closed and deleted by `destroy` if still there).
    disks: Vec<PathBuf>,
    /// The drives attached, in order.
    attachments: Vec<Attachment>,
    /// Files and directories `create` made in the work directory.
    work_files: Vec<PathBuf>,
    created_work_dir: bool,
    started: bool,
    ssh_port: Option<u16>,
    vrdp_port: Option<u16>,
    /// Ports kept bound until `start` (see [`ports`]).
    held: Vec<HeldPort>,
    acpi_sent: bool,
    /// `export` finished: with `keep_registered`, `destroy` keeps the VM.
    exported: bool,
    /// `leave_running` was called: `destroy` does nothing.
    left: bool,
    warnings: Vec<String>,
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> DriverError {
    move |source| DriverError::Io { context, source }
}

impl VirtualBoxDriver {
    /// A driver for `cfg`; nothing runs until `create`.
    pub fn new(mut cfg: VBoxConfig) -> Self {
        let warnings = std::mem::take(&mut cfg.warnings);
        VirtualBoxDriver {
            cfg,
            vbox: None,
            version: None,
            media: Media::default(),
            registered: false,
            cfg_file: None,
            log_folder: None,
            disks: Vec::new(),
            attachments: Vec::new(),
            work_files: Vec::new(),
            created_work_dir: false,
            started: false,
            ssh_port: None,
            vrdp_port: None,
            held: Vec::new(),
            acpi_sent: false,
            exported: false,
            left: false,
            warnings,
        }
    }

    /// The settings this driver was made with.
    pub fn config(&self) -> &VBoxConfig {
        &self.cfg
    }

    /// The VirtualBox version, once `create` asked.
    pub fn version(&self) -> Option<&VBoxVersion> {
        self.version.as_ref()
    }

    /// The host port of the SSH forward, once set up.
    pub fn ssh_host_port(&self) -> Option<u16> {
        self.ssh_port
    }

    /// The VRDP (remote console) port of a headless VM, once set up.
    pub fn vrdp_port(&self) -> Option<u16> {
        self.vrdp_port
    }

    /// The disk files of the VM (main disk first).
    pub fn disks(&self) -> &[PathBuf] {
        &self.disks
    }

    /// The guest's serial console (COM1 in file mode).
    pub fn serial_log(&self) -> PathBuf {
        self.cfg
            .env
            .log_dir
            .join(format!("{}-serial.log", self.cfg.vm_name))
    }

    /// Whether the VM is registered with VirtualBox (by this driver).
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    fn vbox(&self) -> DriverResult<&VBoxManage> {
        self.vbox
            .as_ref()
            .ok_or_else(|| DriverError::Msg("VirtualBox driver: call create() first".into()))
    }

    fn name(&self) -> &str {
        &self.cfg.vm_name
    }

    /// `showvminfo NAME --machinereadable`, parsed.
    pub async fn info(&self) -> DriverResult<VmInfo> {
        let out = self
            .vbox()?
            .call(&vboxmanage::args([
                "showvminfo",
                self.name(),
                "--machinereadable",
            ]))
            .await?;
        Ok(VmInfo::parse(&out.stdout))
    }

    /// Remember where the VM's logs are (`LogFldr`, else `Logs` next to `CfgFile`).
    fn note_log_folder(&mut self, info: &VmInfo) {
        let dir = match (info.get("LogFldr"), info.get("CfgFile")) {
            (Some(d), _) => PathBuf::from(d),
            (None, Some(c)) => Path::new(c).parent().unwrap_or(Path::new("")).join("Logs"),
            (None, None) => return,
        };
        self.log_folder = Some(dir);
    }

    /// The VM's VBox.log, or "" when it is not known or cannot be read.
    fn vbox_log(&self) -> String {
        self.log_folder
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.join("VBox.log")).ok())
            .unwrap_or_default()
    }

    fn require_started(&self) -> DriverResult<()> {
        if self.started {
            Ok(())
        } else {
            Err(DriverError::Msg(format!(
                "VirtualBox VM {} is not running (start it first)",
                self.name()
            )))
        }
    }

    async fn type_steps(&self, events: &[KeyEvent], progress: KeyProgress<'_>) -> DriverResult<()> {
        let vbox = self.vbox()?;
        let steps = typing::plan(events, typing::MAX_CODES_PER_CALL)?;
        let total = events.len();
        let mut first = true;
        for step in steps {
            match step {
                typing::Step::Wait { duration, done } => {
                    progress(done, total);
                    tokio::time::sleep(duration).await;
                }
                typing::Step::Send { codes, done } => {
                    if !first {
                        tokio::time::sleep(self.cfg.keygroup_interval).await;
                    }
                    first = false;
                    let shown = format!(
                        "VBoxManage controlvm {} keyboardputscancode ({} scancodes)",
                        self.name(),
                        codes.len()
                    );
                    if let Err(f) = vbox
                        .once(&typing::call_args(self.name(), &codes), Some(&shown))
                        .await
                    {
                        if f.mentions("VERR_PDM_NO_QUEUE_ITEMS") {
                            return Err(DriverError::Msg(format!(
                                "{shown}: VirtualBox's keyboard queue overflowed (VERR_PDM_NO_QUEUE_ITEMS), \
                                 so part of the boot command was lost; raise boot_keygroup_interval \
                                 (now {:?})",
                                self.cfg.keygroup_interval
                            )));
                        }
                        return Err(f.into());
                    }
                    progress(done, total);
                }
            }
        }
        progress(total, total);
        Ok(())
    }
}

#[async_trait]
impl Driver for VirtualBoxDriver {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            screenshots: true,
            serial_log: Some(self.serial_log()),
            // No saved disk states yet: builds with --cache install every time.
            ..Capabilities::default()
        }
    }

    /// VirtualBox NAT: the guest reaches the host's loopback as 10.0.2.2 (7.x only with
    /// `--nat-localhostreachable1 on`, which `create` sets), so the server binds 127.0.0.1.
    async fn host_address(&mut self) -> DriverResult<HostAddress> {
        Ok(HostAddress {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            guest_ip: NAT_HOST_IP.to_string(),
        })
    }

    async fn create(&mut self, media: &Media) -> DriverResult<()> {
        self.media = media.clone();
        self.create_vm().await
    }

    async fn start(&mut self) -> DriverResult<()> {
        self.start_vm().await
    }

    async fn send_keys(
        &mut self,
        events: &[KeyEvent],
        progress: KeyProgress<'_>,
    ) -> DriverResult<()> {
        self.require_started()?;
        self.type_steps(events, progress).await
    }

    async fn screenshot(&mut self, path: &Path) -> DriverResult<()> {
        self.require_started()?;
        let abs = std::path::absolute(path).map_err(io(format!("resolving {}", path.display())))?;
        self.vbox()?
            .call(&vboxmanage::args([
                "controlvm".to_string(),
                self.name().to_string(),
                "screenshotpng".to_string(),
                abs.display().to_string(),
            ]))
            .await?;
        Ok(())
    }

    /// The forwarded port on the host's loopback (known after `start`). With
    /// `skip_nat_mapping` the guest port itself; the engine's `ssh_host` says where.
    async fn ssh_address(&mut self, _timeout: Duration) -> DriverResult<SshAddress> {
        let Some(fwd) = &self.cfg.forward else {
            return Err(DriverError::Msg(format!(
                "VirtualBox VM {} has no communicator (communicator \"none\")",
                self.name()
            )));
        };
        if self.cfg.skip_nat_mapping {
            return Ok(SshAddress {
                host: "127.0.0.1".into(),
                port: fwd.guest_port,
            });
        }
        match self.ssh_port {
            Some(port) if self.started => Ok(SshAddress {
                host: "127.0.0.1".into(),
                port,
            }),
            _ => Err(DriverError::Msg(format!(
                "VirtualBox VM {} is not running: no SSH forward yet",
                self.name()
            ))),
        }
    }

    async fn request_shutdown(&mut self) -> DriverResult<()> {
        self.require_started()?;
        self.acpi_sent = true;
        self.vbox()?
            .call(&vboxmanage::args([
                "controlvm",
                self.name(),
                "acpipowerbutton",
            ]))
            .await?;
        Ok(())
    }

    async fn wait_stopped(&mut self, timeout: Duration) -> DriverResult<bool> {
        self.wait_for_stop(timeout).await
    }

    async fn force_stop(&mut self) -> DriverResult<()> {
        self.power_off().await
    }

    async fn export(&mut self, out_dir: &Path) -> DriverResult<Vec<PathBuf>> {
        self.export_vm(out_dir).await
    }

    async fn destroy(&mut self) -> DriverResult<()> {
        self.destroy_vm().await
    }

    fn leave_running(&mut self) -> LeftRunning {
        self.left = true;
        self.held.clear();
        let mut left = LeftRunning::default();
        let vbox = self
            .vbox
            .as_ref()
            .map(|v| v.program.display().to_string())
            .unwrap_or_else(|| "VBoxManage".into());
        let name = self.name().to_string();
        if self.registered {
            left.items.push(format!(
                "VirtualBox VM {name:?} (registered{}; settings {})",
                if self.started {
                    ", possibly still running"
                } else {
                    ""
                },
                self.cfg_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "unknown".into())
            ));
            if self.started {
                left.stop_commands
                    .push(format!("{vbox} controlvm {name:?} poweroff"));
            }
            left.stop_commands
                .push(format!("{vbox} unregistervm {name:?} --delete"));
        }
        if let (true, Some(p)) = (self.started, self.ssh_port) {
            left.items
                .push(format!("SSH to the guest: ssh -p {p} <user>@127.0.0.1"));
        }
        if let (true, Some(p)) = (self.started, self.vrdp_port) {
            left.items.push(format!(
                "VRDP console on {}:{p}",
                self.cfg.vrdp.bind_address
            ));
        }
        for f in self.work_files.drain(..) {
            left.items.push(format!("work file {}", f.display()));
            left.stop_commands.push(format!("rm -rf {}", f.display()));
        }
        left
    }

    fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod config_tests;

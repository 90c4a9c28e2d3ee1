//! The VMware Workstation driver (`vmware-iso`): the driver writes the `.vmx` itself
//! (Packer's defaults, `vmx_data` on top), creates the disks (vmware-vdiskmanager, else
//! qemu-img), registers and powers the VM through vmrest (reqwest) — or vmrun when vmrest is
//! not there —, types the boot command over VMware's VNC server (RFB with VNC
//! Authentication), finds the guest from vmrest / the vmnet DHCP leases / vmrun, and exports
//! the cleaned VM (ovftool for ovf/ova).
//!
//! Configuration the builder block cannot carry comes from the build's environment:
//! `OSIMAGER_VMREST_URL`, `OSIMAGER_VMREST_USER`, `OSIMAGER_VMREST_PASSWORD` (use a vmrest the
//! user runs), `OSIMAGER_VMWARE_CONFIG_DIR` (VMware's network configuration, `/etc/vmware`).

mod address;
mod config;
mod control;
mod disk;
mod keys;
mod net;
mod rest;
mod restproc;
mod tools;
mod vmrun;
mod vmx;

pub use config::{Firmware, Format, VmwareConfig, DEFAULT_KEY_INTERVAL};
pub use keys::ConfigError;
pub use rest::{parse_error, RestError, VmEntry, Vmrest, MEDIA_TYPE};
pub use restproc::config_text as vmrest_config_text;
pub use vmrun::Vmrun;
pub use vmx::Vmx;

use crate::bootcmd::KeyEvent;
use crate::driver::{Capabilities, HostAddress, KeyProgress, LeftRunning, Media, SshAddress};
use crate::vnc::{capture_screen, VncClient};
use crate::{Driver, DriverError, DriverResult};
use async_trait::async_trait;
use control::Control;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vmx::Temporary;

/// Where VMware's VNC server listens for this build, and its password (never logged).
#[derive(Clone)]
struct Vnc {
    ip: String,
    port: u16,
    password: Option<String>,
}

/// One VMware Workstation VM. Create with [`VmwareDriver::new`], use through [`Driver`].
pub struct VmwareDriver {
    cfg: VmwareConfig,
    vmx: PathBuf,
    disks: Vec<PathBuf>,
    temporary: Temporary,
    control: Option<Control>,
    /// Entries of the work directory before `create`: `destroy` removes everything else.
    preexisting: Option<Vec<PathBuf>>,
    created_work_dir: bool,
    started: bool,
    vnc: Option<Vnc>,
    warnings: Vec<String>,
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> DriverError {
    move |source| DriverError::Io { context, source }
}

impl VmwareDriver {
    /// A driver for `cfg`; nothing runs until `create`.
    pub fn new(mut cfg: VmwareConfig) -> Self {
        let warnings = std::mem::take(&mut cfg.warnings);
        VmwareDriver {
            vmx: cfg.env.work_dir.join(format!("{}.vmx", cfg.vm_name)),
            cfg,
            disks: Vec::new(),
            temporary: Temporary::default(),
            control: None,
            preexisting: None,
            created_work_dir: false,
            started: false,
            vnc: None,
            warnings,
        }
    }

    /// The settings this driver was made with.
    pub fn config(&self) -> &VmwareConfig {
        &self.cfg
    }

    /// The VM's .vmx in the work directory.
    pub fn vmx_path(&self) -> &Path {
        &self.vmx
    }

    /// The VMware VNC server's address while the VM runs.
    pub fn vnc_address(&self) -> Option<String> {
        self.vnc.as_ref().map(|v| format!("{}:{}", v.ip, v.port))
    }

    /// "vmrest at …" or "vmrun (…)" once `create` has chosen.
    pub fn control_description(&self) -> Option<String> {
        self.control.as_ref().map(Control::describe)
    }

    /// The guest console log (the serial port the build adds, or the builder's own).
    pub fn serial_log(&self) -> PathBuf {
        self.cfg
            .serial_file
            .clone()
            .unwrap_or_else(|| self.cfg.build_serial_log())
    }

    fn control(&self) -> DriverResult<&Control> {
        self.control
            .as_ref()
            .ok_or_else(|| DriverError::Msg("VMware driver: call create() first".into()))
    }

    /// A free port in the VNC range on the bind address, and a password (Packer: 8 random
    /// characters) unless `vnc_disable_password`.
    fn pick_vnc(&self) -> DriverResult<Option<Vnc>> {
        let Some(s) = &self.cfg.vnc else {
            return Ok(None);
        };
        use rand::Rng;
        let mut rng = rand::thread_rng();
        let span = u32::from(s.port_max - s.port_min) + 1;
        let start = rng.gen_range(0..span);
        let port = (0..span)
            .map(|k| s.port_min + ((start + k) % span) as u16)
            .find(|p| std::net::TcpListener::bind((s.bind_address.as_str(), *p)).is_ok())
            .ok_or_else(|| {
                DriverError::Msg(format!(
                    "no free VNC port on {} in {}–{}; widen vnc_port_min/vnc_port_max",
                    s.bind_address, s.port_min, s.port_max
                ))
            })?;
        const CHARS: &[u8] = b"012345689abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let password = (!s.disable_password).then(|| {
            (0..8)
                .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
                .collect()
        });
        Ok(Some(Vnc {
            ip: s.bind_address.clone(),
            port,
            password,
        }))
    }

    /// Wait until only `.vmx.lck` (or no lock) is left in the VM's directory, up to 120 s,
    /// then 5 s more (Packer's StepShutdown: VMware releases disk locks after the process).
    async fn wait_for_locks(&self) {
        let end = Instant::now() + Duration::from_secs(120);
        loop {
            let locks: Vec<String> = std::fs::read_dir(&self.cfg.env.work_dir)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.to_ascii_lowercase().ends_with(".lck"))
                        .collect()
                })
                .unwrap_or_default();
            let only_vmx = locks.len() == 1 && locks[0].to_ascii_lowercase().ends_with(".vmx.lck");
            if locks.is_empty() || only_vmx {
                break;
            }
            if Instant::now() > end {
                tracing::warn!("lock files still present after 120 s: {locks:?}; continuing");
                break;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }

    async fn running(&self) -> bool {
        match &self.control {
            Some(c) if self.started => c.is_running(&self.vmx).await.unwrap_or(true),
            _ => false,
        }
    }
}

#[async_trait]
impl Driver for VmwareDriver {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            screenshots: self.cfg.vnc.is_some(),
            serial_log: Some(self.serial_log()),
            // No saved install states for VMware (yet): every build installs.
            ..Capabilities::default()
        }
    }

    async fn host_address(&mut self) -> DriverResult<HostAddress> {
        address::host_address(&self.cfg)
    }

    async fn create(&mut self, media: &Media) -> DriverResult<()> {
        let wd = self.cfg.env.work_dir.clone();
        if !wd.exists() {
            std::fs::create_dir_all(&wd)
                .map_err(io(format!("creating the work directory {}", wd.display())))?;
            self.created_work_dir = true;
        }
        let ld = self.cfg.env.log_dir.clone();
        std::fs::create_dir_all(&ld)
            .map_err(io(format!("creating the log directory {}", ld.display())))?;
        if self.preexisting.is_none() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(&wd)
                .map_err(io(format!("listing {}", wd.display())))?
                .flatten()
                .map(|e| e.path())
                .collect();
            v.sort();
            self.preexisting = Some(v);
        }
        // vmrest registers absolute paths only; vmrun lists them absolute.
        self.vmx = std::path::absolute(&self.vmx)
            .map_err(io(format!("resolving {}", self.vmx.display())))?;
        let log = ld.join(format!("{}-vmrest.log", self.cfg.vm_name));
        let control = Control::connect(&self.cfg.env, &log).await?;
        if let Some(w) = &control.warning {
            tracing::warn!("{w}");
            self.warnings.push(w.clone());
        }
        self.control = Some(control);
        self.disks = disk::create(&self.cfg, &wd).await?;
        let iso = match &media.iso_path {
            Some(p) => {
                Some(std::path::absolute(p).map_err(io(format!("resolving {}", p.display())))?)
            }
            None => None,
        };
        let (v, tmp) = vmx::initial(&self.cfg, iso.as_deref(), &self.cfg.build_serial_log());
        v.write(&self.vmx)
            .map_err(io(format!("writing {}", self.vmx.display())))?;
        self.temporary = tmp;
        let (name, vmx) = (self.cfg.vm_name.clone(), self.vmx.clone());
        if let Some(c) = self.control.as_mut() {
            c.register(&name, &vmx).await?;
        }
        Ok(())
    }

    async fn start(&mut self) -> DriverResult<()> {
        let vnc = self.pick_vnc()?;
        if let Some(v) = &vnc {
            let mut data =
                Vmx::read(&self.vmx).map_err(io(format!("reading {}", self.vmx.display())))?;
            vmx::enable_vnc(&mut data, &v.ip, v.port, v.password.as_deref());
            data.write(&self.vmx)
                .map_err(io(format!("writing {}", self.vmx.display())))?;
        }
        self.vnc = vnc;
        self.control()?
            .power_on(&self.vmx, self.cfg.headless)
            .await?;
        self.started = true;
        Ok(())
    }

    async fn send_keys(
        &mut self,
        events: &[KeyEvent],
        progress: KeyProgress<'_>,
    ) -> DriverResult<()> {
        let v = self.vnc.clone().ok_or_else(|| {
            DriverError::Msg(
                "VNC is disabled (disable_vnc) or the VM was not started: cannot type".into(),
            )
        })?;
        let addr = format!("{}:{}", v.ip, v.port);
        // VMware's VNC server comes up with the VM: retry the connection for a while.
        let end = Instant::now() + Duration::from_secs(30);
        let mut client = loop {
            match VncClient::connect_with_password(
                &addr,
                v.password.as_deref(),
                Duration::from_secs(10),
            )
            .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < end && matches!(e, crate::vnc::VncError::Io { .. }) => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    return Err(DriverError::Msg(format!(
                        "connecting to VMware's VNC server at {addr} to type the boot command: {e}"
                    )))
                }
            }
        };
        client
            .type_events_with_progress(events, self.cfg.boot_key_interval, progress)
            .await
            .map_err(|e| DriverError::Msg(format!("typing over VNC at {addr}: {e}")))
    }

    async fn screenshot(&mut self, path: &Path) -> DriverResult<()> {
        let v = self
            .vnc
            .clone()
            .ok_or_else(|| DriverError::Msg("no VNC console to take a screenshot from".into()))?;
        let addr = format!("{}:{}", v.ip, v.port);
        let frame = capture_screen(&addr, v.password.as_deref(), Duration::from_secs(30))
            .await
            .map_err(|e| DriverError::Msg(format!("screenshot over VNC at {addr}: {e}")))?;
        std::fs::write(path, frame.to_png()).map_err(io(format!("writing {}", path.display())))
    }

    async fn ssh_address(&mut self, timeout: Duration) -> DriverResult<SshAddress> {
        let port = self.cfg.comm_port.ok_or_else(|| {
            DriverError::Msg("communicator none: there is no SSH or WinRM port to find".into())
        })?;
        if let Some(h) = &self.cfg.comm_host {
            return Ok(SshAddress {
                host: h.clone(),
                port,
            });
        }
        let host =
            address::discover_guest(&self.cfg, self.control()?, &self.vmx, port, timeout).await?;
        Ok(SshAddress { host, port })
    }

    async fn request_shutdown(&mut self) -> DriverResult<()> {
        self.control()?.power_off(&self.vmx, false).await
    }

    async fn wait_stopped(&mut self, timeout: Duration) -> DriverResult<bool> {
        let end = Instant::now() + timeout;
        while self.running().await {
            if Instant::now() > end {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if self.started {
            self.wait_for_locks().await;
            self.started = false;
        }
        Ok(true)
    }

    async fn force_stop(&mut self) -> DriverResult<()> {
        if !self.running().await {
            return Ok(());
        }
        self.control()?.power_off(&self.vmx, true).await?;
        if !self.wait_stopped(Duration::from_secs(60)).await? {
            return Err(DriverError::Msg(format!(
                "VMware VM {} is still running a minute after a hard power-off",
                self.vmx.display()
            )));
        }
        Ok(())
    }

    async fn export(&mut self, out_dir: &Path) -> DriverResult<Vec<PathBuf>> {
        if self.running().await {
            return Err(DriverError::Msg(format!(
                "VMware VM {} is still running; shut it down before export",
                self.vmx.display()
            )));
        }
        if self.disks.is_empty() {
            return Err(DriverError::Msg(
                "VMware driver: nothing to export (create() was not run)".into(),
            ));
        }
        let wd = self.cfg.env.work_dir.clone();
        disk::clean_dir(&wd)?;
        if !self.cfg.skip_compaction {
            disk::compact(&self.cfg, &self.disks).await?;
        }
        let mut data =
            Vmx::read(&self.vmx).map_err(io(format!("reading {}", self.vmx.display())))?;
        vmx::clean(
            &mut data,
            &self.temporary,
            &self.cfg.vmx_data_post,
            self.cfg.vmx_remove_ethernet_interfaces,
        );
        data.write(&self.vmx)
            .map_err(io(format!("writing {}", self.vmx.display())))?;
        disk::export(&self.cfg, &wd, out_dir).await
    }

    async fn destroy(&mut self) -> DriverResult<()> {
        let mut failures = Vec::new();
        if self.running().await {
            if let Err(e) = self.force_stop().await {
                failures.push(e.to_string());
            }
        }
        self.started = false;
        if let Some(c) = self.control.as_mut() {
            if let Err(e) = c.delete(Duration::from_secs(15)).await {
                failures.push(format!("unregistering the VM: {e}"));
            }
            c.shutdown().await;
        }
        self.control = None;
        if let Some(before) = self.preexisting.take() {
            if let Ok(rd) = std::fs::read_dir(&self.cfg.env.work_dir) {
                for e in rd.flatten() {
                    let p = e.path();
                    if before.contains(&p) {
                        continue;
                    }
                    let r = if p.is_dir() {
                        std::fs::remove_dir_all(&p)
                    } else {
                        std::fs::remove_file(&p)
                    };
                    if let Err(e) = r {
                        if e.kind() != std::io::ErrorKind::NotFound {
                            failures.push(format!("{}: {e}", p.display()));
                        }
                    }
                }
            }
        }
        self.disks.clear();
        self.vnc = None;
        if self.created_work_dir {
            let _ = std::fs::remove_dir(&self.cfg.env.work_dir);
            self.created_work_dir = false;
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(DriverError::Msg(format!(
                "cleaning up the VMware VM: {}",
                failures.join("; ")
            )))
        }
    }

    fn leave_running(&mut self) -> LeftRunning {
        let mut left = LeftRunning::default();
        let vmx = self.vmx.display().to_string();
        if let Some(c) = self.control.as_mut() {
            if self.started {
                let reg =
                    c.id.as_deref()
                        .map(|id| format!(", vmrest id {id}"))
                        .unwrap_or_default();
                left.items.push(format!("VMware VM {vmx}{reg}"));
                if let Some(v) = &self.vnc {
                    left.items.push(format!(
                        "VNC console on {}:{}{}",
                        v.ip,
                        v.port,
                        if v.password.is_some() {
                            " (password: RemoteDisplay.vnc.password in the .vmx)"
                        } else {
                            ""
                        }
                    ));
                }
                let vmrun = c
                    .vmrun
                    .as_ref()
                    .map(|v| v.program.display().to_string())
                    .unwrap_or_else(|| "vmrun".into());
                left.stop_commands
                    .push(format!("{vmrun} -T ws stop '{vmx}' hard"));
            }
            // The private vmrest is only an API server: the VM does not need it.
            if let Some(p) = c.process.as_mut() {
                p.kill_now();
            }
            c.process = None;
        }
        if self.preexisting.take().is_some() {
            left.items
                .push(format!("VM files in {}", self.cfg.env.work_dir.display()));
            left.stop_commands
                .push(format!("rm -rf '{}'", self.cfg.env.work_dir.display()));
        }
        self.started = false;
        self.control = None;
        left
    }

    fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

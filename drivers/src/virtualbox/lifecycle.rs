//! Creating, starting and exporting the VM.

use super::config::VBoxConfig;
use super::info::parse_list_vms;
use super::ports;
use super::setup::{self, MediumKind};
use super::vboxmanage::{self, args, VBoxManage};
use super::{io, VirtualBoxDriver};
use crate::{DriverError, DriverResult};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// How many times a forward that did not come up is moved to another port.
const FORWARD_ATTEMPTS: usize = 8;

/// `Settings file: '/path/x.vbox'` in createvm's output.
fn settings_file(stdout: &str) -> Option<PathBuf> {
    stdout.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("Settings file:")?.trim();
        Some(PathBuf::from(rest.trim_matches('\'')))
    })
}

/// Whether something accepts connections on 127.0.0.1:`port` (a connection, unlike a bind,
/// cannot get in the way of VirtualBox binding the port itself).
fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::new(LOOPBACK, port), Duration::from_secs(1)).is_ok()
}

impl VirtualBoxDriver {
    pub(super) async fn create_vm(&mut self) -> DriverResult<()> {
        if self.registered {
            return Err(DriverError::Msg(format!(
                "VirtualBox VM {} was already created",
                self.name()
            )));
        }
        let program = vboxmanage::find_program(&self.cfg.env).ok_or_else(|| {
            DriverError::Msg(
                "VBoxManage was not found on PATH (nor in VBOX_INSTALL_PATH): install VirtualBox \
                 (6.1 or later) or build with --engine packer"
                    .into(),
            )
        })?;
        let mut vbox = VBoxManage::new(program, self.cfg.env.clone());
        vbox.retry = self.cfg.lock_retry;
        let version = vbox.version().await?;
        tracing::info!("VirtualBox {version} ({})", vbox.program.display());
        if !version.at_least(6, 1) {
            self.warnings.push(format!(
                "VirtualBox {version} is older than 6.1, the oldest version this driver is tested \
                 with; if a VBoxManage command fails, update VirtualBox or use --engine packer"
            ));
        }
        let listed = vbox.call(&args(["list", "vms"])).await?;
        if parse_list_vms(&listed.stdout)
            .iter()
            .any(|v| v.name == self.cfg.vm_name)
        {
            return Err(DriverError::Msg(format!(
                "a VirtualBox VM named {:?} is already registered (left by an earlier build?): \
                 remove it with `{} unregistervm {:?} --delete`, or set another vm_name",
                self.cfg.vm_name,
                vbox.program.display(),
                self.cfg.vm_name
            )));
        }
        self.vbox = Some(vbox);
        self.version = Some(version);
        let wd = self.cfg.env.work_dir.clone();
        if !wd.exists() {
            std::fs::create_dir_all(&wd)
                .map_err(io(format!("creating the work directory {}", wd.display())))?;
            self.created_work_dir = true;
        }
        self.register().await?;
        self.configure_hardware().await?;
        self.create_storage().await?;
        self.configure_forward().await?;
        self.run_user_commands(false).await
    }

    async fn register(&mut self) -> DriverResult<()> {
        let wd = self.cfg.env.work_dir.clone();
        let basefolder = (!self.cfg.keep_registered).then_some(wd.as_path());
        let argv = setup::createvm(&self.cfg, basefolder);
        let out = self.vbox()?.call(&argv).await?;
        self.registered = true;
        if basefolder.is_some() {
            self.work_files.push(wd.join(&self.cfg.vm_name));
        }
        self.cfg_file = match settings_file(&out.stdout) {
            Some(p) => Some(p),
            None => self.info().await?.get("CfgFile").map(PathBuf::from),
        };
        Ok(())
    }

    /// One `modifyvm` for the hardware, the serial console, the NIC and (headless) VRDP —
    /// each VBoxManage call costs a process start and a session — then `setextradata`.
    async fn configure_hardware(&mut self) -> DriverResult<()> {
        let version = self.version.clone().expect("version known");
        let mut argv = setup::modifyvm_hardware(&self.cfg, &version);
        let log = self.serial_log();
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)
                .map_err(io(format!("creating the log directory {}", dir.display())))?;
        }
        argv.extend(setup::serial_to_file(self.name(), &log).into_iter().skip(2));
        argv.extend(setup::modifyvm_nat(&self.cfg, &version).into_iter().skip(2));
        if self.cfg.headless {
            let v = &self.cfg.vrdp;
            let addr: IpAddr = v.bind_address.parse().map_err(|_| {
                DriverError::Msg(format!(
                    "vrdp_bind_address {:?} is not an IP address",
                    v.bind_address
                ))
            })?;
            let held = ports::hold(addr, v.port_min, v.port_max, &[])
                .ok_or_else(|| no_port(&self.cfg, "vrdp_port_min..vrdp_port_max"))?;
            argv.extend(
                setup::modifyvm_vrde(&self.cfg, held.port)
                    .into_iter()
                    .skip(2),
            );
            self.vrdp_port = Some(held.port);
            self.held.push(held);
        }
        self.vbox()?.call(&argv).await?;
        for c in setup::extradata(&self.cfg) {
            self.vbox()?.call(&c).await?;
        }
        Ok(())
    }

    /// The communicator's forward on 127.0.0.1, its port held until start.
    async fn configure_forward(&mut self) -> DriverResult<()> {
        let (Some(fwd), false) = (self.cfg.forward.clone(), self.cfg.skip_nat_mapping) else {
            return Ok(());
        };
        let held = ports::hold(LOOPBACK, fwd.host_port_min, fwd.host_port_max, &[])
            .ok_or_else(|| no_port(&self.cfg, "host_port_min..host_port_max"))?;
        let add = setup::add_forward(self.name(), held.port, fwd.guest_port);
        match self.vbox()?.call_raw(&add).await {
            Ok(_) => {}
            Err(f) if f.mentions("A NAT rule of this name already exists") => {
                self.vbox()?
                    .call(&setup::delete_forward(self.name()))
                    .await?;
                self.vbox()?.call(&add).await?;
            }
            Err(f) => return Err(f.into()),
        }
        self.ssh_port = Some(held.port);
        self.held.push(held);
        Ok(())
    }

    /// `vboxmanage` (before start) or `vboxmanage_post` (after shutdown).
    pub(super) async fn run_user_commands(&mut self, post: bool) -> DriverResult<()> {
        let fields = self.cfg.fields(self.media.http.as_ref());
        let cmds = if post {
            self.cfg.vboxmanage_post.clone()
        } else {
            self.cfg.vboxmanage.clone()
        };
        for c in cmds {
            let argv = setup::render_command(&c, &fields)?;
            self.vbox()?.call(&argv).await.map_err(|e| {
                DriverError::Msg(format!(
                    "{} command failed: {e}",
                    if post {
                        "vboxmanage_post"
                    } else {
                        "vboxmanage"
                    }
                ))
            })?;
        }
        Ok(())
    }

    pub(super) async fn start_vm(&mut self) -> DriverResult<()> {
        if !self.registered {
            return Err(DriverError::Msg(
                "VirtualBox driver: call create() before start()".into(),
            ));
        }
        if self.started {
            return Err(DriverError::Msg(format!(
                "VirtualBox VM {} is already running",
                self.name()
            )));
        }
        let display = self.cfg.env.var("DISPLAY").is_some()
            || self.cfg.env.var("WAYLAND_DISPLAY").is_some()
            || (self.cfg.env.vars.is_empty()
                && (std::env::var_os("DISPLAY").is_some()
                    || std::env::var_os("WAYLAND_DISPLAY").is_some()));
        let headless = self.cfg.headless || !display;
        if !self.cfg.headless && !display {
            self.warnings.push(
                "headless is false but there is no display (DISPLAY is not set): the VM runs \
                 headless"
                    .into(),
            );
        }
        // The ports go to VirtualBox now.
        for h in &mut self.held {
            h.release();
        }
        self.held.clear();
        let argv = args([
            "startvm",
            self.name(),
            "--type",
            if headless { "headless" } else { "gui" },
        ]);
        self.vbox()?.call(&argv).await?;
        self.started = true;
        let info = self.info().await?;
        self.note_log_folder(&info);
        if !info.is_running() {
            let log = self.vbox_log();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            return Err(DriverError::Msg(format!(
                "VBoxManage startvm reported success but VM {} is {:?}; last lines of VBox.log:\n{}",
                self.name(),
                info.state().unwrap_or("unknown"),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )));
        }
        if !self.cfg.skip_nat_mapping && self.ssh_port.is_some() {
            self.ensure_forward().await?;
        }
        Ok(())
    }

    /// Whether the forward on `port` is up: VirtualBox did not log a failure for it and
    /// something listens there, within `wait`.
    async fn forward_up(&self, port: u16, wait: Duration) -> bool {
        let end = Instant::now() + wait;
        loop {
            if ports::redirect_failed(&self.vbox_log(), port) {
                return false;
            }
            if tokio::task::spawn_blocking(move || listening(port))
                .await
                .unwrap_or(false)
            {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// VirtualBox starts the VM even when the forward's port was taken in the moment between
    /// our release and its bind; move the forward until it is up.
    async fn ensure_forward(&mut self) -> DriverResult<()> {
        let fwd = self.cfg.forward.clone().expect("forward configured");
        let mut tried = Vec::new();
        for _ in 0..FORWARD_ATTEMPTS {
            let port = self.ssh_port.expect("forward set up");
            if self.forward_up(port, Duration::from_secs(3)).await {
                return Ok(());
            }
            tracing::info!("the SSH forward on 127.0.0.1:{port} did not come up; moving it");
            tried.push(port);
            let mut held = ports::hold(LOOPBACK, fwd.host_port_min, fwd.host_port_max, &tried)
                .ok_or_else(|| no_port(&self.cfg, "host_port_min..host_port_max"))?;
            let name = self.name().to_string();
            self.vbox()?
                .call(&args([
                    "controlvm",
                    &name,
                    "natpf1",
                    "delete",
                    setup::NAT_RULE,
                ]))
                .await?;
            held.release();
            self.vbox()?
                .call(&args([
                    "controlvm".to_string(),
                    name,
                    "natpf1".to_string(),
                    setup::nat_rule(held.port, fwd.guest_port),
                ]))
                .await?;
            self.ssh_port = Some(held.port);
        }
        Err(DriverError::Msg(format!(
            "VirtualBox could not set up the SSH port forward (ports tried: {tried:?}; see VBox.log \
             for \"Failed to redirect\"); widen host_port_min..host_port_max or free those ports"
        )))
    }

    pub(super) async fn export_vm(&mut self, out_dir: &Path) -> DriverResult<Vec<PathBuf>> {
        if !self.registered {
            return Err(DriverError::Msg(
                "VirtualBox driver: nothing to export (create() was not run)".into(),
            ));
        }
        let info = self.info().await?;
        if info.is_running() {
            return Err(DriverError::Msg(format!(
                "VirtualBox VM {} is still {}; shut it down (wait_stopped / force_stop) before export",
                self.name(),
                info.state().unwrap_or("running")
            )));
        }
        self.started = false;
        self.wait_unlocked(Some(info), self.cfg.unlock_timeout)
            .await?;
        self.detach_dvds(true).await?;
        self.vbox()?.call(&setup::serial_off(self.name())).await?;
        self.run_user_commands(true).await?;
        if self.ssh_port.is_some() && !self.cfg.skip_nat_mapping {
            self.vbox()?
                .call(&setup::delete_forward(self.name()))
                .await?;
        }
        std::fs::create_dir_all(out_dir).map_err(io(format!(
            "creating the output directory {}",
            out_dir.display()
        )))?;
        let files = if self.cfg.skip_export {
            self.copy_disks(out_dir)?
        } else {
            self.vbox_export(out_dir).await?
        };
        self.exported = true;
        Ok(files)
    }

    /// Empty every DVD drive (the installer ISO is the user's file: it must never be part of
    /// the export nor deleted with the VM). `strict`: fail on error (export); else best effort.
    pub(super) async fn detach_dvds(&mut self, strict: bool) -> DriverResult<()> {
        let dvds: Vec<_> = self
            .attachments
            .iter()
            .filter(|a| a.kind == MediumKind::Dvd)
            .cloned()
            .collect();
        for a in dvds {
            let r = self.vbox()?.call(&a.detach_args(self.name())).await;
            match r {
                Ok(_) => self.attachments.retain(|x| *x != a),
                Err(e) if strict => return Err(e),
                Err(e) => tracing::warn!("detaching {}: {e}", a.medium.display()),
            }
        }
        Ok(())
    }

    /// `skip_export`: the disks alone, copied (the VM may stay registered on them).
    fn copy_disks(&self, out_dir: &Path) -> DriverResult<Vec<PathBuf>> {
        let mut files = Vec::new();
        for d in &self.disks {
            let dst = out_dir.join(d.file_name().unwrap_or_default());
            std::fs::copy(d, &dst).map_err(io(format!(
                "copying the disk {} to {}",
                d.display(),
                dst.display()
            )))?;
            files.push(dst);
        }
        Ok(files)
    }

    async fn vbox_export(&self, out_dir: &Path) -> DriverResult<Vec<PathBuf>> {
        let target = out_dir.join(self.cfg.export_file_name());
        let before: Vec<PathBuf> = list_dir(out_dir);
        let mut argv = args([
            "export".to_string(),
            self.name().to_string(),
            "--output".to_string(),
            target.display().to_string(),
        ]);
        // A manifest lets the artifact be checked (VirtualBox writes none unless asked).
        if !self.cfg.export_opts.iter().any(|o| o.contains("manifest")) {
            argv.push("--manifest".into());
        }
        argv.extend(self.cfg.export_opts.iter().cloned());
        self.vbox()?.call(&argv).await?;
        let mut files: Vec<PathBuf> = list_dir(out_dir)
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        files.sort();
        // The descriptor (or the OVA) first.
        files.sort_by_key(|p| p != &target);
        if !files.contains(&target) {
            return Err(DriverError::Msg(format!(
                "VBoxManage export reported success but wrote no {}",
                target.display()
            )));
        }
        Ok(files)
    }
}

fn list_dir(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn no_port(cfg: &VBoxConfig, range: &str) -> DriverError {
    DriverError::Msg(format!(
        "no free TCP port in {range} for VM {}; widen the range",
        cfg.vm_name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn createvm_output() {
        let out = "Virtual machine 'osi' is created and registered.\nUUID: 1234\nSettings file: '/w/osi/osi.vbox'\n";
        assert_eq!(settings_file(out), Some(PathBuf::from("/w/osi/osi.vbox")));
    }
}

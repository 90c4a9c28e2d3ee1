//! `QemuDriver` as a [`Driver`]: the VM's lifecycle from disks to export.

use super::args::LaunchPlan;
use super::launch::{pick_port, port_seed};
use super::pacer::VcpuPacer;
use super::typing;
use super::{media, Firmware, QemuDriver, PORT_ATTEMPTS, USER_NET_HOST_IP};
use crate::bootcmd::KeyEvent;
use crate::driver::{
    Capabilities, DiskState, HostAddress, KeyProgress, LeftRunning, Media, SshAddress,
};
use crate::{Driver, DriverError, DriverResult};
use async_trait::async_trait;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn io(context: String) -> impl FnOnce(std::io::Error) -> DriverError {
    move |source| DriverError::Io { context, source }
}

#[async_trait]
impl Driver for QemuDriver {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            screenshots: true,
            serial_log: Some(self.cfg.serial_log()),
            disk_state: super::state::supported(&self.cfg),
        }
    }

    /// User networking (the default): the guest reaches the host's loopback as 10.0.2.2, so
    /// the server binds 127.0.0.1 only. A bridge (`net_bridge`, or `-netdev bridge,br=NAME` in
    /// qemuargs): the host's address on that bridge, bound there only.
    async fn host_address(&mut self) -> DriverResult<HostAddress> {
        match self.bridge() {
            None => Ok(HostAddress {
                bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
                guest_ip: USER_NET_HOST_IP.to_string(),
            }),
            Some(br) => {
                let ip = crate::netaddr::interface_ipv4(&br).ok_or_else(|| {
                    DriverError::Msg(format!(
                        "the VM is on bridge {br:?}, which has no IPv4 address on this host: the guest \
                         could not reach the build's HTTP server; give the bridge an address or use \
                         user networking (remove net_bridge)"
                    ))
                })?;
                Ok(HostAddress {
                    bind: IpAddr::V4(ip),
                    guest_ip: ip.to_string(),
                })
            }
        }
    }

    async fn create(&mut self, media: &Media) -> DriverResult<()> {
        self.cfg.media = media.clone();
        let wd = self.cfg.env.work_dir.clone();
        if !wd.exists() {
            std::fs::create_dir_all(&wd)
                .map_err(io(format!("creating the work directory {}", wd.display())))?;
            self.created_work_dir = true;
        }
        let ld = self.cfg.env.log_dir.clone();
        std::fs::create_dir_all(&ld)
            .map_err(io(format!("creating the log directory {}", ld.display())))?;
        let disks = match &self.saved_state {
            Some(state) => super::state::overlay_disks(&self.cfg, state).await,
            None => media::create_disks(&self.cfg).await,
        };
        // Record what exists even on failure so destroy() cleans it.
        let main = self.cfg.work_disk();
        if main.exists() {
            self.work_files.push(main);
        }
        self.disks = disks?;
        self.work_files.extend(self.disks.iter().skip(1).cloned());
        if let Some((iso, staging)) = media::make_cd(&self.cfg).await? {
            self.work_files.push(staging);
            self.work_files.push(iso.clone());
            self.cd_image = Some(iso);
        }
        if let Some((img, staging)) = media::make_floppy(&self.cfg).await? {
            self.work_files.push(staging);
            self.work_files.push(img.clone());
            self.floppy_image = Some(img);
        }
        if let Firmware::Efi { vars, .. } = &self.cfg.firmware {
            let saved = self
                .saved_state
                .as_ref()
                .and_then(|st| st.file(super::state::EFIVARS_ROLE))
                .map(Path::to_path_buf);
            let vars = saved.as_ref().unwrap_or(vars);
            let copy = wd.join(format!("{}-efivars.fd", self.cfg.vm_name));
            std::fs::copy(vars, &copy).map_err(io(format!(
                "copying the EFI variable store {}",
                vars.display()
            )))?;
            self.work_files.push(copy.clone());
            self.efi_vars = Some(copy);
        }
        Ok(())
    }

    /// Start QEMU. The SSH forwarding port is race-proof without holding a socket we cannot
    /// hand to QEMU: we pick a port that is free now (random start in the range, so parallel
    /// builds rarely collide), let QEMU bind it itself, and if QEMU exits reporting that the
    /// host forwarding could not be set up (someone took the port in between), we start it
    /// again with another port. Once QEMU runs, the port is held by QEMU for the VM's life.
    async fn start(&mut self) -> DriverResult<()> {
        if self.disks.is_empty() {
            return Err(DriverError::Msg(
                "QEMU driver: call create() before start()".into(),
            ));
        }
        if self.child.is_some() && !self.is_stopped() {
            return Err(DriverError::Msg(format!(
                "QEMU VM {} is already running",
                self.cfg.vm_name
            )));
        }
        let accel = self.resolve_accel().await;
        if let Ok(mut s) = self.shutdown_event.lock() {
            *s = None;
        }
        let rt = tempfile::Builder::new()
            .prefix("osimager-qemu-")
            .tempdir()
            .map_err(io("creating a private directory for the QMP socket".into()))?;
        let mut tried = Vec::new();
        let seed = port_seed();
        for attempt in 0..PORT_ATTEMPTS {
            let ssh_host_port = match &self.cfg.ssh {
                None => None,
                Some(s) => Some(
                    pick_port(s.host_port_min, s.host_port_max, seed.wrapping_add(attempt as u64 * 104729), &tried)
                        .ok_or_else(|| DriverError::Msg(format!(
                            "no free TCP port on 127.0.0.1 in host_port_min..host_port_max ({}–{}); widen the range",
                            s.host_port_min, s.host_port_max
                        )))?,
                ),
            };
            let plan = LaunchPlan {
                accel,
                qmp_socket: rt.path().join(format!("qmp-{attempt}.sock")),
                ssh_host_port,
                disks: self.disks.clone(),
                cd_image: self.cd_image.clone(),
                floppy_image: self.floppy_image.clone(),
                efi_vars: self.efi_vars.clone(),
                have_display: self.cfg.env.var("DISPLAY").is_some()
                    || self.cfg.env.var("WAYLAND_DISPLAY").is_some(),
                incoming: self.incoming_for(accel),
            };
            if let Some((child, qmp)) = self.launch(&plan).await? {
                self.watch_events(&qmp);
                if self.cfg.vnc.is_some() {
                    self.vnc_port = Self::query_vnc_port(&qmp).await;
                }
                self.pacer = child.id().and_then(VcpuPacer::find);
                if self.pacer.is_none() {
                    tracing::debug!("no vCPU threads found: typing paced by the key interval only");
                }
                self.child = Some(child);
                self.exit_status = None;
                self.qmp = Some(Arc::new(qmp));
                self.ssh_port = ssh_host_port;
                self.accel = Some(accel);
                self.runtime_dir = Some(rt);
                if plan.incoming.is_some() {
                    self.wait_resumed().await?;
                }
                return Ok(());
            }
            tried.extend(ssh_host_port);
        }
        Err(DriverError::Msg(format!(
            "QEMU could not set up SSH port forwarding after {PORT_ATTEMPTS} attempts (ports tried: {tried:?}); see {}",
            self.qemu_log().display()
        )))
    }

    async fn send_keys(
        &mut self,
        events: &[KeyEvent],
        progress: KeyProgress<'_>,
    ) -> DriverResult<()> {
        let qmp = self.live_qmp()?;
        typing::type_events(
            &qmp,
            events,
            self.cfg.boot_key_interval,
            self.pacer.as_ref(),
            progress,
        )
        .await
    }

    async fn screenshot(&mut self, path: &Path) -> DriverResult<()> {
        let qmp = self.live_qmp()?;
        let abs = std::path::absolute(path).map_err(io(format!("resolving {}", path.display())))?;
        qmp.execute(
            "screendump",
            Some(json!({"filename": abs.display().to_string(), "format": "png"})),
        )
        .await?;
        Ok(())
    }

    /// User networking: the forwarded port on the host's loopback, known from `start`. On a
    /// bridge the guest's address comes from its DHCP server, which QEMU does not know: the
    /// builder must say where to connect (`ssh_host`).
    async fn ssh_address(&mut self, _timeout: Duration) -> DriverResult<SshAddress> {
        if let Some(br) = self.bridge() {
            return Err(DriverError::Msg(format!(
                "the VM is on bridge {br:?}: its address is only known to the bridge's DHCP server; \
                 set ssh_host in the builder"
            )));
        }
        match self.ssh_port {
            Some(port) => Ok(SshAddress {
                host: "127.0.0.1".into(),
                port,
            }),
            None => Err(DriverError::Msg(format!(
                "QEMU VM {} has no SSH port forwarding (not started, or communicator none)",
                self.cfg.vm_name
            ))),
        }
    }

    async fn request_shutdown(&mut self) -> DriverResult<()> {
        self.live_qmp()?.execute("system_powerdown", None).await?;
        Ok(())
    }

    /// Waits for QEMU to exit. QEMU exits by itself when the guest powers off; if it stays up
    /// after a SHUTDOWN event (`-no-shutdown` in qemuargs), it is told to quit so the disks
    /// are closed and can be exported.
    async fn wait_stopped(&mut self, timeout: Duration) -> DriverResult<bool> {
        if self.is_stopped() {
            return Ok(true);
        }
        let qmp = self.qmp.clone();
        let notify = self.shutdown_notify.clone();
        let Some(child) = self.child.as_mut() else {
            return Ok(true);
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            tokio::select! {
                st = child.wait() => {
                    let st = st.map_err(io("waiting for QEMU to exit".into()))?;
                    self.exit_status = Some(st);
                    return Ok(true);
                }
                _ = notify.notified() => {
                    // Give QEMU a moment to exit on its own, then ask it to.
                    if tokio::time::timeout(Duration::from_secs(2), child.wait()).await.is_err() {
                        if let Some(q) = &qmp {
                            let _ = q.execute("quit", None).await;
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return Ok(false),
            }
        }
    }

    async fn force_stop(&mut self) -> DriverResult<()> {
        if self.is_stopped() {
            return Ok(());
        }
        if let Some(qmp) = self.qmp.clone() {
            let _ = tokio::time::timeout(Duration::from_secs(3), qmp.execute("quit", None)).await;
        }
        if !self.wait_stopped(Duration::from_secs(5)).await? {
            if let Some(child) = self.child.as_mut() {
                tracing::warn!("QEMU did not quit; killing it");
                let _ = child.start_kill();
                let st = child
                    .wait()
                    .await
                    .map_err(io("waiting for the killed QEMU".into()))?;
                self.exit_status = Some(st);
            }
        }
        Ok(())
    }

    async fn export(&mut self, out_dir: &Path) -> DriverResult<Vec<PathBuf>> {
        if !self.is_stopped() {
            return Err(DriverError::Msg(format!(
                "QEMU VM {} is still running; shut it down (wait_stopped / force_stop) before export",
                self.cfg.vm_name
            )));
        }
        if self.disks.is_empty() {
            return Err(DriverError::Msg(
                "QEMU driver: nothing to export (create() was not run)".into(),
            ));
        }
        media::export_disks(&self.cfg, &self.disks, out_dir, self.chained).await
    }

    async fn destroy(&mut self) -> DriverResult<()> {
        let stop = self.force_stop().await;
        self.qmp = None;
        self.child = None;
        self.runtime_dir = None;
        let mut failures = Vec::new();
        for f in self.work_files.drain(..).rev() {
            let r = if f.is_dir() {
                std::fs::remove_dir_all(&f)
            } else {
                std::fs::remove_file(&f)
            };
            if let Err(e) = r {
                if e.kind() != std::io::ErrorKind::NotFound {
                    failures.push(format!("{}: {e}", f.display()));
                }
            }
        }
        self.disks.clear();
        if self.created_work_dir {
            // Only if empty: the engine may keep its own files there.
            let _ = std::fs::remove_dir(&self.cfg.env.work_dir);
            self.created_work_dir = false;
        }
        stop?;
        if failures.is_empty() {
            Ok(())
        } else {
            Err(DriverError::Msg(format!(
                "could not remove work files: {}",
                failures.join("; ")
            )))
        }
    }

    fn exited(&mut self) -> Option<String> {
        if self.child.is_none() || !self.is_stopped() {
            return None;
        }
        let status = self
            .exit_status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown status".into());
        Some(format!(
            "QEMU exited ({status}); its log: {}",
            self.qemu_log().display()
        ))
    }

    fn footprint(&self) -> crate::Footprint {
        crate::Footprint {
            processes: self
                .child
                .as_ref()
                .and_then(|c| c.id())
                .into_iter()
                .collect(),
            dirs: self
                .runtime_dir
                .as_ref()
                .map(|d| d.path().to_path_buf())
                .into_iter()
                .collect(),
        }
    }

    fn leave_running(&mut self) -> LeftRunning {
        let mut left = LeftRunning::default();
        let running = !self.is_stopped();
        if let (true, Some(child)) = (running, self.child.take()) {
            let pid = child.id();
            // Dropping the handle would kill QEMU (kill_on_drop): forget it instead, so the VM
            // outlives this process. QEMU runs in its own process group, so a Ctrl-C in the
            // terminal does not reach it either.
            std::mem::forget(child);
            if let Some(rt) = self.runtime_dir.take() {
                let qmp = rt.keep();
                left.items
                    .push(format!("QMP socket directory {}", qmp.display()));
                left.stop_commands.push(format!("rm -rf {}", qmp.display()));
            }
            if let Some(pid) = pid {
                left.items.push(format!(
                    "QEMU process {pid} (VM {}; serial console {})",
                    self.cfg.vm_name,
                    self.cfg.serial_log().display()
                ));
                left.stop_commands.insert(0, format!("kill {pid}"));
            }
            if let Some(p) = self.ssh_port {
                left.items
                    .push(format!("SSH to the guest: ssh -p {p} <user>@127.0.0.1"));
            }
            if let Some(p) = self.vnc_port {
                left.items.push(format!("VNC console on port {p}"));
            }
        }
        for f in self.work_files.drain(..) {
            left.items.push(format!("work file {}", f.display()));
            left.stop_commands.push(format!("rm -rf {}", f.display()));
        }
        self.disks.clear();
        self.qmp = None;
        left
    }

    fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    async fn save_disk_state(&mut self) -> DriverResult<DiskState> {
        self.freeze_disks().await
    }

    fn use_disk_state(&mut self, state: &DiskState) -> DriverResult<()> {
        self.adopt_state(state)
    }
}

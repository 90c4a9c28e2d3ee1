//! Stopping and removing the VM: waiting for power-off (with the ACPI power button half-way
//! through the timeout), waiting for the session lock to go, powering off, and `destroy`.

use super::vboxmanage::args;
use super::VirtualBoxDriver;
use crate::{DriverError, DriverResult};
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(500);
/// How long `force_stop` waits for the VM to leave the running states after `poweroff`.
const POWEROFF_WAIT: Duration = Duration::from_secs(30);

impl VirtualBoxDriver {
    /// Wait until the VM's session is unlocked (VirtualBox keeps the lock for a moment after
    /// power-off; commands in that window fail with VBOX_E_INVALID_OBJECT_STATE). `Ok(false)`
    /// when it is still locked after `limit` (the lock retries of later calls take over).
    /// `first`: a `showvminfo` just taken, to save a call.
    pub(super) async fn wait_unlocked(
        &self,
        first: Option<super::info::VmInfo>,
        limit: Duration,
    ) -> DriverResult<bool> {
        let end = Instant::now() + limit;
        let mut known = first;
        loop {
            let info = match known.take() {
                Some(i) => i,
                None => self.info().await?,
            };
            if !info.session_locked() {
                return Ok(true);
            }
            if Instant::now() >= end {
                tracing::warn!(
                    "VM {}: the session is still locked after {limit:?}",
                    self.name()
                );
                return Ok(false);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Wait for the guest to power off. Half-way through `timeout`, if the VM is still up and
    /// no ACPI power-button press was sent, one is sent (a shutdown_command that did nothing,
    /// or a guest that ignored it). `Ok(false)` on timeout: the engine then powers it off.
    pub(super) async fn wait_for_stop(&mut self, timeout: Duration) -> DriverResult<bool> {
        if !self.registered {
            return Ok(true);
        }
        let start = Instant::now();
        loop {
            let info = self.info().await?;
            if info.state() == Some("gurumeditation") {
                return Err(DriverError::Msg(format!(
                    "VirtualBox VM {} crashed (guru meditation) while shutting down; see VBox.log \
                     in {}",
                    self.name(),
                    info.get("LogFldr").unwrap_or("the VM's Logs folder")
                )));
            }
            if !info.is_running() {
                if info.state() == Some("aborted") {
                    self.warnings.push(format!(
                        "VirtualBox VM {} stopped abnormally (state \"aborted\")",
                        self.name()
                    ));
                }
                self.started = false;
                let left = timeout
                    .saturating_sub(start.elapsed())
                    .max(Duration::from_secs(10));
                self.wait_unlocked(Some(info), left).await?;
                if !self.cfg.post_shutdown_delay.is_zero() {
                    tokio::time::sleep(self.cfg.post_shutdown_delay).await;
                }
                return Ok(true);
            }
            let elapsed = start.elapsed();
            if elapsed >= timeout {
                return Ok(false);
            }
            if !self.acpi_sent && elapsed >= timeout / 2 {
                self.acpi_sent = true;
                tracing::info!(
                    "VM {} still runs half-way through the shutdown timeout: pressing the ACPI \
                     power button",
                    self.name()
                );
                if let Err(e) = self
                    .vbox()?
                    .call(&args(["controlvm", self.name(), "acpipowerbutton"]))
                    .await
                {
                    tracing::warn!("ACPI power button: {e}");
                }
            }
            tokio::time::sleep(POLL.min(timeout - elapsed)).await;
        }
    }

    /// `controlvm poweroff` if the VM is up, then wait for it to stop and unlock.
    pub(super) async fn power_off(&mut self) -> DriverResult<()> {
        if !self.registered || self.vbox.is_none() {
            return Ok(());
        }
        let mut info = self.info().await?;
        if info.is_running() || info.state() == Some("gurumeditation") {
            if let Err(f) = self
                .vbox()?
                .call_raw(&args(["controlvm", self.name(), "poweroff"]))
                .await
            {
                // It stopped by itself in the meantime: fine.
                if !f.mentions("is not currently running") {
                    return Err(f.into());
                }
            }
            let end = Instant::now() + POWEROFF_WAIT;
            loop {
                info = self.info().await?;
                if !info.is_running() {
                    break;
                }
                if Instant::now() >= end {
                    return Err(DriverError::Msg(format!(
                        "VirtualBox VM {} did not stop within {POWEROFF_WAIT:?} of `controlvm \
                         poweroff`",
                        self.name()
                    )));
                }
                tokio::time::sleep(POLL).await;
            }
        }
        self.started = false;
        self.wait_unlocked(Some(info), self.cfg.unlock_timeout)
            .await?;
        Ok(())
    }

    /// Undo everything: power off, empty the DVD drives, unregister with `--delete` (the VM's
    /// files and disks), close and delete disks that were never attached, remove work files.
    /// With `keep_registered` after a successful export the VM and its disks stay.
    pub(super) async fn destroy_vm(&mut self) -> DriverResult<()> {
        if self.left {
            return Ok(());
        }
        self.held.clear();
        let mut failures: Vec<String> = Vec::new();
        let keep = self.cfg.keep_registered && self.exported;
        let mut unregister_failed = false;
        if self.registered && self.vbox.is_some() {
            if let Err(e) = self.power_off().await {
                failures.push(format!("powering off: {e}"));
            }
            if keep {
                tracing::info!(
                    "keeping VM {} registered (keep_registered = true)",
                    self.name()
                );
                self.registered = false;
            } else {
                let _ = self.detach_dvds(false).await;
                match self
                    .vbox()?
                    .call_raw(&args(["unregistervm", self.name(), "--delete"]))
                    .await
                {
                    Ok(_) => self.registered = false,
                    Err(f) if f.mentions("Could not find a registered machine") => {
                        self.registered = false
                    }
                    Err(f) => {
                        unregister_failed = true;
                        failures.push(DriverError::from(f).to_string());
                    }
                }
            }
        }
        if !keep && !unregister_failed {
            for d in std::mem::take(&mut self.disks) {
                if !d.exists() {
                    continue;
                }
                // Created but never attached: registered in VirtualBox's media registry.
                if let Some(v) = &self.vbox {
                    let _ = v
                        .once(
                            &args([
                                "closemedium".to_string(),
                                "disk".into(),
                                d.display().to_string(),
                                "--delete".into(),
                            ]),
                            None,
                        )
                        .await;
                }
                if let Err(e) = std::fs::remove_file(&d) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        failures.push(format!("{}: {e}", d.display()));
                    }
                }
            }
        }
        if !unregister_failed {
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
            if self.created_work_dir {
                // Only if empty: the engine may keep its own files there.
                let _ = std::fs::remove_dir(&self.cfg.env.work_dir);
                self.created_work_dir = false;
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(DriverError::Msg(format!(
                "could not remove VirtualBox VM {} completely: {}",
                self.name(),
                failures.join("; ")
            )))
        }
    }
}

//! Launching QEMU: one attempt, start-up diagnosis, SSH port choice, event watching.

use super::args::{build_argv, LaunchPlan};
use super::QemuDriver;
use crate::qmp::{Qmp, QmpError};
use crate::{DriverError, DriverResult};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

const QMP_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

fn io(context: String) -> impl FnOnce(std::io::Error) -> DriverError {
    move |source| DriverError::Io { context, source }
}

impl QemuDriver {
    /// Launch QEMU once. `Ok(None)` means "the SSH port was taken: try another".
    pub(super) async fn launch(&mut self, plan: &LaunchPlan) -> DriverResult<Option<(Child, Qmp)>> {
        let argv = build_argv(&self.cfg, plan)?;
        let log_path = self.qemu_log();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&log_path)
            .map_err(io(format!("creating {}", log_path.display())))?;
        tracing::info!("starting QEMU: {}", argv.join(" "));
        let mut cmd = Command::new(&argv[0]);
        self.cfg.env.apply(&mut cmd);
        let mut child = cmd
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            // Its own process group: a Ctrl-C in the terminal reaches osimager, which decides
            // (clean up, or leave the VM running with --on-error abort), not QEMU directly.
            .process_group(0)
            .spawn()
            .map_err(io(format!(
                "starting {} (is QEMU installed? Debian package qemu-system-x86)",
                argv[0]
            )))?;
        self.argv = argv;
        let connected = tokio::select! {
            r = Qmp::connect_retry(&plan.qmp_socket, QMP_CONNECT_TIMEOUT) => Some(r),
            _ = child.wait() => None,
        };
        let qmp_error = match connected {
            Some(Ok(qmp)) => return Ok(Some((child, qmp))),
            Some(Err(e)) => Some(e),
            None => None,
        };
        // No monitor: either QEMU is exiting (find out why from its stderr) or it hangs.
        let status = match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
            Ok(Ok(st)) => st.to_string(),
            _ => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                if let Some(e) = qmp_error.filter(|e| !matches!(e, QmpError::Closed(_))) {
                    return Err(e.into());
                }
                "killed after closing its monitor".into()
            }
        };
        let stderr = std::fs::read_to_string(&log_path).unwrap_or_default();
        if plan.ssh_host_port.is_some() && stderr.to_ascii_lowercase().contains("host forwarding") {
            tracing::info!(
                "SSH forwarding port {:?} was taken; retrying with another",
                plan.ssh_host_port
            );
            return Ok(None);
        }
        Err(DriverError::Command {
            command: self.argv.join(" "),
            status,
            stderr: stderr.trim().to_string(),
        })
    }

    pub(super) fn watch_events(&self, qmp: &Qmp) {
        let mut rx = qmp.subscribe();
        let slot = self.shutdown_event.clone();
        let notify = self.shutdown_notify.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(ev) if ev.name == "SHUTDOWN" => {
                        tracing::info!("guest shut down: {}", ev.data);
                        // Keep the first one: the guest's, not our own `quit`.
                        if let Ok(mut s) = slot.lock() {
                            s.get_or_insert(ev.data);
                        }
                        notify.notify_one();
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }

    pub(super) async fn query_vnc_port(qmp: &Qmp) -> Option<u16> {
        let v = qmp.execute("query-vnc", None).await.ok()?;
        v.get("service")?.as_str()?.parse().ok()
    }
}

/// A pseudo-random start in the port range so parallel builds rarely pick the same port.
pub(super) fn port_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 17)
}

/// A port in `min..=max` that is free right now (bind test on 127.0.0.1), skipping `avoid`.
pub(super) fn pick_port(min: u16, max: u16, seed: u64, avoid: &[u16]) -> Option<u16> {
    let span = u64::from(max - min) + 1;
    let start = seed % span;
    (0..span.min(512))
        .map(|k| min + ((start + k * 7919) % span) as u16)
        .find(|p| !avoid.contains(p) && std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
}

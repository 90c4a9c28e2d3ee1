//! Wait until the guest's SSH server accepts the communicator's credentials. The address is
//! `ssh_host`/`ssh_port` when the builder sets them, else what the driver says (a forwarded
//! port; on a bridged network the guest's DHCP address, known only after boot).

use crate::comm::Session;
use crate::comm::SshConfig;
use crate::engine::native::resources::{Ssh, Vm};
use crate::engine::native::runner::Runner;
use crate::engine::native::NativeError;
use std::sync::Arc;

/// The guest's session, shared by provisioning, shutdown and the cleanup that closes it.
pub(crate) type SharedSession = Arc<tokio::sync::Mutex<Option<Session>>>;

/// Where the communicator connects.
pub(crate) async fn address(cfg: &SshConfig, vm: &Vm) -> Result<(String, u16), NativeError> {
    if let Some(h) = &cfg.host {
        return Ok((h.clone(), cfg.port));
    }
    let a = vm
        .lock()
        .await
        .ssh_address(cfg.timeout)
        .await
        .map_err(NativeError::SshAddress)?;
    Ok((a.host, a.port))
}

pub(crate) async fn run(
    r: &Runner,
    cfg: &SshConfig,
    vm: &Vm,
) -> Result<(SharedSession, (String, u16)), NativeError> {
    let (host, port) = address(cfg, vm).await?;
    r.events.log(format!(
        "waiting for SSH on {host}:{port} (ssh_timeout {})",
        crate::comm::fmt_duration(cfg.timeout)
    ));
    let events = r.events.clone();
    let note = move |m: &str| events.log(m);
    let label = format!("waiting for SSH on {host}:{port}");
    let ready = super::waiting(
        r,
        &label,
        Some(cfg.timeout),
        crate::comm::wait_ready_observed(&host, port, cfg, &note),
    );
    // A VM that is gone (killed, crashed, powered off) will never answer: fail now, not at
    // ssh_timeout.
    let session = tokio::select! {
        s = ready => s.map_err(NativeError::WaitForSsh)?,
        why = vm_gone(vm) => return Err(NativeError::VmExited {
            during: "waiting for SSH",
            why,
        }),
    };
    let shared: SharedSession = Arc::new(tokio::sync::Mutex::new(Some(session)));
    r.register(Arc::new(Ssh {
        session: shared.clone(),
        addr: format!("{host}:{port}"),
    }));
    r.events.log(format!("connected to {host}:{port}"));
    Ok((shared, (host, port)))
}

/// Resolves when the driver reports that the VM's process ended (polled once a second, without
/// waiting for the VM lock another step may hold).
pub(crate) async fn vm_gone(vm: &Vm) -> String {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Ok(mut d) = vm.try_lock() {
            if let Some(why) = d.exited() {
                return why;
            }
        }
    }
}

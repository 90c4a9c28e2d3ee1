//! Shut the guest down: `shutdown_command` over SSH, else ACPI; wait for the VM to stop within
//! `shutdown_timeout`, else stop it by force and fail (the image would be inconsistent).

use super::wait_for_ssh::SharedSession;
use crate::engine::native::resources::Vm;
use crate::engine::native::runner::Runner;
use crate::engine::native::{NativeError, Settings};

pub(crate) async fn run(
    r: &Runner,
    s: &Settings,
    vm: &Vm,
    session: Option<&SharedSession>,
) -> Result<(), NativeError> {
    let sess = match session {
        Some(sh) => sh.lock().await.take(),
        None => None,
    };
    match (&s.shutdown_command, &sess) {
        (Some(cmd), Some(sess)) => {
            r.events.log("sending shutdown_command");
            sess.shutdown(cmd)
                .await
                .map_err(NativeError::ShutdownCommand)?;
        }
        _ => {
            r.events
                .log("no shutdown_command: asking the guest to power off (ACPI)");
            vm.lock()
                .await
                .request_shutdown()
                .await
                .map_err(NativeError::RequestShutdown)?;
        }
    }
    let timeout = s.shutdown_timeout;
    let stopped = super::waiting(r, "waiting for the VM to power off", Some(timeout), async {
        vm.lock().await.wait_stopped(timeout).await
    })
    .await
    .map_err(NativeError::WaitStopped)?;
    if let Some(sess) = sess {
        sess.close().await;
    }
    if !stopped {
        let _ = vm.lock().await.force_stop().await;
        return Err(NativeError::ShutdownTimeout { timeout });
    }
    Ok(())
}

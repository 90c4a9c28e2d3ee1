//! Power the VM on; follow its serial console into the event stream.

use crate::engine::native::resources::{Task, Vm};
use crate::engine::native::runner::Runner;
use crate::engine::native::{serial, NativeError};
use std::sync::Arc;

pub(crate) async fn run(r: &Runner, vm: &Vm) -> Result<(), NativeError> {
    let mut d = vm.lock().await;
    d.start().await.map_err(NativeError::StartVm)?;
    for w in d.take_warnings() {
        r.events.warn(w);
    }
    if let Some(log) = d.capabilities().serial_log {
        let stop = tokio_util::sync::CancellationToken::new();
        let handle = tokio::spawn(serial::follow(log, r.events.clone(), stop.clone()));
        r.register(Arc::new(Task {
            what: "serial console follower",
            stop,
            handle: tokio::sync::Mutex::new(Some(handle)),
        }));
    }
    Ok(())
}

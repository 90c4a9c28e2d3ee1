//! One file per step of a native build, in build order. Each `run` says what it reads (its
//! arguments) and what it hands on (its result); whatever it creates it registers with the
//! [`Runner`](super::runner::Runner) at once.

pub(crate) mod boot_command;
pub(crate) mod boot_wait;
pub(crate) mod create_vm;
pub(crate) mod export;
pub(crate) mod files;
pub(crate) mod http_server;
pub(crate) mod iso;
pub(crate) mod launch;
pub(crate) mod manifest;
pub(crate) mod provision;
pub(crate) mod shutdown;
pub(crate) mod temp_dir;
pub(crate) mod validate;
pub(crate) mod wait_for_ssh;

use super::resources::Vm;
use super::runner::Runner;
use std::path::Path;
use std::time::Duration;

/// Save a console screenshot into the diagnostics dir, if the driver can. Never fails the build.
pub(crate) async fn screenshot(r: &Runner, vm: &Vm, diag_dir: &Path, name: &str) {
    let mut d = vm.lock().await;
    if !d.capabilities().screenshots {
        return;
    }
    let path = diag_dir.join(format!("{name}.png"));
    match tokio::time::timeout(Duration::from_secs(20), d.screenshot(&path)).await {
        Ok(Ok(())) => r.events.emit(osimager_events::BuildEvent::Screenshot {
            name: name.to_string(),
            path: path.display().to_string(),
        }),
        Ok(Err(e)) => r.events.detail(format!("screenshot {name} failed: {e}")),
        Err(_) => r.events.detail(format!("screenshot {name} timed out")),
    }
}

/// Wait for `fut` while reporting `Wait` progress every second.
pub(crate) async fn waiting<T>(
    r: &Runner,
    label: &str,
    timeout: Option<Duration>,
    fut: impl std::future::Future<Output = T>,
) -> T {
    let started = std::time::Instant::now();
    tokio::pin!(fut);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let report = |last: bool| {
        r.events.progress(
            osimager_events::Progress::Wait {
                label: label.to_string(),
                elapsed_ms: started.elapsed().as_millis() as u64,
                timeout_ms: timeout.map(|t| t.as_millis() as u64),
            },
            last,
        )
    };
    let out = loop {
        tokio::select! {
            v = &mut fut => break v,
            _ = tick.tick() => report(false),
        }
    };
    report(true);
    out
}

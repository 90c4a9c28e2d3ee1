//! Type `boot_command` (`{{ .HTTPIP }}`, `{{ .HTTPPort }}`, `{{ .Name }}` filled in). The typed
//! text goes to the build log only as detail, redacted like every line (it may hold passwords).

use crate::engine::native::resources::Vm;
use crate::engine::native::runner::Runner;
use crate::engine::native::{NativeError, Settings};
use osimager_drivers::bootcmd::{self, Fields};
use osimager_drivers::HttpEndpoint;
use osimager_events::Progress;

/// The template fields of the boot command.
pub(crate) fn fields(s: &Settings, http: &Option<HttpEndpoint>) -> Fields {
    let mut f = Fields::new().with("Name", s.vm_name.clone());
    if let Some(h) = http {
        f.insert("HTTPIP", h.ip.clone());
        f.insert("HTTPPort", h.port.to_string());
    }
    f
}

pub(crate) async fn run(
    r: &Runner,
    s: &Settings,
    vm: &Vm,
    http: &Option<HttpEndpoint>,
) -> Result<(), NativeError> {
    if s.boot_command.is_empty() {
        r.skip("no boot_command");
        return Ok(());
    }
    let fields = fields(s, http);
    let events = bootcmd::parse(&s.boot_command, &fields).map_err(NativeError::BootCommand)?;
    if let Ok(text) = bootcmd::render(&s.boot_command.concat(), &fields) {
        r.events.detail(format!("typing: {text}"));
    }
    r.events.log(format!("typing {} key events", events.len()));
    let ev = r.events.clone();
    let progress = move |typed: usize, total: usize| {
        ev.progress(
            Progress::Keys {
                typed: typed as u64,
                total: total as u64,
            },
            typed == total,
        )
    };
    vm.lock()
        .await
        .send_keys(&events, &progress)
        .await
        .map_err(NativeError::TypeKeys)?;
    super::screenshot(r, vm, &s.diag_dir, "typed").await;
    Ok(())
}

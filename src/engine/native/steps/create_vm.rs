//! Make the driver for the builder type (the registry picks it) and create the VM: disks,
//! registration, extra media. Nothing runs yet.

use crate::engine::native::resources::{Vm, VmResource};
use crate::engine::native::runner::Runner;
use crate::engine::native::{NativeError, Settings};
use crate::engine::Build;
use osimager_drivers::{HttpEndpoint, Media};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The configured driver (creates nothing: validation already ran the same constructor).
pub(crate) fn make(b: &Build, s: &Settings, temp: &Path) -> Result<Vm, NativeError> {
    let env = b
        .context
        .driver_env(&s.build_name, temp.join("vm"), s.diag_dir.clone());
    let d = b
        .context
        .drivers
        .make(&b.plan.builder, env)
        .map_err(NativeError::CreateVm)?;
    Ok(Arc::new(tokio::sync::Mutex::new(d)))
}

pub(crate) async fn run(
    r: &Runner,
    s: &Settings,
    vm: &Vm,
    iso: Option<PathBuf>,
    http: &Option<HttpEndpoint>,
) -> Result<(), NativeError> {
    r.set_vm(vm.clone());
    // Registered before `create` so a half-created VM is also destroyed.
    r.register(Arc::new(VmResource {
        vm: vm.clone(),
        name: s.vm_name.clone(),
        last: Default::default(),
    }));
    let media = Media {
        iso_path: iso,
        http: http.clone(),
    };
    vm.lock()
        .await
        .create(&media)
        .await
        .map_err(NativeError::CreateVm)
}

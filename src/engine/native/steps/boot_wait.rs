//! `boot_wait`: give the firmware and boot loader time before typing.

use crate::engine::native::resources::Vm;
use crate::engine::native::runner::Runner;
use crate::engine::native::{NativeError, Settings};

/// `installed`: the VM boots a cached install by itself (nothing to type).
pub(crate) async fn run(
    r: &Runner,
    s: &Settings,
    vm: &Vm,
    installed: bool,
) -> Result<(), NativeError> {
    if installed {
        r.skip("install cache hit: the installed system boots by itself");
        return Ok(());
    }
    super::waiting(
        r,
        "boot_wait",
        Some(s.boot_wait),
        tokio::time::sleep(s.boot_wait),
    )
    .await;
    super::screenshot(r, vm, &s.diag_dir, "boot-wait").await;
    Ok(())
}

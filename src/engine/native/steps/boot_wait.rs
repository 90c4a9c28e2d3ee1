//! `boot_wait`: give the firmware and boot loader time before typing.

use crate::engine::native::resources::Vm;
use crate::engine::native::runner::Runner;
use crate::engine::native::{NativeError, Settings};

pub(crate) async fn run(r: &Runner, s: &Settings, vm: &Vm) -> Result<(), NativeError> {
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

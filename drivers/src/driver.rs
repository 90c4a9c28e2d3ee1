//! The `Driver` trait: what the native engine asks of a hypervisor. Drivers know nothing about
//! OSImager configuration; they are configured from the builder block (Packer vocabulary) by
//! their own `from_builder` constructors.

use crate::bootcmd::KeyEvent;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub type DriverResult<T> = Result<T, crate::DriverError>;

/// One virtual machine under construction. Every method that creates something records what it
/// created so that [`Driver::destroy`] can undo it; `destroy` is idempotent.
pub trait Driver: Send {
    /// Create disks and any registration the VM needs (no process started yet).
    fn create(&mut self) -> impl Future<Output = DriverResult<()>> + Send;
    /// Power the VM on.
    fn start(&mut self) -> impl Future<Output = DriverResult<()>> + Send;
    /// Type key events (already parsed from the boot command), honouring waits.
    fn send_keys(&mut self, events: &[KeyEvent]) -> impl Future<Output = DriverResult<()>> + Send;
    /// Save a PNG of the console.
    fn screenshot(&mut self, path: &Path) -> impl Future<Output = DriverResult<()>> + Send;
    /// Where the communicator reaches the guest's SSH port: (host, port).
    fn ssh_endpoint(&self) -> (String, u16);
    /// Ask the guest to power off (ACPI).
    fn request_shutdown(&mut self) -> impl Future<Output = DriverResult<()>> + Send;
    /// Wait until the VM is off; `Ok(false)` on timeout.
    fn wait_stopped(
        &mut self,
        timeout: Duration,
    ) -> impl Future<Output = DriverResult<bool>> + Send;
    /// Power off hard.
    fn force_stop(&mut self) -> impl Future<Output = DriverResult<()>> + Send;
    /// Export the (stopped) VM's disk(s) into `out_dir`; returns the files written.
    fn export(&mut self, out_dir: &Path)
        -> impl Future<Output = DriverResult<Vec<PathBuf>>> + Send;
    /// Undo everything `create`/`start` made (kill process, remove work disks). Idempotent.
    fn destroy(&mut self) -> impl Future<Output = DriverResult<()>> + Send;
}

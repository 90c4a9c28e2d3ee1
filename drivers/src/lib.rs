//! Hypervisor drivers for osimager: the [`Driver`](driver::Driver) trait, the boot-command
//! language shared by all drivers, key encodings, the QMP client and the QEMU driver.
pub mod bootcmd;
pub mod driver;
pub mod keys;
pub mod qemu;
pub mod qmp;
pub mod vnc;

pub use driver::{Driver, DriverResult};

/// Errors from drivers. Messages say which command or request failed and what to do.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("{0}")]
    Msg(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// An external tool (qemu-img, xorriso, QEMU) failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error(transparent)]
    Config(#[from] qemu::ConfigError),
    #[error(transparent)]
    BootCommand(#[from] bootcmd::BootCommandError),
    #[error(transparent)]
    Qmp(#[from] qmp::QmpError),
}

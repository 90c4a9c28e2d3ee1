//! Hypervisor drivers for osimager: the [`Driver`](driver::Driver) trait, the boot-command
//! language shared by all drivers, and the QEMU driver.
pub mod bootcmd;
pub mod driver;
pub mod keys;
pub mod qmp;

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
}

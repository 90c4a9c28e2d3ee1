//! Hypervisor drivers for osimager: the [`Driver`] trait, the boot-command
//! language shared by all drivers, key encodings, the QMP client and the QEMU driver.
//!
//! * [`bootcmd`]: `parse(&boot_command, &Fields) -> Vec<KeyEvent>`, `validate`, `render`.
//! * [`keys`]: QKeyCode names, PC-XT set-1 scancodes (+ VirtualBox chunking), X11 keysyms.
//! * [`qmp`]: a tolerant QMP client (`Qmp::connect`, `execute`, `subscribe`).
//! * [`qemu`]: `QemuConfig::from_builder(&builder, QemuEnv)` and `QemuDriver` (a [`Driver`]).
//! * [`vnc`]: an RFB client that types key events (for hypervisors reachable only by VNC).
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

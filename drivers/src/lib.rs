//! Hypervisor drivers for osimager: the [`Driver`] trait and its [`DriverRegistry`], the
//! boot-command language shared by all drivers, key encodings, the QMP client and the QEMU
//! driver.
//!
//! * [`driver`]: the [`Driver`] trait and the types the engine and drivers exchange
//!   ([`DriverEnv`], [`Media`], [`HostAddress`], [`SshAddress`], [`Capabilities`]).
//! * [`registry`]: builder type → driver ([`DriverRegistry::builtin`]).
//! * [`bootcmd`]: `parse(&boot_command, &Fields) -> Vec<KeyEvent>`, `validate`, `render`.
//! * [`keys`]: QKeyCode names, PC-XT set-1 scancodes (+ VirtualBox chunking), X11 keysyms.
//! * [`qmp`]: a tolerant QMP client (`Qmp::connect`, `execute`, `subscribe`).
//! * [`qemu`]: `QemuConfig::from_builder(&builder, DriverEnv)` and `QemuDriver`.
//! * [`vnc`]: an RFB client that types key events (for hypervisors reachable only by VNC).
//!
//! ```no_run
//! # async fn demo(builder: serde_json::Map<String, serde_json::Value>) -> osimager_drivers::DriverResult<()> {
//! use osimager_drivers::{DriverEnv, DriverRegistry, Media};
//! let mut vm = DriverRegistry::builtin().make(&builder, DriverEnv::default())?;
//! vm.create(&Media::default()).await?;
//! vm.start().await?;
//! vm.destroy().await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod bootcmd;
pub mod driver;
#[cfg(feature = "fake")]
pub mod fake;
pub mod keys;
pub(crate) mod netaddr;
pub mod qemu;
pub mod qmp;
pub mod registry;
pub mod virtualbox;
pub mod vmware;
pub mod vnc;

pub use driver::{
    Capabilities, DiskState, Driver, DriverEnv, DriverResult, Footprint, HostAddress, HttpEndpoint,
    KeyProgress, LeftRunning, Media, SshAddress,
};
pub use registry::{DriverEntry, DriverRegistry};

/// Errors from drivers. Messages say which command or request failed and what to do.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A failure described in words (what failed and what to do).
    #[error("{0}")]
    Msg(String),
    /// An I/O error while doing `context`.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An external tool (qemu-img, xorriso, QEMU) failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// No native driver for this builder type.
    #[error("builder type {builder_type:?} has no native driver (native drivers: {available}); use --engine packer")]
    NoDriver {
        /// The builder's `type`.
        builder_type: String,
        /// Builder types that have one.
        available: String,
    },
    /// A builder key the driver cannot use.
    #[error(transparent)]
    Config(#[from] qemu::ConfigError),
    /// The boot command does not parse.
    #[error(transparent)]
    BootCommand(#[from] bootcmd::BootCommandError),
    /// The QEMU monitor failed.
    #[error(transparent)]
    Qmp(#[from] qmp::QmpError),
}

//! Errors of the native engine: one variant per action that can fail, each carrying its cause
//! as a `#[source]`, and the [`ErrorKind`] a front end maps it to.

use crate::comm::CommError;
use crate::iso::IsoError;
use crate::provision::ProvisionError;
use osimager_drivers::bootcmd::BootCommandError;
use osimager_drivers::DriverError;
use osimager_events::ErrorKind;
use osimager_http::HttpError;
use std::path::PathBuf;
use std::time::Duration;

/// The builder block cannot be built natively as written.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A key has a value the engine cannot use.
    #[error("builder key {key}: {message}")]
    Key { key: String, message: String },
    /// `boot_command` does not parse.
    #[error("boot_command: {0}")]
    BootCommand(#[source] BootCommandError),
    /// The communicator keys (`ssh_*`).
    #[error(transparent)]
    Communicator(#[from] CommError),
    /// `iso_checksum`.
    #[error(transparent)]
    Checksum(#[from] IsoError),
    /// The driver refused the builder block.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// The output directory exists and `--force` was not given.
    #[error("output directory {} already exists: remove it or pass --force to replace it", path.display())]
    OutputExists { path: PathBuf },
}

/// Why a native build failed.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("cannot create the {what} {}", path.display())]
    CreateDir {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the spec's file {}", path.display())]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the build log {}", path.display())]
    BuildLog {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("getting the installation media")]
    Iso(#[source] IsoError),
    #[error("finding the address the guest uses to reach this host")]
    HostAddress(#[source] DriverError),
    #[error("starting the HTTP server")]
    HttpServer(#[source] HttpError),
    #[error("creating the VM")]
    CreateVm(#[source] DriverError),
    #[error("starting the VM")]
    StartVm(#[source] DriverError),
    #[error("boot_command")]
    BootCommand(#[source] BootCommandError),
    #[error("typing the boot command")]
    TypeKeys(#[source] DriverError),
    #[error("finding the guest's SSH address")]
    SshAddress(#[source] DriverError),
    #[error("waiting for SSH")]
    WaitForSsh(#[source] CommError),
    #[error("provisioning")]
    Provision(#[source] ProvisionError),
    #[error("sending shutdown_command")]
    ShutdownCommand(#[source] CommError),
    #[error("asking the guest to power off")]
    RequestShutdown(#[source] DriverError),
    #[error("waiting for the VM to power off")]
    WaitStopped(#[source] DriverError),
    #[error(
        "the VM did not power off within shutdown_timeout ({}); it was stopped by force and the \
         image was not exported. Check shutdown_command or raise shutdown_timeout",
        crate::comm::fmt_duration(*timeout)
    )]
    ShutdownTimeout { timeout: Duration },
    #[error(
        "the VM stopped while {during}: {why}. Was it killed, did it crash, or did the guest \
         power off? The log of the hypervisor and the serial console are in the diagnostics \
         directory"
    )]
    VmExited { during: &'static str, why: String },
    #[error("exporting the disk image")]
    Export(#[source] DriverError),
    #[error("{what} {}", path.display())]
    Output {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a Packer manifest ({problem}): move it away", path.display())]
    Manifest { path: PathBuf, problem: String },
    #[error(
        "output directory {} appeared during the build; the result is in {}",
        out.display(),
        staging.display()
    )]
    OutputAppeared { out: PathBuf, staging: PathBuf },
    #[error("interrupted by {reason}")]
    Cancelled { reason: String },
    #[error("{0}")]
    InstallCache(String),
}

impl NativeError {
    /// What kind of failure this is, for front ends and servers.
    pub fn kind(&self) -> ErrorKind {
        use NativeError::*;
        match self {
            Settings(SettingsError::OutputExists { .. }) => ErrorKind::BadInput,
            Settings(_) | BootCommand(_) => ErrorKind::Configuration,
            HttpServer(HttpError::NoFreePort { .. } | HttpError::BadRange { .. }) => {
                ErrorKind::Configuration
            }
            HttpServer(HttpError::Directory { .. }) => ErrorKind::BadInput,
            Iso(_) | Manifest { .. } | OutputAppeared { .. } => ErrorKind::BadInput,
            HostAddress(_)
            | CreateVm(_)
            | StartVm(_)
            | TypeKeys(_)
            | RequestShutdown(_)
            | WaitStopped(_)
            | Export(_)
            | VmExited { .. } => ErrorKind::Hypervisor,
            WaitForSsh(CommError::AuthRejected { .. } | CommError::Config { .. })
            | WaitForSsh(CommError::Key { .. }) => ErrorKind::Configuration,
            SshAddress(_) | WaitForSsh(_) | ShutdownCommand(_) | ShutdownTimeout { .. } => {
                ErrorKind::GuestTimeout
            }
            Provision(_) => ErrorKind::Provisioner,
            Cancelled { .. } => ErrorKind::Cancelled,
            CreateDir { .. }
            | WriteFile { .. }
            | BuildLog { .. }
            | Output { .. }
            | InstallCache(_)
            | HttpServer(_) => ErrorKind::Internal,
        }
    }
}

/// A native build that failed: in which step, why, and what `--on-error abort` left in place
/// (with the commands that remove it).
#[derive(Debug, thiserror::Error)]
#[error("build failed in step \"{}\"", .step.replace('_', " "))]
pub struct NativeFailure {
    pub step: String,
    #[source]
    pub source: NativeError,
    pub left_in_place: Vec<String>,
}

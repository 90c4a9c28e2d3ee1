//! The `Driver` trait: what the native engine asks of a hypervisor. Drivers know nothing about
//! OSImager configuration; they are configured from the builder block (Packer vocabulary) by
//! the constructor their [`registry`](crate::registry) entry names.
//!
//! Lifecycle, as the engine drives it:
//!
//! ```text
//! make(builder, DriverEnv)      validate the builder keys; nothing is created
//! host_address()                where the HTTP server binds and what the guest calls it
//! create(&Media)                disks, registration (the ISO and HTTP endpoint are known now)
//! start() → send_keys() → ssh_address() → request_shutdown()/wait_stopped() → export()
//! destroy()                     undo everything (idempotent); or leave_running() on abort
//! ```
//!
//! Optional, for the engine's install cache (drivers that cannot say `false` in
//! [`Capabilities::disk_state`] and keep the default methods, which refuse):
//!
//! ```text
//! save_disk_state()             the running VM's disks, frozen as they are now (after the install)
//! use_disk_state(&DiskState)    before create(): start from a saved state instead of blank disks
//! ```

use crate::bootcmd::KeyEvent;
use async_trait::async_trait;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Result of a driver call.
pub type DriverResult<T> = Result<T, crate::DriverError>;

/// What the engine knows about a build before anything exists. Shared by every driver.
#[derive(Debug, Clone, Default)]
pub struct DriverEnv {
    /// The build's name: defaults `vm_name` to `packer-<name>` and `output_directory` to
    /// `output-<name>`, as Packer does.
    pub build_name: String,
    /// Private work directory for the VM's disks and runtime files (created by `create` if
    /// missing; `destroy` removes what the driver put there).
    pub work_dir: PathBuf,
    /// Diagnostics directory: serial console and hypervisor logs go here.
    pub log_dir: PathBuf,
    /// Environment for the hypervisor's tools (`PATH`, `DISPLAY`, …): the build's own, not the
    /// process's, so that builds in one process do not see each other's settings.
    pub vars: Vec<(String, String)>,
}

impl DriverEnv {
    /// A variable of the build's environment.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Give `cmd` the build's environment. An empty `vars` means "inherit this process's"
    /// (tests and single-build callers that have no environment of their own).
    pub fn apply(&self, cmd: &mut tokio::process::Command) {
        if !self.vars.is_empty() {
            cmd.env_clear();
            cmd.envs(self.vars.iter().map(|(k, v)| (k, v)));
        }
    }
}

/// The build's HTTP server as the guest reaches it (`{{ .HTTPIP }}`, `{{ .HTTPPort }}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpEndpoint {
    /// Address the guest uses for the server (`{{ .HTTPIP }}`).
    pub ip: String,
    /// Port the server listens on (`{{ .HTTPPort }}`).
    pub port: u16,
}

/// Where the build's HTTP server must listen so that the guest, and nothing else needed, can
/// reach it; and the address the guest uses for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddress {
    /// Address the server binds (never 0.0.0.0 unless the user asked for it).
    pub bind: IpAddr,
    /// Address the guest uses to reach the host (`{{ .HTTPIP }}`).
    pub guest_ip: String,
}

/// What `create` gets: the installation media and the HTTP endpoint (when a server runs).
#[derive(Debug, Clone, Default)]
pub struct Media {
    /// The installer ISO (or, with `disk_image`, the base disk image), already downloaded.
    pub iso_path: Option<PathBuf>,
    /// The build's HTTP server (`http_directory`/`http_content`), if one runs.
    pub http: Option<HttpEndpoint>,
}

/// Where the communicator reaches the guest's SSH server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshAddress {
    /// Host name or address to connect to (usually loopback with a forwarded port).
    pub host: String,
    /// TCP port of the guest's sshd as seen from the host.
    pub port: u16,
}

/// Optional abilities of a driver, so the engine does not ask for what cannot be given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// `screenshot` works.
    pub screenshots: bool,
    /// The guest's serial console is written to this file (the engine follows it).
    pub serial_log: Option<PathBuf>,
    /// [`Driver::save_disk_state`] and [`Driver::use_disk_state`] work for this VM's
    /// configuration (the install cache uses them; without them every build installs).
    pub disk_state: bool,
}

/// The disk state of a VM at one moment: the files that hold it, by role (`disk0`, `disk1`,
/// …, `efivars`). Whoever keeps them (the engine's install cache) never writes to them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskState {
    /// (role, file) pairs: `disk0`, `disk1`, …, `efivars`.
    pub files: Vec<(String, PathBuf)>,
}

impl DiskState {
    /// The file of `role`, if the state has one.
    pub fn file(&self, role: &str) -> Option<&Path> {
        self.files
            .iter()
            .find(|(r, _)| r == role)
            .map(|(_, p)| p.as_path())
    }
}

/// Typing progress: (key events sent, key events in all).
pub type KeyProgress<'a> = &'a (dyn Fn(usize, usize) + Send + Sync);

/// What was left running after [`Driver::leave_running`], and how to stop it by hand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeftRunning {
    /// One line per thing left (process, registration, files).
    pub items: Vec<String>,
    /// Commands that stop and remove them.
    pub stop_commands: Vec<String>,
}

/// What a driver has created that would outlive a killed osimager (no destroy, no drop): its
/// processes and files outside the build's temp dir. The engine records it in the build's
/// state file so that the next run can remove it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Processes the driver started (each may lead its own process group).
    pub processes: Vec<u32>,
    /// Directories the driver made outside its work dir (e.g. a socket directory).
    pub dirs: Vec<PathBuf>,
}

/// One virtual machine under construction. Every method that creates something records what it
/// created so that [`Driver::destroy`] can undo it; `destroy` is idempotent.
#[async_trait]
pub trait Driver: Send {
    /// What this driver can do beyond the required methods.
    fn capabilities(&self) -> Capabilities;
    /// Where the build's HTTP server binds and how the guest reaches it. Called before
    /// `create`; the answer depends on the VM's network (QEMU user networking: the host's
    /// loopback, seen by the guest as 10.0.2.2).
    async fn host_address(&mut self) -> DriverResult<HostAddress>;
    /// Create disks and any registration the VM needs (no process started yet).
    async fn create(&mut self, media: &Media) -> DriverResult<()>;
    /// Power the VM on.
    async fn start(&mut self) -> DriverResult<()>;
    /// Type key events (already parsed from the boot command), honouring waits; `progress`
    /// is called as keys go out.
    async fn send_keys(
        &mut self,
        events: &[KeyEvent],
        progress: KeyProgress<'_>,
    ) -> DriverResult<()>;
    /// Save a PNG of the console (see [`Capabilities::screenshots`]).
    async fn screenshot(&mut self, path: &Path) -> DriverResult<()>;
    /// Where the communicator reaches the guest's SSH port. May only be known after boot
    /// (a DHCP lease): drivers wait for it and fail with a message when it never comes.
    async fn ssh_address(&mut self, timeout: Duration) -> DriverResult<SshAddress>;
    /// Ask the guest to power off (ACPI).
    async fn request_shutdown(&mut self) -> DriverResult<()>;
    /// Wait until the VM is off; `Ok(false)` on timeout.
    async fn wait_stopped(&mut self, timeout: Duration) -> DriverResult<bool>;
    /// Power off hard.
    async fn force_stop(&mut self) -> DriverResult<()>;
    /// Export the (stopped) VM's disk(s) into `out_dir`; returns the files written.
    async fn export(&mut self, out_dir: &Path) -> DriverResult<Vec<PathBuf>>;
    /// Undo everything `create`/`start` made (kill process, remove work disks). Idempotent.
    async fn destroy(&mut self) -> DriverResult<()>;
    /// `--on-error abort`: let the VM outlive this driver value (no kill on drop) and say what
    /// was left and how to stop it.
    fn leave_running(&mut self) -> LeftRunning;
    /// Warnings gathered so far (e.g. a fall-back from KVM to TCG), drained.
    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// Freeze the running VM's disks as they are now: from here on the VM writes elsewhere
    /// (e.g. a copy-on-write overlay) and the returned files stay as they are until
    /// [`destroy`](Driver::destroy). The caller flushes the guest's caches first (`sync`).
    /// Optional (see [`Capabilities::disk_state`]); the default refuses.
    async fn save_disk_state(&mut self) -> DriverResult<DiskState> {
        Err(crate::DriverError::Msg(
            "this driver cannot save a VM's disk state".into(),
        ))
    }
    /// Before [`create`](Driver::create): make the VM's disks from `state` (read-only: the
    /// driver puts its writes elsewhere) instead of blank ones; the VM then boots from its
    /// disk, not from installation media. Optional; the default refuses.
    fn use_disk_state(&mut self, _state: &DiskState) -> DriverResult<()> {
        Err(crate::DriverError::Msg(
            "this driver cannot start a VM from a saved disk state".into(),
        ))
    }
    /// What would outlive a killed osimager right now (see [`Footprint`]).
    fn footprint(&self) -> Footprint {
        Footprint::default()
    }
    /// Why the VM is no longer running, if its process ended since `start` (killed, crashed,
    /// or the guest powered off); `None` while it runs, before `start`, or when the driver
    /// cannot tell. Polled while the engine waits for the guest, so that a dead VM fails the
    /// build at once instead of at `ssh_timeout`.
    fn exited(&mut self) -> Option<String> {
        None
    }
}

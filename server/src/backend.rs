//! The server's one door into the build engine: the [`Backend`] trait.
//!
//! The server never links the engine. The `osimager` crate implements this trait (feature
//! `serve`); tests use [`crate::fake::FakeBackend`]. Every method answers with values the API
//! can serialize as they are: secrets are redacted by the backend before they reach the server.

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use osimager_events::EventSink;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The filters of `osimager list`, as query parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TargetFilter {
    /// Only specs this platform can build.
    pub platform: Option<String>,
    /// Only arches this location offers.
    pub location: Option<String>,
    /// Only this distribution (`rhel`, `debian`, …).
    pub dist: Option<String>,
    /// Only this version, or a version line (`9` matches `9.4`).
    pub version: Option<String>,
    /// Only this architecture.
    pub arch: Option<String>,
    /// Only the newest version per distribution and arch (the `-latest-` aliases).
    pub latest: bool,
    /// Substring search in the target name.
    pub q: Option<String>,
}

/// One buildable `<dist>-<version>-<arch>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// The index key, `<dist>-<version>-<arch>`.
    pub name: String,
    /// Distribution.
    pub dist: String,
    /// Version.
    pub version: String,
    /// Architecture.
    pub arch: String,
    /// The spec file, relative to its data layer.
    pub spec: String,
    /// Platforms whose builds the spec supports.
    pub platforms: Vec<String>,
    /// Where the ISO comes from (URL or local path), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iso: Option<String>,
    /// The ISO (or disk image) is already local.
    pub local: bool,
    /// `<dist>-latest-<arch>` when this is the newest version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_alias: Option<String>,
}

/// A platform (`platforms/<name>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformInfo {
    /// File name without `.json`.
    pub name: String,
    /// Packer builder type (`qemu`, `vsphere-iso`, …).
    pub builder_type: String,
    /// Arches it lists.
    pub arches: Vec<String>,
    /// osimager has a native driver for it (otherwise builds go through Packer).
    pub native: bool,
}

/// A location of the user layer (`locations/<name>.json|toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocationInfo {
    /// File name without its suffix.
    pub name: String,
    /// `json` or `toml`.
    pub format: String,
    /// Where the file is.
    pub path: String,
    /// Platforms it lists.
    pub platforms: Vec<String>,
    /// Arches it lists.
    pub arches: Vec<String>,
}

/// The text of a location file, as the editor shows and saves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocationDoc {
    /// `json` or `toml`.
    pub format: String,
    /// The file's text.
    pub content: String,
}

/// A target with the same arguments as `osimager defs|dump|build`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetRef {
    /// `platform/location/spec`.
    pub target: String,
    /// Machine name (default: the spec name).
    pub name: Option<String>,
    /// IP address.
    pub ip: Option<String>,
    /// `-D key=value,…` items.
    pub defines: Vec<String>,
}

/// A target resolved: its defs and Packer template, secrets redacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedTarget {
    /// `platform/location/spec` after `-latest-` resolution.
    pub target: String,
    /// The resolved defs (`osimager defs`), secrets replaced with `***`.
    pub defs: Value,
    /// The Packer template (`osimager dump --redact`).
    pub template: Value,
    /// Warnings of the resolution (undefined defs and the like).
    pub warnings: Vec<String>,
}

/// One problem a validation found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// The key or field involved, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What is wrong and what to do.
    pub message: String,
}

/// The answer of a validation: `ok` when nothing stops a build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// Nothing stops a build.
    pub ok: bool,
    /// What stops it.
    pub problems: Vec<Problem>,
    /// What does not stop it but deserves a look.
    pub warnings: Vec<String>,
    /// The canonical target (after `-latest-` resolution), when it resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The engine `auto` picks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

/// `--engine`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineChoice {
    /// Native where a native driver exists, else Packer.
    #[default]
    Auto,
    /// osimager drives the hypervisor.
    Native,
    /// `packer build`.
    Packer,
}

impl EngineChoice {
    /// The CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineChoice::Auto => "auto",
            EngineChoice::Native => "native",
            EngineChoice::Packer => "packer",
        }
    }
}

/// `--on-error`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnErrorChoice {
    /// Unwind everything.
    #[default]
    Cleanup,
    /// Leave the VM, disks and temp dir in place and say where they are.
    Abort,
}

impl OnErrorChoice {
    /// The CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OnErrorChoice::Cleanup => "cleanup",
            OnErrorChoice::Abort => "abort",
        }
    }
}

/// `--cache`: the install cache of native builds (docs/CACHE.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheChoice {
    /// Always install from the media.
    #[default]
    Off,
    /// Boot a cached install when its key matches; otherwise install and store it.
    Use,
    /// Install from the media and replace the cached install.
    Refresh,
}

impl CacheChoice {
    /// The CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheChoice::Off => "off",
            CacheChoice::Use => "use",
            CacheChoice::Refresh => "refresh",
        }
    }

    /// The default: no cache (serde's `skip_serializing_if`).
    pub fn is_off(&self) -> bool {
        *self == CacheChoice::Off
    }
}

/// What the server asks the backend to build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildSpec {
    /// The job id: the `build` field of every record the backend sends.
    pub id: String,
    /// The target and its arguments.
    pub target: TargetRef,
    /// The engine.
    pub engine: EngineChoice,
    /// What to do when a step fails.
    pub on_error: OnErrorChoice,
    /// Replace an existing output directory.
    pub force: bool,
    /// Only check, create nothing.
    pub dry_run: bool,
    /// The install cache.
    #[serde(default, skip_serializing_if = "CacheChoice::is_off")]
    pub cache: CacheChoice,
    /// A directory of this build's own (under the server's state dir) for its temp files.
    /// The server removes it after the build, and sweeps it (and any process still using it)
    /// after a crash.
    pub work_dir: PathBuf,
}

/// A running build.
pub struct BuildHandle {
    /// Cancelling it stops the build; it then sends `build_finished` with `cancelled`.
    pub cancel: CancellationToken,
    /// Resolves when the build is over and every record was sent. An `Err` means the build
    /// could not report its own end (the server then records an internal failure).
    pub done: BoxFuture<'static, Result<(), BackendError>>,
}

/// The hardware accelerator a build would get.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accelerator {
    /// `kvm`, `tcg`, …
    pub name: String,
    /// KVM (or the platform's equivalent) can actually run a guest here.
    pub hardware: bool,
    /// How that was found out.
    pub detail: String,
}

/// A tool a build may need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// `qemu-system-x86_64`, `packer`, …
    pub name: String,
    /// Where it was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Its first line of `--version`, when asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// What the backend knows of the host: the accelerator and the tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostFacts {
    /// The accelerator QEMU builds get (the KVM probe).
    pub accelerator: Accelerator,
    /// Hypervisors that can run builds here (`qemu`, `virtualbox`, `vmware`).
    pub hypervisors: Vec<String>,
    /// Tools found (or not: `path` is then absent).
    pub tools: Vec<Tool>,
}

/// What went wrong, in a form the API maps to a status code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendErrorKind {
    /// Unknown target, platform, location, spec (404).
    NotFound,
    /// The request is unusable (400).
    Invalid,
    /// The request conflicts with what exists (409).
    Conflict,
    /// A bug or an environment problem (500).
    Internal,
}

/// An error of the backend. The message says what to do; `suggestions` lists close names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{message}")]
pub struct BackendError {
    /// For the status code.
    pub kind: BackendErrorKind,
    /// For people.
    pub message: String,
    /// The request field involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Close names (unknown target → the closest targets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggestions: Vec<String>,
}

impl BackendError {
    /// An error of `kind` with `message`.
    pub fn new(kind: BackendErrorKind, message: impl Into<String>) -> BackendError {
        BackendError {
            kind,
            message: message.into(),
            field: None,
            suggestions: Vec::new(),
        }
    }

    /// The request field involved.
    pub fn field(mut self, field: impl Into<String>) -> BackendError {
        self.field = Some(field.into());
        self
    }

    /// Close names the user may have meant.
    pub fn suggest(mut self, names: Vec<String>) -> BackendError {
        self.suggestions = names;
        self
    }
}

/// The build engine as the server sees it.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The index of targets, filtered.
    async fn targets(&self, filter: &TargetFilter) -> Result<Vec<TargetInfo>, BackendError>;
    /// Every platform.
    async fn platforms(&self) -> Result<Vec<PlatformInfo>, BackendError>;
    /// Every location of the user layer.
    async fn locations(&self) -> Result<Vec<LocationInfo>, BackendError>;
    /// One location file's text.
    async fn location(&self, name: &str) -> Result<LocationDoc, BackendError>;
    /// Check a location file's text without saving it.
    async fn check_location(
        &self,
        name: &str,
        doc: &LocationDoc,
    ) -> Result<Validation, BackendError>;
    /// Check and save a location file atomically in the user layer (never the bundled data).
    /// `create`: fail with `Conflict` when it exists.
    async fn save_location(
        &self,
        name: &str,
        doc: &LocationDoc,
        create: bool,
    ) -> Result<LocationInfo, BackendError>;
    /// Remove a location file of the user layer.
    async fn delete_location(&self, name: &str) -> Result<(), BackendError>;
    /// A target's defs and template, secrets redacted.
    async fn resolve(&self, target: &TargetRef) -> Result<ResolvedTarget, BackendError>;
    /// Everything a build checks before it creates anything. An unknown target is an `Err`
    /// (`NotFound` with suggestions); other problems are in the report.
    async fn validate(&self, target: &TargetRef) -> Result<Validation, BackendError>;
    /// Start a build. It sends its records to `sink` (`build_started` first, `build_finished`
    /// last, `build` = `spec.id`) and ends when `done` resolves.
    fn start(&self, spec: BuildSpec, sink: Arc<dyn EventSink>) -> BuildHandle;
    /// Accelerator, hypervisors and tools.
    async fn host(&self) -> HostFacts;
}

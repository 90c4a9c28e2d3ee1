//! Native engine: builds the image by driving the hypervisor directly (no Packer).
//!
//! [`build`] runs the ordered steps of [`pipeline`] with the QEMU driver; the pipeline itself is
//! generic over [`osimager_drivers::Driver`] so it can be exercised with other drivers (and
//! with a fake in tests). Where things go:
//!
//! * output: `output_directory` (relative paths resolve in the data directory, where OSImager
//!   runs Packer; `--output-dir` resolves in the current directory). It appears only when the
//!   build succeeded (staged as `.<name>.partial-<pid>`, renamed at the end) and holds the disk
//!   image(s) and `SHA256SUMS`.
//! * `packer-manifest.json` next to the output directory, one entry appended per build.
//! * diagnostics: `<output_directory>.build/` — `build.log` (redacted), the serial console and
//!   QEMU logs, screenshots after boot_wait, after typing and on failure. Kept after the build.
//! * ISO cache: `<packer_cache_dir>/iso` (default `~/.cache/osimager/iso`).

mod artifacts;
pub mod cleanup;
mod diag;
pub mod pipeline;
mod settings;
#[cfg(test)]
mod tests;

pub use artifacts::{CHECKSUM_FILE, MANIFEST_FILE};
pub use settings::{Settings, USER_NET_HOST_IP};

use crate::config::Config;
use crate::engine::BuildOptions;
use crate::iso::Meter;
use crate::plan::BuildPlan;
use anyhow::{anyhow, Result};
use osimager_drivers::qemu::{QemuConfig, QemuDriver, QemuEnv};
use osimager_drivers::Driver;
use pipeline::{GenerateFn, Pipeline};
use std::path::PathBuf;
use std::time::Duration;

/// What a successful build produced.
#[derive(Debug, Clone)]
pub struct BuildReport {
    pub output_dir: PathBuf,
    /// Exported files (inside `output_dir`).
    pub files: Vec<PathBuf>,
    /// `SHA256SUMS` inside `output_dir`.
    pub checksums: PathBuf,
    /// The Packer-format manifest the build was appended to.
    pub manifest: PathBuf,
    pub log: Option<PathBuf>,
    pub diag_dir: PathBuf,
    pub run_uuid: String,
    pub duration: Duration,
    /// `-n`: only validated; nothing was created.
    pub dry_run: bool,
}

/// What the engine tells a driver factory when the VM is about to be created.
#[derive(Debug, Clone)]
pub struct DriverEnv {
    pub build_name: String,
    /// Private work dir (under the build temp dir) for disks and runtime files.
    pub work_dir: PathBuf,
    /// Diagnostics dir: serial console and hypervisor logs go here.
    pub log_dir: PathBuf,
    pub iso_path: Option<PathBuf>,
    /// (`{{ .HTTPIP }}`, `{{ .HTTPPort }}`) when the HTTP server runs.
    pub http: Option<(String, u16)>,
}

/// Creates the driver for a build. `check` runs in the validate step, before anything exists.
pub trait DriverFactory<D: Driver>: Send {
    fn check(&self, plan: &BuildPlan, settings: &Settings) -> Result<()>;
    fn make(&mut self, plan: &BuildPlan, settings: &Settings, env: DriverEnv) -> Result<D>;
}

/// The QEMU driver factory.
pub struct QemuFactory;

fn qemu_env(env: DriverEnv) -> QemuEnv {
    QemuEnv {
        build_name: env.build_name,
        work_dir: env.work_dir,
        log_dir: env.log_dir,
        iso_path: env.iso_path,
        http: env.http,
    }
}

impl DriverFactory<QemuDriver> for QemuFactory {
    fn check(&self, plan: &BuildPlan, s: &Settings) -> Result<()> {
        if s.builder_type != "qemu" {
            return Err(anyhow!(
                "builder type {:?} has no native driver: use --engine packer",
                s.builder_type
            ));
        }
        let env = DriverEnv {
            build_name: s.build_name.clone(),
            work_dir: std::env::temp_dir(),
            log_dir: s.diag_dir.clone(),
            iso_path: None,
            http: Some((USER_NET_HOST_IP.into(), 8000)),
        };
        QemuConfig::from_builder(&plan.builder, qemu_env(env))
            .map(|_| ())
            .map_err(|e| anyhow!("builder: {e}"))
    }

    fn make(&mut self, plan: &BuildPlan, _s: &Settings, env: DriverEnv) -> Result<QemuDriver> {
        let cfg = QemuConfig::from_builder(&plan.builder, qemu_env(env))
            .map_err(|e| anyhow!("builder: {e}"))?;
        Ok(QemuDriver::new(cfg))
    }
}

/// The ISO cache: `<packer_cache_dir>/iso`, default `~/.cache/osimager/iso`.
pub fn iso_cache_dir(config: &Config) -> PathBuf {
    let s = config.settings.get_str("packer_cache_dir");
    let base = if s.is_empty() {
        crate::config::settings::home_dir().join(".cache/osimager")
    } else {
        PathBuf::from(s)
    };
    base.join("iso")
}

/// Resolves when SIGINT or SIGTERM arrives, with the signal's name. The handlers are
/// installed when this is called (must be inside a Tokio runtime), not when first polled.
pub fn stop_signal() -> impl std::future::Future<Output = String> + Send {
    use tokio::signal::unix::{signal, SignalKind};
    let int = signal(SignalKind::interrupt());
    let term = signal(SignalKind::terminate());
    async move {
        match (int, term) {
            (Ok(mut int), Ok(mut term)) => tokio::select! {
                _ = int.recv() => "SIGINT".to_string(),
                _ = term.recv() => "SIGTERM".to_string(),
            },
            _ => std::future::pending().await,
        }
    }
}

/// Run a native build of `plan` with QEMU. On failure, interruption (SIGINT/SIGTERM) or
/// timeout everything the build created is removed (unless `--on-error abort`).
pub async fn build(config: &Config, plan: &BuildPlan, opts: &BuildOptions) -> Result<BuildReport> {
    let generate: GenerateFn<'_> = Box::new(move |dir: &std::path::Path| {
        crate::config::files::generate(config, plan, dir).map_err(anyhow::Error::from)
    });
    // Install the handlers before the first step so no signal slips through.
    let stop = stop_signal();
    let mut p = Pipeline::new(
        plan,
        opts,
        QemuFactory,
        generate,
        iso_cache_dir(config),
        Meter::new(),
        true,
    );
    p.run(stop).await
}

/// [`build`] on a fresh current-thread runtime, for synchronous callers (the CLI).
pub fn build_blocking(
    config: &Config,
    plan: &BuildPlan,
    opts: &BuildOptions,
) -> Result<BuildReport> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(build(config, plan, opts))
}

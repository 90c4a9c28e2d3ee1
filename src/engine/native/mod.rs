//! Native engine: builds the image by driving the hypervisor directly (no Packer), through the
//! driver the [`DriverRegistry`](osimager_drivers::DriverRegistry) has for the builder type.
//!
//! [`run`] below is the build's table of contents; each step lives in `steps/<name>.rs`.
//! Where things go:
//!
//! * output: `output_directory` (relative paths resolve in the data directory, where OSImager
//!   runs Packer; `--output-dir` resolves in the caller's directory). It appears only when the
//!   build succeeded (staged as `.<name>.partial-<pid>`, renamed at the end) and holds the disk
//!   image(s) and `SHA256SUMS`.
//! * `packer-manifest.json` next to the output directory, one entry appended per build.
//! * diagnostics: `<output_directory>.build/` — `build.log`, the serial console and hypervisor
//!   logs, screenshots after boot_wait, after typing and on failure. Kept after the build.
//! * ISO cache: `<packer_cache_dir>/iso` (default `~/.cache/osimager/iso`).
//! * install cache (`--cache use|refresh`): `<packer_cache_dir>/install` (see
//!   [`crate::install_cache`]).

mod artifacts;
pub mod diag;
mod error;
#[cfg(test)]
mod fault_tests;
mod ledger;
mod resources;
mod runner;
mod serial;
mod settings;
mod steps;
#[cfg(test)]
mod tests;

pub use artifacts::{CHECKSUM_FILE, MANIFEST_FILE};
pub use error::{NativeError, NativeFailure, SettingsError};
pub use settings::Settings;

use crate::engine::Build;
use crate::install_cache::CacheMode;
use osimager_events::Outcome;
use runner::Runner;
use std::path::PathBuf;
use steps::*;

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
    pub diag_dir: PathBuf,
    pub run_uuid: String,
    /// `-n`: only validated; nothing was created.
    pub dry_run: bool,
}

/// Run a native build. On failure, cancellation or timeout everything the build created is
/// removed (unless `--on-error abort`); the error names the step.
pub async fn run(b: &Build) -> Result<BuildReport, Box<NativeFailure>> {
    let r = Runner::new(b);
    if !b.options.dry_run {
        r.recover_killed_builds();
    }
    let given_temp = temp_dir::adopt_given(&r, b);
    let mut diag: Option<PathBuf> = None;
    let result = tokio::select! {
        res = steps(&r, b, given_temp, &mut diag) => res,
        _ = b.cancel.cancelled() => Err(NativeError::Cancelled { reason: b.cancel.reason() }),
    };
    match result {
        Ok(report) => {
            r.step("cleanup", async {
                r.undo_all().await;
                Ok(())
            })
            .await
            .ok();
            Ok(report)
        }
        Err(e) => Err(fail(&r, e, diag).await),
    }
}

/// The build, step by step.
async fn steps(
    r: &Runner,
    b: &Build,
    given_temp: Option<PathBuf>,
    diag: &mut Option<PathBuf>,
) -> Result<BuildReport, NativeError> {
    let s = r.step("validate", validate::run(b)).await?;
    let caching = b.options.cache.mode != CacheMode::Off;
    if b.options.dry_run {
        if caching {
            install_cache::dry_run(r, b, &s).await?;
        }
        return Ok(manifest::dry_run(r, b, &s));
    }
    *diag = Some(s.diag_dir.clone());
    // The private workspace, and the driver configured to work in it (nothing created yet).
    let (temp, vm) = r
        .step("temp_dir", async {
            let temp = temp_dir::run(r, b, &s, given_temp).await?;
            let vm = create_vm::make(b, &s, &temp)?;
            Ok((temp, vm))
        })
        .await?;
    let files = r.step("files", files::run(r, b, &temp)).await?;
    // --cache use|refresh: a hit boots the cached install (no ISO, boot_wait, boot command).
    let cache = match caching {
        true => {
            r.step("install_cache", install_cache::run(r, b, &s, &vm, &temp))
                .await?
        }
        false => install_cache::Cache::Off,
    };
    let installed = cache.hit();
    let iso = r.step("iso", iso::run(r, &s, installed)).await?;
    let http = r
        .step("http_server", http_server::run(r, &s, &vm, &temp, &files))
        .await?;
    r.step("create_vm", create_vm::run(r, &s, &vm, iso, &http))
        .await?;
    r.step("launch", launch::run(r, &vm)).await?;
    r.step("boot_wait", boot_wait::run(r, &s, &vm, installed))
        .await?;
    r.step(
        "boot_command",
        boot_command::run(r, &s, &vm, &http, installed),
    )
    .await?;
    let session = match &s.ssh {
        Some(ssh) => {
            let (session, addr) = r
                .step("wait_for_ssh", wait_for_ssh::run(r, ssh, &vm))
                .await?;
            match &cache {
                install_cache::Cache::Miss(miss) => {
                    r.step("save_install", save_install::run(r, b, &vm, &session, miss))
                        .await?;
                }
                install_cache::Cache::Hit => {
                    r.step("guest_clock", install_cache::guest_clock(r, &session))
                        .await?;
                }
                install_cache::Cache::Off => {}
            }
            r.step(
                "provision",
                provision::run(
                    r,
                    b,
                    &s,
                    &temp,
                    &http,
                    provision::Guest {
                        vm: &vm,
                        session: &session,
                        addr,
                    },
                ),
            )
            .await?;
            Some(session)
        }
        None => None,
    };
    r.step("shutdown", shutdown::run(r, &s, &vm, session.as_ref()))
        .await?;
    let staged = r.step("export", export::run(r, &s, &vm)).await?;
    r.step("manifest", manifest::run(r, b, &s, staged)).await
}

/// A step failed (or the build was cancelled): diagnostics, then cleanup or abort.
async fn fail(r: &Runner, e: NativeError, diag: Option<PathBuf>) -> Box<NativeFailure> {
    // A cancellation drops the running step mid-way: report its end here.
    let step = match r.finish_step(match e {
        NativeError::Cancelled { .. } => Outcome::Cancelled,
        _ => Outcome::Failed,
    }) {
        Some(s) => s.to_string(),
        None => r.failed_step().unwrap_or("start").to_string(),
    };
    if let (Some(dir), Some(vm)) = (&diag, r.vm()) {
        steps::screenshot(r, &vm, dir, "failure").await;
    }
    if let Some(dir) = &diag {
        report_console(r, dir);
    }
    let message = crate::errors::error_chain(&e);
    let left = r.unwind_after_failure(&message).await;
    Box::new(NativeFailure {
        step,
        source: e,
        left_in_place: left,
    })
}

/// The tail of the serial console and the failure screenshot, for the reader of the log.
fn report_console(r: &Runner, dir: &std::path::Path) {
    for serial in diag::serial_logs(dir) {
        if let Some(t) = diag::tail(&serial, 20) {
            let t = if t.trim().is_empty() {
                "(the guest wrote nothing on the serial console)".to_string()
            } else {
                t
            };
            r.events.log(format!(
                "--- last lines of the serial console ({}) ---\n{t}\n---",
                serial.display()
            ));
        }
    }
    let shot = dir.join("failure.png");
    if shot.exists() {
        r.events
            .log(format!("screenshot of the console: {}", shot.display()));
    }
}

//! Engines: turn a [`BuildPlan`] into an image.
//!
//! * [`native`]: drive the hypervisor directly through a driver of the
//!   [`DriverRegistry`](osimager_drivers::DriverRegistry).
//! * [`packer`]: write the Packer template and run `packer build` (any platform).
//!
//! A build is a value, [`Build`]: the prepared plan, the options, its own [`BuildContext`], an
//! [`Events`] stream, a [`Cancel`] handle and an optional [`Prompter`]. [`run`] takes it by
//! value and returns a `Send + 'static` future, so a server can run many side by side. Engines
//! report only through the event stream: this module never prints nor reads the terminal.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod cancel;
mod context;
mod error;
pub mod events;
pub mod native;
pub mod packer;
pub mod retrofit;

pub use cancel::Cancel;
pub use context::BuildContext;
pub use error::BuildError;
pub use events::Events;

use crate::plan::BuildPlan;
use async_trait::async_trait;
use osimager_drivers::DriverRegistry;
use osimager_events::{BuildEvent, BuildResult, EngineName, ErrorInfo};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Which engine `osimager build` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EngineKind {
    /// Native where a native driver exists for the builder type, Packer otherwise.
    #[default]
    Auto,
    Native,
    Packer,
}

/// What to do when a step fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OnError {
    /// Undo everything the build created (default).
    #[default]
    Cleanup,
    /// Leave the VM, disks and temp dir in place and say where they are and how to remove them.
    Abort,
    /// Ask (through the caller's [`Prompter`]); without one, the same as abort.
    Ask,
}

/// Options shared by both engines (the CLI fills this from flags; mkosimage flags map onto it).
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub engine: EngineKind,
    /// Replace an existing output directory (`-f`, Packer `-force`).
    pub force: bool,
    pub on_error: OnError,
    /// Pause after each step (`-d`, Packer `-debug`): the caller's [`Prompter`] waits.
    pub debug: bool,
    /// Packer `-timestamp-ui` (`-t`).
    pub timestamp_ui: bool,
    /// Verbose engine log (`-L`, PACKER_LOG=1).
    pub log: bool,
    /// Log file (`-N`, PACKER_LOG_PATH; the native build log).
    pub logfile: Option<PathBuf>,
    /// Keep the temp dir (`-k`).
    pub keep: bool,
    /// Use this temp dir instead of a fresh one (`-m`).
    pub temp_dir: Option<PathBuf>,
    /// Check everything and say what would run; create nothing (`-n`).
    pub dry_run: bool,
    /// Output directory override (native engine; default from the builder's output_directory).
    pub output_dir: Option<PathBuf>,
    /// `--skip`: no provisioners, no Ansible venv.
    pub skip: bool,
    /// `-v` (mkosimage): the Packer engine says what it does (data dir, template path, hooks).
    pub verbose: bool,
}

/// Answers the questions a build may have for a person: the `-debug` pause and `--on-error
/// ask`. The CLI implements it on the terminal; a server does not give one.
#[async_trait]
pub trait Prompter: Send + Sync {
    /// `-debug`: called after each step; the build goes on when this returns.
    async fn after_step(&self, step: &str);
    /// `--on-error ask`: `true` = clean up, `false` = leave everything in place.
    async fn cleanup_after_failure(&self, error: &str) -> bool;
    /// Whether a child process (Packer) may use the terminal itself (its own `-debug` and
    /// `-on-error=ask` prompts read stdin).
    fn terminal(&self) -> bool {
        false
    }
}

/// A build, as a value. See the module docs.
pub struct Build {
    /// A prepared plan (see `config::Config::prepare`).
    pub plan: BuildPlan,
    pub options: BuildOptions,
    pub context: BuildContext,
    pub events: Events,
    pub cancel: Cancel,
    pub prompter: Option<Arc<dyn Prompter>>,
}

impl Build {
    /// A build of `plan` with this process's context, no sinks and no prompter.
    pub fn new(plan: BuildPlan, options: BuildOptions, context: BuildContext) -> Build {
        let events = Events::new(new_build_id(), context.secrets.clone());
        Build {
            plan,
            options,
            context,
            events,
            cancel: Cancel::new(),
            prompter: None,
        }
    }
}

/// A fresh build id: time-ordered, unique enough for one host's history.
pub fn new_build_id() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let r: u32 = rand::random();
    format!("{t:x}-{r:08x}")
}

/// What a build produced, by engine.
#[derive(Debug)]
pub enum BuildOutcome {
    Native(native::BuildReport),
    Packer(packer::PackerReport),
    /// Provisioners re-ran against an existing machine.
    Retrofit,
}

/// The engine `--engine auto` picks for a builder type: native where the registry has a driver.
pub fn pick(kind: EngineKind, builder_type: &str, drivers: &DriverRegistry) -> EngineKind {
    match kind {
        EngineKind::Auto if drivers.supports(builder_type) => EngineKind::Native,
        EngineKind::Auto => EngineKind::Packer,
        k => k,
    }
}

/// Run `build` with the engine its options select (see [`pick`]). The first event is
/// `build_started`, the last `build_finished`, whatever happens.
pub async fn run(build: Build) -> Result<BuildOutcome, BuildError> {
    let started = Instant::now();
    let kind = pick(
        build.options.engine,
        build.plan.builder_type(),
        &build.context.drivers,
    );
    build.events.emit(BuildEvent::BuildStarted {
        target: build.plan.target.clone(),
        engine: match kind {
            EngineKind::Packer => EngineName::Packer,
            _ => EngineName::Native,
        },
        builder_type: build.plan.builder_type().to_string(),
        name: build.plan.name.clone(),
        dry_run: build.options.dry_run,
    });
    for n in &build.plan.inputs.notices {
        build.events.log(n.clone());
    }
    for w in &build.plan.inputs.warnings {
        build.events.warn(w.clone());
    }
    let result = match kind {
        EngineKind::Packer => packer::run_build(&build)
            .await
            .map(BuildOutcome::Packer)
            .map_err(BuildError::from),
        _ => native::run(&build)
            .await
            .map(BuildOutcome::Native)
            .map_err(BuildError::Native),
    };
    finish(&build, &result, started);
    result
}

/// The `build_finished` event for `result`.
pub fn finish(build: &Build, result: &Result<BuildOutcome, BuildError>, started: Instant) {
    let duration_ms = started.elapsed().as_millis() as u64;
    let event = match result {
        Ok(outcome) => BuildEvent::BuildFinished {
            result: BuildResult::Succeeded,
            duration_ms,
            error: None,
            output_dir: match outcome {
                BuildOutcome::Native(r) if !r.dry_run => Some(r.output_dir.display().to_string()),
                _ => None,
            },
            left_in_place: Vec::new(),
        },
        Err(e) => BuildEvent::BuildFinished {
            result: if e.kind() == osimager_events::ErrorKind::Cancelled {
                BuildResult::Cancelled
            } else {
                BuildResult::Failed
            },
            duration_ms,
            error: Some(ErrorInfo {
                kind: e.kind(),
                message: e.message(),
                step: e.step().map(str::to_string),
            }),
            output_dir: None,
            left_in_place: e.left_in_place().to_vec(),
        },
    };
    build.events.emit(event);
}

/// Re-run the provisioners of `plan` (resolved as for a build) against an existing machine:
/// natively over SSH unless `--engine packer` (Packer's null builder, as OSImager does).
pub async fn retrofit(build: Build) -> Result<(), BuildError> {
    let started = Instant::now();
    let packer = build.options.engine == EngineKind::Packer;
    build.events.emit(BuildEvent::BuildStarted {
        target: build.plan.target.clone(),
        engine: if packer {
            EngineName::Packer
        } else {
            EngineName::Native
        },
        builder_type: "null".into(),
        name: build.plan.name.clone(),
        dry_run: build.options.dry_run,
    });
    let result = if packer {
        packer::run_retrofit(&build)
            .await
            .map(BuildOutcome::Packer)
            .map_err(BuildError::from)
    } else {
        retrofit::run(&build).await.map(|_| BuildOutcome::Retrofit)
    };
    finish(&build, &result, started);
    result.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_picks_native_where_the_registry_has_a_driver() {
        let d = DriverRegistry::builtin();
        assert_eq!(pick(EngineKind::Auto, "qemu", &d), EngineKind::Native);
        assert_eq!(pick(EngineKind::Auto, "vmware-iso", &d), EngineKind::Native);
        assert_eq!(
            pick(EngineKind::Auto, "vsphere-iso", &d),
            EngineKind::Packer
        );
        assert_eq!(
            pick(EngineKind::Auto, "virtualbox-iso", &d),
            EngineKind::Native
        );
        assert_eq!(pick(EngineKind::Packer, "qemu", &d), EngineKind::Packer);
        assert_eq!(
            pick(EngineKind::Native, "virtualbox-iso", &d),
            EngineKind::Native
        );
        let none = DriverRegistry::default();
        assert_eq!(pick(EngineKind::Auto, "qemu", &none), EngineKind::Packer);
    }
}

#[cfg(test)]
mod terminal_rule {
    /// The engines talk through events and the caller's prompter only: no terminal reads.
    /// (Printing is refused by `#![deny(clippy::print_stdout, clippy::print_stderr)]` above.)
    #[test]
    fn the_engine_never_reads_the_terminal() {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
        let mut files = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine"),
            &mut files,
        );
        assert!(files.len() > 20, "{files:?}");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for needle in ["io::stdin", "stdin()", "read_line", "IsTerminal"] {
                let hits: Vec<&str> = text
                    .lines()
                    .filter(|l| l.contains(needle) && !l.trim_start().starts_with("//"))
                    .filter(|l| !l.contains("needle") && !l.contains("for needle"))
                    .collect();
                assert!(hits.is_empty(), "{}: {needle}: {hits:?}", f.display());
            }
        }
    }
}

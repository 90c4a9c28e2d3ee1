//! Engines: turn a [`BuildPlan`](crate::plan::BuildPlan) into an image.
//!
//! * [`packer`]: write the Packer template and run `packer build` (any platform).
//! * [`native`]: drive the hypervisor directly through a `osimager_drivers` driver.

pub mod native;
pub mod packer;
pub mod retrofit;

use std::path::PathBuf;

/// Which engine `osimager build` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EngineKind {
    /// Native for platforms with a native driver (qemu), Packer otherwise.
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
    /// Leave the VM, disks and temp dir in place and print where they are.
    Abort,
    /// Ask on the terminal (Packer engine only; native treats it as abort when not a TTY).
    Ask,
}

/// Options shared by both engines (the CLI fills this from flags; mkosimage flags map onto it).
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub engine: EngineKind,
    /// Replace an existing output directory (`-f`, Packer `-force`).
    pub force: bool,
    pub on_error: OnError,
    /// Pause between steps (`-d`, Packer `-debug`).
    pub debug: bool,
    /// Packer `-timestamp-ui` (`-t`).
    pub timestamp_ui: bool,
    /// Verbose engine log (`-L`, PACKER_LOG=1).
    pub log: bool,
    /// Log file (`-N`, PACKER_LOG_PATH).
    pub logfile: Option<PathBuf>,
    /// Keep the temp dir (`-k`).
    pub keep: bool,
    /// Use this temp dir instead of a fresh one (`-m`).
    pub temp_dir: Option<PathBuf>,
    /// Print what would run and stop (`-n`).
    pub dry_run: bool,
    /// Print PROGRESS=/ERROR=/RESULT= lines (`--dispatcher`).
    pub dispatcher: bool,
    /// Output directory override (native engine; default from the builder's output_directory).
    pub output_dir: Option<PathBuf>,
}

/// What a build produced, by engine.
#[derive(Debug)]
pub enum BuildOutcome {
    Native(native::BuildReport),
    Packer(packer::PackerReport),
}

/// Platforms whose builder type has a native driver.
pub fn has_native_driver(builder_type: &str) -> bool {
    builder_type == "qemu"
}

/// The engine `--engine auto` picks for a plan: native where a native driver exists.
pub fn pick(kind: EngineKind, builder_type: &str) -> EngineKind {
    match kind {
        EngineKind::Auto if has_native_driver(builder_type) => EngineKind::Native,
        EngineKind::Auto => EngineKind::Packer,
        k => k,
    }
}

/// Build `plan` with the engine `opts.engine` selects (see [`pick`]).
pub fn build(
    config: &crate::config::Config,
    plan: &crate::plan::BuildPlan,
    opts: &BuildOptions,
) -> anyhow::Result<BuildOutcome> {
    match pick(opts.engine, plan.builder_type()) {
        EngineKind::Native => {
            if !has_native_driver(plan.builder_type()) {
                anyhow::bail!(
                    "platform {:?} (builder type {:?}) has no native driver; \
                     use --engine packer (or --engine auto)",
                    plan.platform,
                    plan.builder_type()
                );
            }
            native::build_blocking(config, plan, opts).map(BuildOutcome::Native)
        }
        _ => packer::build(config, plan, opts).map(BuildOutcome::Packer),
    }
}

/// Re-run the provisioners of `plan` (resolved as for a build) against an existing machine:
/// natively over SSH unless `--engine packer` (Packer's null builder, as OSImager does).
pub fn retrofit(
    config: &crate::config::Config,
    plan: &crate::plan::BuildPlan,
    opts: &BuildOptions,
) -> anyhow::Result<()> {
    match opts.engine {
        EngineKind::Packer => packer::retrofit_with(config, plan, opts, Default::default())
            .map(|_| ())
            .map_err(anyhow::Error::from),
        _ => retrofit::run(plan, opts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_picks_native_only_for_qemu() {
        assert_eq!(pick(EngineKind::Auto, "qemu"), EngineKind::Native);
        assert_eq!(pick(EngineKind::Auto, "vsphere-iso"), EngineKind::Packer);
        assert_eq!(pick(EngineKind::Packer, "qemu"), EngineKind::Packer);
        assert_eq!(
            pick(EngineKind::Native, "virtualbox-iso"),
            EngineKind::Native
        );
    }
}

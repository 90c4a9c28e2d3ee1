//! Engines: turn a [`BuildPlan`](crate::plan::BuildPlan) into an image.
//!
//! * [`packer`]: write the Packer template and run `packer build` (any platform).
//! * [`native`]: drive the hypervisor directly through a `osimager_drivers` driver.

pub mod native;
pub mod packer;

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

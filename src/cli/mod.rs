//! Command line: `osimager` (clap) and the compatibility entry points `mkosimage` /
//! `rfosimage` (selected by argv[0] or their own binaries). The CLI parses and prints; the
//! work is done by [`crate::config`] and [`crate::engine`].

mod args;
pub mod check_urls;
mod commands;
mod common;
mod doctor;
mod init;
pub mod mkosimage;
mod output;
mod plugins;
mod prompt;
pub mod run;
pub mod sinks;
mod venv;

pub use args::Cli;

use std::ffi::OsString;
use std::process::ExitCode;

/// Entry point of every binary: dispatch on the program name (`mkosimage`, `rfosimage`, else
/// `osimager`).
pub fn main_from_args(argv: Vec<OsString>) -> ExitCode {
    let prog = argv
        .first()
        .and_then(|p| std::path::Path::new(p).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match prog.as_str() {
        "mkosimage" => mkosimage::main_mkosimage(argv),
        "rfosimage" => mkosimage::main_rfosimage(argv),
        "mkvenv" => mkosimage::main_mkvenv(argv),
        _ => commands::main_osimager(argv),
    }
}

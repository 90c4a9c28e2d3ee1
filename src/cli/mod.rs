//! Command line: `osimager` (clap) and the compatibility entry points `mkosimage` /
//! `rfosimage` (selected by argv[0] or their own binaries). The CLI parses and prints; the
//! work is done by [`crate::config`] and [`crate::engine`].

mod args;
pub mod check_urls;
mod commands;
pub mod mkosimage;
mod output;
pub mod run;
pub mod sinks;

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

/// Print an error the way users read it: once, each cause only when it adds something.
pub(crate) fn report(e: &anyhow::Error) {
    let mut msg = format!("error: {e}");
    let mut shown = e.to_string();
    for c in e.chain().skip(1) {
        let t = c.to_string();
        if t.is_empty() || shown.contains(&t) {
            continue;
        }
        msg.push_str(&format!("\n  caused by: {t}"));
        shown.push_str(&t);
    }
    eprintln!("{}", crate::secret::redact(&msg));
}

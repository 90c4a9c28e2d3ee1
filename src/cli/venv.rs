//! `osimager venv [VERSION] [--all]` / `mkvenv`: list the Ansible venvs the specs need, or
//! create them.

use crate::venv::{run, VenvContext, VenvRequest};
use std::io::Write;

/// Run the command: output on stdout, `error: …` on failure, exit code 0 or 1 (OSImager prints
/// its errors on stdout too).
pub fn main(ctx: &VenvContext, req: &VenvRequest) -> i32 {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match run(ctx, req, &mut out) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(out, "error: {e}");
            1
        }
    }
}

//! Ctrl-C during `packer build` goes to Packer, not to us (as with OSImager's `os.system`):
//! Packer cleans up and exits, and we still remove the temp dir and report its exit code.
//! Alone in its binary because it changes process-wide signal dispositions.

mod packer_support;
mod support;

use osimager::engine::packer::run;
use osimager::engine::BuildOptions;
use packer_support::*;
use std::path::{Path, PathBuf};

#[test]
fn sigint_while_packer_runs_reaches_packer_only() {
    let s = Scratch::new();
    let plan = qemu_plan(&s);
    // The fake Packer interrupts its parent (us), as a terminal's Ctrl-C would, then exits the
    // way Packer does after an interrupt.
    let packer = s.script(
        "interrupting-packer",
        "if [ \"$1\" = version ]; then echo 'Packer v1.6.6'; exit 0; fi\n\
         kill -INT $PPID\nsleep 1\nexit 130",
    );
    let mut ctx = s.ctx();
    ctx.packer_cmd = packer.display().to_string();
    let no_files = |_: &Path| -> anyhow::Result<Vec<PathBuf>> { Ok(Vec::new()) };
    let err = run(&ctx, &plan, &BuildOptions::default(), &no_files).unwrap_err();
    assert_eq!(err.exit_code(), 130);
    assert!(!s.temp().exists(), "temp dir removed after the interrupt");
}

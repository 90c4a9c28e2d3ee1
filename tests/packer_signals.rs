//! Cancelling a build while `packer build` runs: Packer gets exactly one SIGINT (it runs in its
//! own process group, so a terminal's Ctrl-C reaches only osimager, which forwards it once),
//! cleans up and exits; we still remove the temp dir and report the cancellation with Packer's
//! exit code. A Ctrl-C to osimager's own process group does not reach Packer directly.

mod packer_support;
mod support;

use osimager::engine::packer::{run, PackerError, PackerJob};
use osimager::engine::{BuildOptions, Cancel, Events};
use packer_support::*;
use std::time::Duration;

#[test]
fn cancel_while_packer_runs_sends_one_interrupt() {
    let s = Scratch::new();
    let plan = qemu_plan(&s);
    let log = s.path().join("signals.txt");
    // The fake Packer records each SIGINT it receives and whether its process group is its own,
    // then exits the way Packer does after an interrupt.
    let packer = s.script(
        "interruptible-packer",
        &format!(
            "if [ \"$1\" = version ]; then echo 'Packer v1.6.6'; exit 0; fi\n\
             if [ \"$(ps -o pgid= $$ | tr -d ' ')\" = \"$$\" ]; then echo own-group >> '{log}'; fi\n\
             trap 'echo INT >> \"{log}\"; sleep 1; exit 130' INT\n\
             echo started >> '{log}'\n\
             while true; do sleep 0.1; done",
            log = log.display()
        ),
    );
    let mut ctx = s.ctx();
    ctx.packer_cmd = packer.display().to_string();
    let mut job = PackerJob::standalone(ctx, plan, BuildOptions::default(), Events::discard());
    let cancel = Cancel::new();
    job.cancel = cancel.clone();
    let log2 = log.clone();
    let canceller = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&log2)
            .unwrap_or_default()
            .contains("started")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "fake Packer never started"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cancel.cancel("SIGINT");
    });
    let err = run(&job).unwrap_err();
    canceller.join().unwrap();
    assert!(
        matches!(err, PackerError::Cancelled { code: 130, .. }),
        "{err}"
    );
    assert_eq!(err.kind(), osimager_events::ErrorKind::Cancelled);
    let seen = std::fs::read_to_string(&log).unwrap();
    assert_eq!(seen.matches("INT").count(), 1, "{seen}");
    assert!(seen.contains("own-group"), "{seen}");
    assert!(!s.temp().exists(), "temp dir removed after the interrupt");
}

//! Disk-full faults: a small tmpfs mounted by the test (we run as root; skipped visibly only if
//! the mount is refused) as the output directory's file system, and as the temp directory's.
//! The FAKE driver writes its image (`image_size`) with real file I/O into the engine's
//! staging directory beside the output, which is where a real export writes too.

use crate::harness::{assert_clean, fake_builder, Scratch, Spec, Tmpfs};
use crate::support::process::entries;
use serde_json::json;
use std::time::Duration;

#[test]
fn output_file_system_full_during_export_leaves_no_output() {
    let s = Scratch::new("out-full");
    let Some(_fs) = Tmpfs::mount(&s.path().join("out"), "1m") else {
        crate::support::skip("mount -t tmpfs was refused (not root, or no CAP_SYS_ADMIN)");
        return;
    };
    let spec = Spec {
        driver: "fake".into(),
        fake: crate::harness::FakeKnobs {
            image_size: 4 << 20,
            ..Default::default()
        },
        builder: fake_builder(&s.out(), json!({})),
        ..Spec::default()
    };
    let r = s.run(&spec, Duration::from_secs(120));
    r.assert_failed(
        "export",
        &[
            "No space left on device",
            &s.path().join("out").display().to_string(),
            "free space on it, or build elsewhere",
        ],
    );
    assert_clean(&s, &s.out(), "output full");
    // Only the diagnostics directory is there; the space is free again.
    let left: Vec<_> = entries(&s.path().join("out"))
        .into_iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["cell.build"], "{left:?}");
}

#[test]
fn temp_file_system_full_while_writing_answer_files_cleans_up() {
    let s = Scratch::new("tmp-full");
    let Some(_fs) = Tmpfs::mount(&s.path().join("tmp"), "64k") else {
        crate::support::skip("mount -t tmpfs was refused (not root, or no CAP_SYS_ADMIN)");
        return;
    };
    let spec = Spec {
        driver: "fake".into(),
        builder: fake_builder(&s.out(), json!({})),
        files: vec![("big.cfg".into(), "x".repeat(512 << 10))],
        ..Spec::default()
    };
    let r = s.run(&spec, Duration::from_secs(120));
    r.assert_failed(
        "files",
        &[
            "No space left on device",
            &s.path().join("tmp").display().to_string(),
            "TMPDIR or -m for temporary files",
        ],
    );
    assert_clean(&s, &s.out(), "temp full");
}

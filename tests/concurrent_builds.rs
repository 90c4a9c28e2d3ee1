//! Two native builds at once in ONE process, through the library entry point
//! (`osimager::build::run`), each with its own context (environment, temp root, secret
//! registry) and its own secret: both are real QEMU guests installing the hermetic test OS.
//! Build B is cancelled as soon as it starts waiting for SSH (its VM is running); build A must
//! finish and produce a verified image, with no process or temp dir of B left behind and
//! neither secret in either event stream. Slow: runs with OSIMAGER_E2E=1 and the test-OS media.

mod support;

use osimager::build::{run, BuildContext, BuildOptions, BuildRequest, Cancel};
use osimager::engine::EngineKind;
use osimager_events::{BuildEvent, ErrorKind, EventRecord, FnSink, MemorySink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const TARGET: &str = "qemu/hermetic/testos-1-x86_64";
const SECRET_A: &str = "alpha-pw-7Q2x";
const SECRET_B: &str = "beta-pw-9Z4y";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tools_bin() -> PathBuf {
    PathBuf::from(
        std::env::var("OSIMAGER_TOOLS_VENV").unwrap_or_else(|_| "/opt/osimager-venv".into()),
    )
    .join("bin")
}

/// A context of its own: environment (XDG dirs under `root`), temp root, secret registry.
fn context(root: &Path) -> BuildContext {
    let mut ctx = BuildContext::from_process();
    ctx.secrets = osimager::secret::Registry::new();
    ctx.temp_root = root.join("tmp");
    std::fs::create_dir_all(&ctx.temp_root).unwrap();
    let path = format!(
        "{}:{}",
        tools_bin().display(),
        ctx.var("PATH").unwrap_or("")
    );
    for (k, v) in [
        (
            "XDG_CONFIG_HOME",
            repo().join("tests/testos/config").display().to_string(),
        ),
        ("XDG_DATA_HOME", root.join("data").display().to_string()),
        ("XDG_CACHE_HOME", root.join("cache").display().to_string()),
        (
            "OSIMAGER_TESTOS_CACHE",
            support::media_cache().display().to_string(),
        ),
        ("PATH", path),
    ] {
        ctx.vars.insert(k.to_string(), v);
    }
    ctx
}

fn request(root: &Path, name: &str, secret: &str) -> BuildRequest {
    BuildRequest {
        target: TARGET.into(),
        name: Some(name.into()),
        ip: Some(String::new()),
        defines: vec![
            format!("testos_password={secret}"),
            format!("ansible_extra_vars=osimager_marker=built-{name}"),
        ],
        data_dir: Some(repo()),
        options: BuildOptions {
            engine: EngineKind::Native,
            output_dir: Some(root.join("out").join(name)),
            ..BuildOptions::default()
        },
        ..BuildRequest::default()
    }
}

/// Command lines of running processes that mention `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy() != me)
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(needle))
        .collect()
}

fn text(records: &[EventRecord]) -> String {
    serde_json::to_string(records).unwrap()
}

#[test]
fn two_builds_share_a_process_and_nothing_else() {
    if !support::e2e_enabled() {
        return;
    }
    // Removed at the end when everything passed; kept for a look otherwise.
    let scratch = tempfile::Builder::new()
        .prefix("concurrent-")
        .tempdir()
        .unwrap()
        .keep();
    let (root_a, root_b) = (scratch.join("a"), scratch.join("b"));
    let (ctx_a, ctx_b) = (context(&root_a), context(&root_b));
    let (reg_a, reg_b) = (ctx_a.secrets.clone(), ctx_b.secrets.clone());
    let (events_a, events_b) = (MemorySink::default(), MemorySink::default());
    let (cancel_a, cancel_b) = (Cancel::new(), Cancel::new());
    // B is cancelled as soon as its VM runs and it waits for SSH.
    let cb = cancel_b.clone();
    let cancel_at_ssh = FnSink(move |r: &EventRecord| {
        if matches!(&r.event, BuildEvent::StepStarted { step } if step == "wait_for_ssh") {
            cb.cancel("the test");
        }
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let b_root = root_b.display().to_string();
    let (a, b, b_leftovers) = rt.block_on(async {
        let a = tokio::spawn(run(
            request(&root_a, "conc-a", SECRET_A),
            ctx_a,
            vec![Arc::new(events_a.clone())],
            cancel_a,
        ));
        let b = tokio::spawn(run(
            request(&root_b, "conc-b", SECRET_B),
            ctx_b,
            vec![Arc::new(events_b.clone()), Arc::new(cancel_at_ssh)],
            cancel_b,
        ));
        let b = b.await.unwrap();
        // B is gone while A still runs: nothing of B's is left.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let left = processes_mentioning(&b_root);
        (a.await.unwrap(), b, left)
    });

    let b_err = b.expect_err("B was cancelled");
    assert_eq!(b_err.kind(), ErrorKind::Cancelled, "{}", b_err.message());
    assert_eq!(b_err.step(), Some("wait_for_ssh"));
    assert!(b_leftovers.is_empty(), "B left processes: {b_leftovers:?}");
    let b_tmp: Vec<_> = std::fs::read_dir(root_b.join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(b_tmp.is_empty(), "B left temp dirs: {b_tmp:?}");
    assert!(!root_b.join("out/conc-b").exists());

    let a = a.unwrap_or_else(|e| {
        let kept = &scratch;
        let serial = std::fs::read_dir(kept.join("a/out/conc-a.build"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().contains("serial"))
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect::<Vec<_>>()
            .join("\n");
        let tail: Vec<&str> = serial.lines().rev().take(40).collect();
        panic!(
            "A failed: {}\nkept: {}\nserial console (last lines, newest first):\n{}",
            e.message(),
            kept.display(),
            tail.join("\n")
        )
    });
    let osimager::engine::BuildOutcome::Native(report) = a else {
        panic!("A did not run natively")
    };
    let ok = std::process::Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&report.output_dir)
        .status()
        .unwrap();
    assert!(ok.success(), "A's checksums do not verify");
    assert!(processes_mentioning(&scratch.display().to_string()).is_empty());

    // Secrets: each build's registry knows its own secret only, and neither stream holds
    // either secret.
    assert_eq!(reg_a.redact(SECRET_A), "***");
    assert_eq!(
        reg_a.redact(SECRET_B),
        SECRET_B,
        "A's registry has B's secret"
    );
    assert_eq!(reg_b.redact(SECRET_B), "***");
    assert_eq!(
        reg_b.redact(SECRET_A),
        SECRET_A,
        "B's registry has A's secret"
    );
    let (ta, tb) = (text(&events_a.records()), text(&events_b.records()));
    for (t, who) in [(&ta, "A"), (&tb, "B")] {
        assert!(
            !t.contains(SECRET_A) && !t.contains(SECRET_B),
            "a secret in {who}'s events"
        );
    }
    // Each stream is its own build's only.
    let ids = |recs: Vec<EventRecord>| {
        let mut v: Vec<String> = recs.into_iter().map(|r| r.build).collect();
        v.dedup();
        v
    };
    let (ia, ib) = (ids(events_a.records()), ids(events_b.records()));
    assert_eq!(ia.len(), 1);
    assert_eq!(ib.len(), 1);
    assert_ne!(ia, ib);
    let _ = std::fs::remove_dir_all(&scratch);
}

//! Fault-matrix cells that are not about the hypervisor, with the FAKE driver running a real
//! stand-in process for the VM (`FakeControl::spawn_process`): a guest that ignores the
//! shutdown request, and a build whose process vanished without any cleanup (as after a
//! SIGKILL), recovered by the next build from its state file (ledger.rs). The same cell with
//! real QEMU and a real SIGKILL is `tests/native_signals.rs` (guest). Issue 15.

use super::tests::{context, plan};
use crate::engine::{self, Build, BuildError, BuildOptions};
use osimager_drivers::fake::FakeControl;
use osimager_events::{BuildEvent, ErrorKind, MemorySink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Processes (not this one) whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) || pid == me {
            continue;
        }
        if let Ok(b) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&b).replace('\0', " ");
            if cmd.contains(needle) {
                v.push(format!("{pid}: {cmd}"));
            }
        }
    }
    v
}

fn state_files(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root.join("state/osimager/builds"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn build(root: &Path, n: u32, control: &FakeControl) -> (Build, MemorySink, PathBuf, PathBuf) {
    let out = root.join(format!("out{n}/fake"));
    let temp = root.join(format!("tmp{n}"));
    let opts = BuildOptions {
        temp_dir: Some(temp.clone()),
        ..BuildOptions::default()
    };
    let b = Build::new(plan(&out, "none"), opts, context(root, control));
    b.context.secrets.register("s3cr3t-pw");
    let sink = MemorySink::default();
    b.events.attach(Arc::new(sink.clone()), false);
    (b, sink, temp, out)
}

async fn run(b: Build) -> Result<(), BuildError> {
    engine::run(b).await.map(|_| ())
}

#[tokio::test]
async fn shutdown_ignored_is_forced_reported_and_cleaned_up() {
    let root = tempfile::tempdir().unwrap();
    let control = FakeControl {
        spawn_process: true,
        ignore_shutdown: true,
        ..FakeControl::default()
    };
    let (b, _sink, temp, out) = build(root.path(), 1, &control);
    let err = run(b).await.unwrap_err();
    assert_eq!(err.step(), Some("shutdown"));
    assert_eq!(err.kind(), ErrorKind::GuestTimeout);
    let msg = err.message();
    assert!(msg.contains("did not power off"), "{msg}");
    assert!(msg.contains("shutdown_command"), "says what to do: {msg}");
    let calls = control.calls();
    let at = |c: &str| calls.iter().position(|x| x == c);
    assert!(
        at("force_stop") < at("destroy") && at("force_stop").is_some(),
        "{calls:?}"
    );
    assert!(!temp.exists() && !out.exists());
    let left = processes_mentioning(&root.path().display().to_string());
    assert!(left.is_empty(), "{left:?}");
    assert!(state_files(root.path()).is_empty());
}

/// The build's process "dies" while its VM runs: the build future is dropped mid-step, so no
/// cleanup runs, and the state file is made to name a dead owner (this process cannot die).
/// The VM's process and the temp dir are left, exactly as after a SIGKILL; the next build
/// removes them and says so.
#[tokio::test]
async fn a_build_killed_without_cleanup_is_recovered_by_the_next_build() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let hung = FakeControl {
        spawn_process: true,
        hang_at: Some("send_keys".into()),
        ..FakeControl::default()
    };
    let (b, _sink, temp, _out) = build(r, 1, &hung);
    let first = tokio::spawn(run(b));
    let mut waited = Duration::ZERO;
    while !hung.calls().iter().any(|c| c == "send_keys") {
        assert!(waited < Duration::from_secs(30), "{:?}", hung.calls());
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    first.abort();
    let _ = first.await;
    // What a SIGKILL leaves: the VM's process, the temp dir and the state file naming them.
    let vm = processes_mentioning(&temp.display().to_string());
    assert_eq!(
        vm.len(),
        1,
        "the fake VM process outlives its build: {vm:?}"
    );
    assert!(temp.exists());
    let files = state_files(r);
    assert_eq!(files.len(), 1, "{files:?}");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    let kinds: Vec<_> = record["leftovers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.contains(&"process".to_string()), "{record}");
    assert!(kinds.contains(&"dir".to_string()), "{record}");
    record["pid"] = serde_json::json!(u32::MAX - 1);
    std::fs::write(&files[0], serde_json::to_vec(&record).unwrap()).unwrap();

    let (b, sink, temp2, out2) = build(r, 2, &FakeControl::default());
    run(b).await.expect("the next build succeeds");
    let warnings: Vec<String> = sink
        .records()
        .into_iter()
        .filter_map(|e| match e.event {
            BuildEvent::Warning { message } => Some(message),
            _ => None,
        })
        .collect();
    let said = warnings.join("\n");
    assert!(said.contains("ended without cleaning up"), "{said}");
    assert!(said.contains("killed VM fake-vm process"), "{said}");
    assert!(
        said.contains(&format!("removed temp dir {}", temp.display())),
        "{said}"
    );
    let left = processes_mentioning(&r.display().to_string());
    assert!(left.is_empty(), "{left:?}");
    assert!(!temp.exists() && !temp2.exists());
    assert!(out2.join("fake.qcow2").is_file());
    assert!(state_files(r).is_empty(), "{:?}", state_files(r));
}

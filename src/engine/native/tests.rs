//! Pipeline tests with the FAKE driver (`osimager_drivers::fake`: it records calls and runs no
//! VM), registered in the build's driver registry the way a real driver is. They prove the
//! order of steps and cleanup, the `--on-error` semantics and the event stream. The real-QEMU
//! runs are in tests/native_*.rs.

use crate::engine::{self, Build, BuildContext, BuildError, BuildOptions, OnError};
use crate::plan::{BuildPlan, RenderedFile};
use osimager_drivers::fake::{registry_entry, FakeControl};
use osimager_drivers::DriverRegistry;
use osimager_events::{BuildEvent, EventRecord, MemorySink, Outcome};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub(super) fn plan(out: &Path, communicator: &str) -> BuildPlan {
    let b = json!({
        "type": "fake-iso",
        "vm_name": "fake-vm",
        "output_directory": out.display().to_string(),
        "boot_wait": "0s",
        "boot_command": ["<esc>linux ks=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ks.cfg<enter>"],
        "http_content": {"/ks.cfg": "rootpw s3cr3t-pw\n"},
        "communicator": communicator,
        "ssh_username": "root",
        "ssh_password": "s3cr3t-pw",
        "ssh_timeout": "1s",
        "shutdown_timeout": "5s",
    });
    let mut p = BuildPlan {
        target: "fake/test/fake".into(),
        name: "fake".into(),
        builder: b.as_object().unwrap().clone(),
        ..BuildPlan::default()
    };
    p.inputs.files = vec![RenderedFile {
        dest: "answers.cfg".into(),
        content: "generated".into(),
    }];
    p
}

struct Run {
    result: Result<super::BuildReport, BuildError>,
    calls: Vec<String>,
    events: Vec<EventRecord>,
    temp: PathBuf,
    out: PathBuf,
    _root: tempfile::TempDir,
}

pub(super) fn context(root: &Path, control: &FakeControl) -> BuildContext {
    let mut ctx = BuildContext::from_process();
    // The build state files (ledger.rs) go under the test's root, not the user's home.
    ctx.vars.insert(
        "XDG_STATE_HOME".into(),
        root.join("state").display().to_string(),
    );
    ctx.secrets = crate::secret::Registry::new();
    ctx.temp_root = root.to_path_buf();
    ctx.drivers = DriverRegistry::default().register(registry_entry("fake-iso", control.clone()));
    ctx
}

async fn run_fake(
    communicator: &str,
    control: FakeControl,
    on_error: OnError,
    stop_after: Option<Duration>,
) -> Run {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out/fake");
    let temp = root.path().join("tmp");
    std::fs::create_dir_all(&temp).unwrap();
    let opts = BuildOptions {
        on_error,
        temp_dir: Some(temp.clone()),
        ..BuildOptions::default()
    };
    let build = Build::new(
        plan(&out, communicator),
        opts,
        context(root.path(), &control),
    );
    build.context.secrets.register("s3cr3t-pw");
    let sink = MemorySink::default();
    build.events.attach(Arc::new(sink.clone()), false);
    let cancel = build.cancel.clone();
    if let Some(d) = stop_after {
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            cancel.cancel("test stop");
        });
    }
    let result = engine::run(build).await.map(|o| match o {
        engine::BuildOutcome::Native(r) => r,
        other => panic!("not native: {other:?}"),
    });
    Run {
        result,
        calls: control.calls(),
        events: sink.records(),
        temp,
        out,
        _root: root,
    }
}

fn without_screens(c: &[String]) -> Vec<String> {
    c.iter().filter(|x| *x != "screenshot").cloned().collect()
}

fn control() -> FakeControl {
    FakeControl::default()
}

fn failing(at: &str) -> FakeControl {
    FakeControl {
        fail_at: Some(at.into()),
        ..FakeControl::default()
    }
}

#[tokio::test]
async fn successful_build_runs_steps_in_order_and_cleans_up() {
    let r = run_fake("none", control(), OnError::Cleanup, None).await;
    let report = r.result.expect("build succeeds");
    let calls = without_screens(&r.calls);
    let http = calls.iter().find(|c| c.starts_with("http=")).unwrap();
    assert!(http.starts_with("http=10.0.2.2:"), "{calls:?}");
    assert_eq!(
        calls
            .iter()
            .filter(|c| !c.starts_with("http="))
            .collect::<Vec<_>>(),
        [
            "make", // validation
            "make", // the build's own driver
            "host_address",
            "create",
            "start",
            "keys:38",
            "send_keys",
            "request_shutdown",
            "wait_stopped",
            "export",
            "destroy"
        ]
    );
    assert!(report.output_dir.join("fake.qcow2").is_file());
    let sums = std::fs::read_to_string(&report.checksums).unwrap();
    assert!(sums.ends_with("  fake.qcow2\n"), "{sums}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report.manifest).unwrap()).unwrap();
    assert_eq!(m["builds"][0]["builder_type"], "fake-iso");
    assert_eq!(m["builds"][0]["files"][0]["size"], 5);
    assert_eq!(m["last_run_uuid"], report.run_uuid);
    assert!(!r.temp.exists(), "temp dir removed");
    // The typed password is in the log only as ***.
    let log = std::fs::read_to_string(report.diag_dir.join("build.log")).unwrap();
    assert!(
        log.contains("typing: <esc>linux ks=http://10.0.2.2:"),
        "{log}"
    );
    assert!(!log.contains("s3cr3t-pw"));
    // Lines start with an RFC 3339 time.
    assert!(
        log.lines()
            .all(|l| l.get(4..5) == Some("-") && l.contains('T')),
        "{log}"
    );
    // No staging leftovers next to the output.
    let siblings: Vec<_> = std::fs::read_dir(r.out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !siblings.iter().any(|n| n.contains("partial")),
        "{siblings:?}"
    );
}

#[tokio::test]
async fn events_tell_the_whole_build_in_order() {
    let r = run_fake("none", control(), OnError::Cleanup, None).await;
    assert!(r.result.is_ok());
    let seqs: Vec<u64> = r.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (0..r.events.len() as u64).collect::<Vec<_>>());
    assert!(matches!(r.events[0].event, BuildEvent::BuildStarted { .. }));
    assert!(matches!(
        r.events.last().unwrap().event,
        BuildEvent::BuildFinished { .. }
    ));
    let steps: Vec<(String, Outcome)> = r
        .events
        .iter()
        .filter_map(|e| match &e.event {
            BuildEvent::StepFinished { step, outcome, .. } => Some((step.clone(), *outcome)),
            _ => None,
        })
        .collect();
    let names: Vec<&str> = steps.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        names,
        [
            "validate",
            "temp_dir",
            "files",
            "iso",
            "http_server",
            "create_vm",
            "launch",
            "boot_wait",
            "boot_command",
            "shutdown",
            "export",
            "manifest",
            "cleanup"
        ]
    );
    assert_eq!(steps[3].1, Outcome::Skipped, "no ISO");
    // Key progress arrives inside the boot_command step.
    let keys = r.events.iter().position(
        |e| matches!(&e.event, BuildEvent::Progress { step, .. } if step == "boot_command"),
    );
    assert!(keys.is_some());
    let artifact = r
        .events
        .iter()
        .find_map(|e| match &e.event {
            BuildEvent::Artifact { path, sha256, .. } => Some((path.clone(), sha256.clone())),
            _ => None,
        })
        .unwrap();
    assert!(artifact.0.ends_with("fake.qcow2"));
    assert_eq!(artifact.1.unwrap().len(), 64);
    let text = serde_json::to_string(&r.events).unwrap();
    assert!(!text.contains("s3cr3t-pw"));
}

#[tokio::test]
async fn failure_unwinds_in_reverse_order() {
    let r = run_fake("none", failing("send_keys"), OnError::Cleanup, None).await;
    let err = r.result.unwrap_err();
    assert_eq!(err.step(), Some("boot_command"));
    let msg = err.message();
    assert!(
        msg.contains("boot command") && msg.contains("fake failure"),
        "{msg}"
    );
    let c = without_screens(&r.calls);
    assert_eq!(&c[c.len() - 2..], ["send_keys", "destroy"]);
    assert!(!r.temp.exists());
    assert!(!r.out.exists());
    // The failure screenshot was taken before cleanup.
    assert!(r.calls.iter().filter(|c| *c == "screenshot").count() >= 2);
}

#[tokio::test]
async fn ssh_timeout_fails_cleanly() {
    let r = run_fake("ssh", control(), OnError::Cleanup, None).await;
    let err = r.result.unwrap_err();
    assert_eq!(err.step(), Some("wait_for_ssh"));
    assert_eq!(err.kind(), osimager_events::ErrorKind::GuestTimeout);
    assert!(!err.message().contains("s3cr3t-pw"));
    let c = without_screens(&r.calls);
    assert_eq!(c.last().map(String::as_str), Some("destroy"));
    assert!(!r.temp.exists() && !r.out.exists());
}

#[tokio::test]
async fn export_failure_leaves_no_output() {
    let r = run_fake("none", failing("export"), OnError::Cleanup, None).await;
    assert!(r.result.is_err());
    assert!(!r.out.exists());
    let parent = r.out.parent().unwrap();
    let names: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains("partial")), "{names:?}");
    let c = without_screens(&r.calls);
    assert_eq!(&c[c.len() - 2..], ["export", "destroy"]);
}

#[tokio::test]
async fn on_error_abort_leaves_the_vm_and_says_how_to_remove_it() {
    let r = run_fake("none", failing("send_keys"), OnError::Abort, None).await;
    let err = r.result.unwrap_err();
    assert!(!r.calls.contains(&"destroy".to_string()));
    assert!(r.calls.contains(&"leave_running".to_string()));
    assert!(r.temp.exists(), "temp dir left for inspection");
    let left = err.left_in_place().join("\n");
    assert!(
        left.contains("fake VM") && left.contains("rm -rf"),
        "{left}"
    );
    assert!(left.contains(&r.temp.display().to_string()), "{left}");
    // The HTTP server cannot outlive the process: it was stopped, not listed.
    assert!(!left.contains("HTTP server"), "{left}");
}

#[tokio::test]
async fn stop_request_during_a_hung_step_unwinds() {
    for hang in ["start", "send_keys", "wait_stopped", "export"] {
        let c = FakeControl {
            hang_at: Some(hang.into()),
            ..FakeControl::default()
        };
        let r = run_fake(
            "none",
            c,
            OnError::Cleanup,
            Some(Duration::from_millis(300)),
        )
        .await;
        let err = r.result.unwrap_err();
        assert_eq!(err.kind(), osimager_events::ErrorKind::Cancelled, "{hang}");
        assert!(err.message().contains("interrupted by test stop"), "{hang}");
        assert_eq!(
            r.calls.last().map(String::as_str),
            Some("destroy"),
            "{hang}"
        );
        assert!(!r.temp.exists() && !r.out.exists(), "{hang}");
        let cancelled = r.events.iter().any(|e| {
            matches!(
                e.event,
                BuildEvent::StepFinished {
                    outcome: Outcome::Cancelled,
                    ..
                }
            )
        });
        assert!(
            cancelled,
            "{hang}: the dropped step is reported as cancelled"
        );
    }
}

#[tokio::test]
async fn existing_output_needs_force_and_nothing_is_left() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("exists");
    std::fs::create_dir(&out).unwrap();
    let temp = root.path().join("tmpXYZ");
    std::fs::create_dir(&temp).unwrap();
    let c = control();
    let opts = BuildOptions {
        temp_dir: Some(temp.clone()),
        ..BuildOptions::default()
    };
    let build = Build::new(plan(&out, "none"), opts, context(root.path(), &c));
    let err = engine::run(build).await.unwrap_err();
    assert_eq!(err.step(), Some("validate"));
    let msg = err.message();
    assert!(
        msg.contains("already exists") && msg.contains("--force"),
        "{msg}"
    );
    assert_eq!(err.kind(), osimager_events::ErrorKind::BadInput);
    assert!(c.calls().is_empty(), "nothing created before validation");
    assert!(
        !temp.exists(),
        "the caller's fresh temp dir is removed on a failed validation"
    );
}

#[tokio::test]
async fn bad_boot_command_fails_in_validate() {
    let root = tempfile::tempdir().unwrap();
    let mut p = plan(&root.path().join("o"), "none");
    p.builder
        .insert("boot_command".into(), json!(["<bogus>{{ .Nope }}"]));
    let c = control();
    let build = Build::new(p, BuildOptions::default(), context(root.path(), &c));
    let err = engine::run(build).await.unwrap_err();
    assert_eq!(err.step(), Some("validate"));
    assert!(err.message().contains("boot_command"), "{}", err.message());
    assert_eq!(err.kind(), osimager_events::ErrorKind::Configuration);
    assert!(c.calls().is_empty());
}

#[tokio::test]
async fn a_builder_type_without_a_driver_is_refused_at_validation() {
    let root = tempfile::tempdir().unwrap();
    let c = control();
    let mut ctx = context(root.path(), &c);
    ctx.drivers = DriverRegistry::default();
    let opts = BuildOptions {
        engine: engine::EngineKind::Native,
        ..BuildOptions::default()
    };
    let build = Build::new(plan(&root.path().join("o"), "none"), opts, ctx);
    let err = engine::run(build).await.unwrap_err();
    let msg = err.message();
    assert!(
        msg.contains("no native driver") && msg.contains("--engine packer"),
        "{msg}"
    );
}

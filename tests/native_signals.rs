//! SIGINT / SIGTERM / failure unwinding of the native pipeline with real QEMU (TCG), the real
//! HTTP server and the real SSH communicator, without an OS install: the "ISO" is a blank file
//! (verified by its sha256), so the VM sits in the BIOS and SSH never answers. Each build runs
//! in a child process (this test binary re-executed on `child_pipeline`) so that a real signal
//! hits a real process, and leftovers (QEMU processes, temp dir, output dir) are checked from
//! outside.

mod support;

use osimager::cli::run::{build, Frontends};
use osimager::engine::BuildOptions;
use osimager::plan::BuildPlan;
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::process::{assert_nothing_left, helper_command, processes_mentioning, Spawned};

/// Not a test: the body of a child process (see the module docs), run by the tests below.
#[test]
#[ignore = "helper: child pipeline process of the signal tests, run by them"]
fn child_pipeline() {
    let scratch = PathBuf::from(
        std::env::var_os("NATIVE_SIG_SCRATCH")
            .expect("run by the signal tests (NATIVE_SIG_SCRATCH)"),
    );
    let boot_wait = std::env::var("NATIVE_SIG_BOOT_WAIT").unwrap_or_else(|_| "60s".into());
    let ssh_timeout = std::env::var("NATIVE_SIG_SSH_TIMEOUT").unwrap_or_else(|_| "5m".into());
    let iso = scratch.join("blank.iso");
    let data = vec![0u8; 1 << 20];
    std::fs::write(&iso, &data).unwrap();
    let sum = hex::encode(sha2::Sha256::digest(&data));
    let builder = serde_json::json!({
        "type": "qemu",
        "vm_name": "sigvm",
        "output_directory": scratch.join("out/sigvm").display().to_string(),
        "iso_url": iso.display().to_string(),
        "iso_checksum": format!("sha256:{sum}"),
        "accelerator": "tcg",
        "memory": 128,
        "disk_size": "64M",
        "format": "qcow2",
        "headless": true,
        "http_content": {"/ks.cfg": "rootpw sig-secret-pw\n"},
        "boot_wait": boot_wait,
        "boot_command": ["<esc><wait>linux ks=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ks.cfg<enter>"],
        "communicator": "ssh",
        "ssh_username": "root",
        "ssh_password": "sig-secret-pw",
        "ssh_timeout": ssh_timeout,
        "shutdown_timeout": "10s",
    });
    let mut plan = BuildPlan {
        target: "qemu/test/sig".into(),
        name: "sigvm".into(),
        builder: builder.as_object().unwrap().clone(),
        ..BuildPlan::default()
    };
    plan.inputs.iso_cache_dir = scratch.join("cache");
    std::fs::create_dir_all(scratch.join("tmp")).unwrap();
    let temp = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(scratch.join("tmp"))
        .unwrap()
        .keep();
    let opts = BuildOptions {
        temp_dir: Some(temp),
        ..Default::default()
    };
    // The CLI's own path: signals become a cancel request, steps go to stderr.
    let code = match build(plan, opts, &Frontends::default(), false) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("BUILD-ERROR {}", e.message());
            1
        }
    };
    std::process::exit(code);
}

fn spawn(scratch: &Path, env: &[(&str, &str)]) -> Spawned {
    let mut c = helper_command("child_pipeline");
    c.env("NATIVE_SIG_SCRATCH", scratch);
    for (k, v) in env {
        c.env(k, v);
    }
    Spawned::start(c)
}

/// The test binaries themselves mention the scratch dir in their environment only, but the
/// helper's command line names it: exclude both.
const OURS: &[&str] = &["child_pipeline", "native_signals"];

fn assert_clean(scratch: &Path, what: &str) {
    assert_nothing_left(scratch, &[&scratch.join("out/sigvm")], OURS, what);
}

fn signal_at(phase: &str, sig: i32, boot_wait: &str, extra: Duration) {
    let scratch = tempfile::Builder::new()
        .prefix("native-sig-")
        .tempdir()
        .unwrap();
    let s = scratch.path();
    let mut child = spawn(s, &[("NATIVE_SIG_BOOT_WAIT", boot_wait)]);
    child.wait_line(phase, Duration::from_secs(120));
    std::thread::sleep(extra);
    if phase != "==> iso" && phase != "==> http server" && phase != "==> create vm" {
        // QEMU runs from "launch" on: prove there is something to clean up (bounded poll).
        assert!(
            support::process::eventually(Duration::from_secs(30), || {
                !processes_mentioning(&s.display().to_string(), OURS).is_empty()
            }),
            "{phase}: QEMU should be running"
        );
    }
    child.signal(sig);
    let t = Instant::now();
    let (code, rest) = child.exit_and_output(Duration::from_secs(90));
    eprintln!(
        "{phase}: exit {code} {:.1}s after the signal",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(code, 1, "{phase}");
    let name = if sig == libc::SIGTERM {
        "SIGTERM"
    } else {
        "SIGINT"
    };
    assert!(
        rest.iter()
            .any(|l| l.contains(&format!("interrupted by {name}"))),
        "{phase}: {rest:?}"
    );
    assert!(
        rest.iter().all(|l| !l.contains("sig-secret-pw")),
        "secret leaked"
    );
    assert_clean(s, phase);
}

#[test]
fn sigint_before_the_vm_exists() {
    signal_at("==> http server", libc::SIGINT, "60s", Duration::ZERO);
}

#[test]
fn sigint_while_the_vm_runs() {
    signal_at("==> boot wait", libc::SIGINT, "60s", Duration::from_secs(2));
}

#[test]
fn sigterm_while_waiting_for_ssh() {
    signal_at(
        "==> wait for ssh",
        libc::SIGTERM,
        "1s",
        Duration::from_secs(3),
    );
}

#[test]
fn ssh_timeout_prints_serial_tail_and_screenshot_then_cleans_up() {
    let scratch = tempfile::Builder::new()
        .prefix("native-fail-")
        .tempdir()
        .unwrap();
    let s = scratch.path();
    let mut child = spawn(
        s,
        &[
            ("NATIVE_SIG_BOOT_WAIT", "1s"),
            ("NATIVE_SIG_SSH_TIMEOUT", "8s"),
        ],
    );
    let t = Instant::now();
    let (code, all) = child.exit_and_output(Duration::from_secs(120));
    let text = all.join("\n");
    eprintln!("failed build took {:.1}s", t.elapsed().as_secs_f64());
    assert_eq!(code, 1);
    assert!(
        text.contains("build failed in step \"wait for ssh\""),
        "{text}"
    );
    assert!(text.contains("timed out"), "{text}");
    assert!(text.contains("last lines of the serial console"), "{text}");
    let shot = s.join("out/sigvm.build/failure.png");
    assert!(text.contains(&shot.display().to_string()), "{text}");
    let png = std::fs::read(&shot).expect("failure screenshot kept");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(!text.contains("sig-secret-pw"), "secret leaked");
    let log = std::fs::read_to_string(s.join("out/sigvm.build/build.log")).unwrap();
    assert!(
        log.contains("typing: <esc><wait>linux ks=http://10.0.2.2:"),
        "{log}"
    );
    assert!(!log.contains("sig-secret-pw"));
    assert_clean(s, "ssh timeout");
}

/// osimager itself SIGKILLed while its VM runs (no cleanup can run): QEMU and the temp dir
/// outlive it, and its state file says so. The next native build (same state directory)
/// finds the dead build's state file, kills its QEMU, removes its directories and says what
/// it did (issue 15, fault matrix: "osimager SIGKILLed").
#[test]
fn sigkill_of_osimager_is_cleaned_up_by_the_next_build() {
    let scratch = tempfile::Builder::new()
        .prefix("native-kill-")
        .tempdir()
        .unwrap();
    let s = scratch.path();
    let state = s.join("state");
    let state_env = state.display().to_string();
    let builds = state.join("osimager/builds");
    let mut first = spawn(
        s,
        &[
            ("NATIVE_SIG_BOOT_WAIT", "60s"),
            ("XDG_STATE_HOME", &state_env),
        ],
    );
    first.wait_line("==> boot wait", Duration::from_secs(120));
    assert!(
        support::process::eventually(Duration::from_secs(30), || {
            !processes_mentioning(&s.display().to_string(), OURS).is_empty()
        }),
        "QEMU should be running"
    );
    let files = support::process::entries(&builds);
    assert_eq!(
        files.len(),
        1,
        "one state file while the build runs: {files:?}"
    );
    let record = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        record.contains("\"process\""),
        "QEMU's pid recorded: {record}"
    );
    first.signal(libc::SIGKILL);
    assert_eq!(first.wait_exit(Duration::from_secs(30)), -1);
    // Nothing could clean up: QEMU and the temp dir are still there.
    let orphans = processes_mentioning(&s.display().to_string(), OURS);
    assert!(!orphans.is_empty(), "QEMU outlives a SIGKILLed osimager");
    assert!(!support::process::entries(&s.join("tmp")).is_empty());

    let mut second = spawn(
        s,
        &[
            ("NATIVE_SIG_BOOT_WAIT", "60s"),
            ("XDG_STATE_HOME", &state_env),
        ],
    );
    let said = second.wait_line("ended without cleaning up", Duration::from_secs(120));
    eprintln!("next run: {said}");
    assert!(said.contains("killed VM sigvm process"), "{said}");
    assert!(said.contains("removed temp dir"), "{said}");
    second.wait_line("==> http server", Duration::from_secs(120));
    second.signal(libc::SIGINT);
    let (code, rest) = second.exit_and_output(Duration::from_secs(90));
    assert_eq!(code, 1, "{rest:?}");
    assert_clean(s, "after the SIGKILLed build and the next one");
    let files = support::process::entries(&builds);
    assert!(files.is_empty(), "state files left: {files:?}");
}

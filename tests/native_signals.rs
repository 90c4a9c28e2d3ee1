//! SIGINT / SIGTERM / failure unwinding of the native pipeline with real QEMU (TCG), the real
//! HTTP server and the real SSH communicator, without an OS install: the "ISO" is a blank file
//! (verified by its sha256), so the VM sits in the BIOS and SSH never answers. Each build runs
//! in a child process (this test binary re-executed on `child_pipeline`) so that a real signal
//! hits a real process, and leftovers (QEMU processes, temp dir, output dir) are checked from
//! outside.

use osimager::cli::run::{build, Frontends};
use osimager::engine::BuildOptions;
use osimager::plan::BuildPlan;
use sha2::Digest;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Not a test of its own: the body of a child process (see the module docs).
#[test]
fn child_pipeline() {
    let Some(scratch) = std::env::var_os("NATIVE_SIG_SCRATCH").map(PathBuf::from) else {
        return;
    };
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

fn spawn(scratch: &Path, env: &[(&str, &str)]) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "child_pipeline",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("NATIVE_SIG_SCRATCH", scratch)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("  | {l}");
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn wait_exit(child: &mut Child, limit: Duration) -> i32 {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("child did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_line(rx: &std::sync::mpsc::Receiver<String>, needle: &str) {
    loop {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(l) if l.contains(needle) => return,
            Ok(_) => {}
            Err(e) => panic!("never saw {needle:?}: {e}"),
        }
    }
}

/// Processes (other than the test binaries) whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(b) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&b).replace('\0', " ");
            if cmd.contains(needle)
                && !cmd.contains("child_pipeline")
                && !cmd.contains("native_signals")
            {
                v.push(format!("{pid}: {cmd}"));
            }
        }
    }
    v
}

fn assert_nothing_left(scratch: &Path, what: &str) {
    let tmp: Vec<_> = std::fs::read_dir(scratch.join("tmp"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "{what}: temp dirs left: {tmp:?}");
    assert!(
        !scratch.join("out/sigvm").exists(),
        "{what}: output dir left"
    );
    let procs = processes_mentioning(&scratch.display().to_string());
    assert!(procs.is_empty(), "{what}: processes left: {procs:?}");
}

fn signal_at(phase: &str, sig: i32, boot_wait: &str, extra: Duration) {
    let scratch = tempfile::Builder::new()
        .prefix("native-sig-")
        .tempdir()
        .unwrap();
    let s = scratch.path();
    let (mut child, rx) = spawn(s, &[("NATIVE_SIG_BOOT_WAIT", boot_wait)]);
    wait_line(&rx, phase);
    std::thread::sleep(extra);
    if phase != "==> iso" && phase != "==> http server" {
        // The VM exists from "create disk" on: prove there is something to clean up.
        assert!(
            !processes_mentioning(&s.display().to_string()).is_empty() || phase == "==> create vm"
        );
    }
    unsafe { libc::kill(child.id() as i32, sig) };
    let t = Instant::now();
    let code = wait_exit(&mut child, Duration::from_secs(90));
    let rest: Vec<String> = rx.try_iter().collect();
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
    assert_nothing_left(s, phase);
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
    let (mut child, rx) = spawn(
        s,
        &[
            ("NATIVE_SIG_BOOT_WAIT", "1s"),
            ("NATIVE_SIG_SSH_TIMEOUT", "8s"),
        ],
    );
    let t = Instant::now();
    let code = wait_exit(&mut child, Duration::from_secs(120));
    let all: Vec<String> = rx.try_iter().collect();
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
    assert_nothing_left(s, "ssh timeout");
}

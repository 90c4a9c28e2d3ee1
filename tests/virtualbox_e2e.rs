//! End to end through the native engine's VirtualBox driver:
//! `osimager build virtualbox/hermetic-vbox/testos-1-x86_64 --engine native`, with the FAKE
//! VBoxManage (`tests/fakes/vboxmanage/`, a test stand-in: VirtualBox cannot be installed on
//! these machines) running the VM as a real QEMU guest. The fake translates what the driver
//! sends — `keyboardputscancode` into QEMU key events, the NAT rule into a `hostfwd`, the
//! 7.x loopback reachability into a `guestfwd` to the build's HTTP server, `export` into a
//! real OVA (OVF + manifest + stream-optimized VMDK) — so the test OS really installs from its
//! typed boot command and answer file, is provisioned by Ansible over SSH, shuts down and is
//! exported. The OVA is then taken apart: the manifest and the OVF's references must match,
//! `qemu-img` must read the disk, and the disk must hold the playbook's marker file.
//! Also: SIGINT while waiting for SSH leaves no VM registered, no QEMU and no files.
//!
//! Slow (a TCG guest install): runs only with OSIMAGER_E2E=1 and the test OS media built
//! (`tests/testos/build-media.sh`; cache in OSIMAGER_TESTOS_CACHE, default
//! ~/.cache/osimager-testos). Run guest tests under `flock /tmp/osimager-guest.lock`.

#[path = "ova_check/mod.rs"]
mod ova_check;
mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TARGET: &str = "virtualbox/hermetic-vbox/testos-1-x86_64";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

use support::media_cache;

fn enabled() -> bool {
    support::e2e_enabled()
}

/// The fake's home: VirtualBox 7.1, the VM as a QEMU guest whose hard disks are virtio (the
/// test OS's initrd has only virtio block drivers), the host's loopback reachable on the
/// HTTP port range of the test location (locations/hermetic-vbox.json: 8100-8119).
fn vbox_home(scratch: &Path) -> PathBuf {
    let home = scratch.join("vbox-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("fake.json"),
        r#"{"version": "7.1.4r165100", "guest": "qemu",
            "qemu": {"disk_bus": "virtio", "loopback_ports": "8100-8119"}}"#,
    )
    .unwrap();
    home
}

fn fake_dir() -> PathBuf {
    repo().join("tests/fakes/vboxmanage")
}

/// `osimager build TARGET NAME --engine native --output-dir …` with the fake first on PATH.
fn spawn_cli(scratch: &Path, name: &str) -> Child {
    std::fs::create_dir_all(scratch.join("tmp")).unwrap();
    let path = format!(
        "{}:/opt/osimager-venv/bin:{}",
        fake_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(env!("CARGO_BIN_EXE_osimager"))
        .args(["build", TARGET, name, "--engine", "native", "--output-dir"])
        .arg(scratch.join("vms/virtualbox").join(name))
        .args([
            "-D",
            &format!("ansible_extra_vars=osimager_marker=built-{name}"),
        ])
        .env("XDG_CONFIG_HOME", repo().join("tests/testos/config"))
        .env("XDG_DATA_HOME", scratch.join("data"))
        .env("XDG_CACHE_HOME", scratch.join("cache"))
        .env("OSIMAGER_TESTOS_CACHE", media_cache())
        .env("VBOX_USER_HOME", vbox_home(scratch))
        .env("TMPDIR", scratch.join("tmp"))
        .env("PATH", path)
        .env_remove("DISPLAY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
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
    rx
}

fn wait_exit(child: &mut Child, limit: Duration) -> i32 {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("build did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Processes whose command line mentions `needle` (a QEMU left running would).
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

fn registered_vms(scratch: &Path) -> String {
    let out = Command::new(fake_dir().join("VBoxManage"))
        .args(["list", "vms"])
        .env("VBOX_USER_HOME", scratch.join("vbox-home"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An attribute value inside an XML start tag (`ovf:href="…"`).
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// Check the OVA: OVF descriptor first, manifest next, every file the OVF references present
/// with its size, every manifest digest right; returns the disk, written out to a file.
fn check_ova(ova: &Path, scratch: &Path) -> PathBuf {
    let members = ova_check::tar_members(ova);
    let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.len() >= 3, "{names:?}");
    assert!(
        names[0].ends_with(".ovf"),
        "descriptor not first: {names:?}"
    );
    assert!(names[1].ends_with(".mf"), "manifest not second: {names:?}");
    let ovf = String::from_utf8(members[0].1.clone()).unwrap();
    assert!(
        ovf.contains("<Envelope") && ovf.contains("</Envelope>"),
        "{ovf}"
    );
    let files: Vec<&str> = ovf.split("<File ").skip(1).collect();
    assert_eq!(files.len(), 1, "{ovf}");
    let href = attr(files[0], "ovf:href").unwrap();
    let size: usize = attr(files[0], "ovf:size").unwrap().parse().unwrap();
    let disk = members
        .iter()
        .find(|(n, _)| n == href)
        .expect("referenced disk in the OVA");
    assert_eq!(disk.1.len(), size);
    assert!(ovf.contains("vmdk.html#streamOptimized"), "{ovf}");
    // The manifest: one right digest per other member (OVF 1.0: SHA-1).
    let mf = String::from_utf8(members[1].1.clone()).unwrap();
    ova_check::assert_manifest(&members, &mf);
    let dir = scratch.join("ova");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(href), &disk.1).unwrap();
    dir.join(href)
}

/// Read `file` from the first partition of a raw disk image (MBR) with debugfs.
fn read_from_disk(raw: &Path, file: &str) -> String {
    let mut mbr = [0u8; 512];
    std::fs::File::open(raw)
        .unwrap()
        .read_exact(&mut mbr)
        .unwrap();
    assert_eq!(&mbr[510..], [0x55, 0xaa], "no MBR on the exported disk");
    let lba = u32::from_le_bytes(mbr[446 + 8..446 + 12].try_into().unwrap()) as u64;
    let spec = format!("{}?offset={}", raw.display(), lba * 512);
    tool("/sbin/debugfs", &["-R", &format!("cat {file}"), &spec])
}

#[test]
fn e2e_virtualbox_builds_testos_and_exports_an_ova() {
    if !enabled() {
        return;
    }
    let scratch = tempfile::Builder::new()
        .prefix("vbox-e2e-")
        .tempdir()
        .unwrap();
    let s = scratch.path();
    let name = "vbox-e2e";
    let started = Instant::now();
    let mut child = spawn_cli(s, name);
    let rx = lines(&mut child);
    let code = wait_exit(&mut child, Duration::from_secs(1800));
    eprintln!(
        "native VirtualBox build took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let text: Vec<String> = rx.try_iter().collect();
    assert_eq!(code, 0, "build failed");
    let out = s.join("vms/virtualbox").join(name);
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    let ok = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&out)
        .status()
        .unwrap();
    assert!(ok.success(), "checksums do not verify: {sums}");
    let ova = out.join(format!("{name}.ova"));
    assert!(sums.contains(&format!("{name}.ova")), "{sums}");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(s.join("vms/virtualbox/packer-manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["builds"][0]["builder_type"], "virtualbox-iso");

    let vmdk = check_ova(&ova, s);
    let info: serde_json::Value = serde_json::from_str(&tool(
        "qemu-img",
        &["info", "--output=json", vmdk.to_str().unwrap()],
    ))
    .unwrap();
    assert_eq!(info["format"], "vmdk");
    assert_eq!(
        info["format-specific"]["data"]["create-type"],
        "streamOptimized"
    );
    assert_eq!(info["virtual-size"], 2048u64 * 1024 * 1024);
    let raw = s.join("disk.raw");
    tool(
        "qemu-img",
        &[
            "convert",
            "-O",
            "raw",
            vmdk.to_str().unwrap(),
            raw.to_str().unwrap(),
        ],
    );
    let marker = read_from_disk(&raw, "/etc/osimager-marker");
    assert_eq!(marker.trim(), format!("built-{name}"));
    let build = read_from_disk(&raw, "/etc/osimager-build");
    assert!(build.contains("OSIMAGER_PLATFORM=virtualbox"), "{build}");
    assert!(build.contains("OSIMAGER_LOCATION=hermetic-vbox"), "{build}");

    // The boot command went in as scancodes, the VM was headless and is gone.
    let calls = std::fs::read_to_string(s.join("vbox-home/fake-calls.log")).unwrap();
    assert!(calls.contains("keyboardputscancode"), "no typing");
    assert!(
        calls.contains("\"--nat-localhostreachable1\", \"on\""),
        "no loopback reachability"
    );
    assert!(calls.contains("\"unregistervm\""), "VM not unregistered");
    assert_eq!(registered_vms(s), "", "VMs left registered");
    assert!(
        processes_mentioning(&s.display().to_string()).is_empty(),
        "processes left"
    );
    let tmp: Vec<_> = std::fs::read_dir(s.join("tmp"))
        .unwrap()
        .flatten()
        .collect();
    assert!(tmp.is_empty(), "temp files left: {tmp:?}");
    assert!(
        !text.iter().any(|l| l.contains("osi-test-pw")),
        "the password leaked into the output"
    );
}

#[test]
fn e2e_virtualbox_sigint_while_waiting_for_ssh_leaves_nothing() {
    if !enabled() {
        return;
    }
    let scratch = tempfile::Builder::new()
        .prefix("vbox-sig-")
        .tempdir()
        .unwrap();
    let s = scratch.path();
    let name = "vbox-sig";
    let mut child = spawn_cli(s, name);
    let rx = lines(&mut child);
    loop {
        match rx.recv_timeout(Duration::from_secs(600)) {
            Ok(l) if l.contains("==> wait for ssh") => break,
            Ok(_) => {}
            Err(e) => panic!("never reached the SSH wait: {e}"),
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        processes_mentioning(&s.display().to_string())
            .iter()
            .any(|p| p.contains("qemu-system")),
        "the QEMU guest should be running now"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let code = wait_exit(&mut child, Duration::from_secs(180));
    assert_ne!(code, 0);
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("interrupted by SIGINT")),
        "{rest:?}"
    );
    assert_eq!(registered_vms(s), "", "VMs left registered");
    let procs = processes_mentioning(&s.display().to_string());
    assert!(procs.is_empty(), "processes left: {procs:?}");
    assert!(!s.join("vms/virtualbox").join(name).exists());
    let tmp: Vec<_> = std::fs::read_dir(s.join("tmp"))
        .unwrap()
        .flatten()
        .collect();
    assert!(tmp.is_empty(), "temp files left: {tmp:?}");
}

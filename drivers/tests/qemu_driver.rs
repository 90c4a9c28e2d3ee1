//! The QEMU driver against real QEMU (TCG, a 512-byte test guest that echoes typed keys to the
//! serial port and powers off after Enter — `fixtures/echo_boot.S`).

/// Loopback ports found at run time (the repository's shared test harness, tests/support).
#[path = "../../tests/support/ports.rs"]
mod ports;

use osimager_drivers::bootcmd::{parse, Fields, KeyEvent};
use osimager_drivers::qemu::{QemuConfig, QemuDriver};
use osimager_drivers::Driver;
use osimager_drivers::{DriverEnv, Media};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

const ECHO_BOOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/echo_boot.bin");

fn builder(extra: Value) -> serde_json::Map<String, Value> {
    let mut b = json!({
        "type": "qemu", "vm_name": "echo", "disk_image": true, "format": "qcow2",
        "disk_size": "16M", "accelerator": "tcg", "memory": "32", "headless": true,
        "disk_interface": "ide", "host_port_min": 20000, "host_port_max": 29999,
        "qemuargs": [["-netdev", "user,id=user.0,restrict=on,hostfwd=tcp:127.0.0.1:{{ .SSHHostPort }}-:22"]]
    });
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b.as_object().unwrap().clone()
}

fn env(dir: &Path) -> DriverEnv {
    DriverEnv {
        build_name: "echo".into(),
        work_dir: dir.join("work"),
        log_dir: dir.join("logs"),
        vars: Vec::new(),
    }
}

fn echo_media() -> Media {
    Media {
        iso_path: Some(ECHO_BOOT.into()),
        http: None,
    }
}

async fn serial_contains(path: &Path, needle: &str, timeout: Duration) -> String {
    let end = std::time::Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) || std::time::Instant::now() > end {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Poll `cond` (every 10 ms, at most `limit`) without blocking the runtime.
async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + limit;
    while !cond() {
        if std::time::Instant::now() > end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

fn tool(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A file read back from an ISO image (xorriso's osirrox extraction).
fn iso_file(iso: &Path, inside: &str, scratch: &Path) -> String {
    let dst = scratch.join(inside.replace('/', "_"));
    tool(
        "xorriso",
        &[
            "-osirrox",
            "on",
            "-indev",
            iso.to_str().unwrap(),
            "-extract",
            inside,
            dst.to_str().unwrap(),
        ],
    );
    std::fs::read_to_string(&dst).unwrap()
}

/// `qemu-img check` counts of a qcow2 image (allocated, compressed clusters).
fn qcow2_clusters(p: &Path) -> (u64, u64) {
    let v: Value = serde_json::from_str(&tool(
        "qemu-img",
        &["check", "--output=json", p.to_str().unwrap()],
    ))
    .unwrap();
    (
        v["allocated-clusters"].as_u64().unwrap_or(0),
        v["compressed-clusters"].as_u64().unwrap_or(0),
    )
}

fn qemu_img_info(p: &Path) -> Value {
    let out = std::process::Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(p)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

fn volume_id(iso: &Path) -> String {
    let out = std::process::Command::new("xorriso")
        .args(["-indev"])
        .arg(iso)
        .arg("-pvd_info")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find_map(|l| l.strip_prefix("Volume Id    :"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| panic!("no volume id in {text}"))
}

#[tokio::test]
async fn full_lifecycle_on_real_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed");
    std::fs::create_dir_all(seed.join("drivers/net")).unwrap();
    std::fs::write(seed.join("user-data"), "#cloud-config\n").unwrap();
    std::fs::write(seed.join("meta-data"), "instance-id: x\n").unwrap();
    std::fs::write(seed.join("ks.cfg"), "text\nreboot\n").unwrap();
    std::fs::write(seed.join("drivers/net/e1000.inf"), "[Version]\n").unwrap();
    let out_dir = dir.path().join("output");
    let b = builder(json!({
        // A wildcard, as Packer allows (filepath.Glob).
        "cd_files": [seed.join("*-data")],
        "cd_label": "cidata",
        "cd_content": {"extra/readme.txt": "hello"},
        "floppy_files": [seed.join("ks.cfg")],
        "floppy_dirs": [seed.join("drivers")],
        "floppy_label": "OEMDRV",
        "disk_compression": true,
        "disk_additional_size": ["4M"],
        "output_directory": out_dir,
    }));
    let mut d = QemuDriver::new(QemuConfig::from_builder(&b, env(dir.path())).unwrap());
    d.create(&echo_media()).await.unwrap();
    assert_eq!(d.disks().len(), 2);
    let info = qemu_img_info(&d.disks()[0]);
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 16 * 1024 * 1024);
    let cd = dir.path().join("work/echo-cd.iso");
    assert_eq!(volume_id(&cd), "cidata");
    // What the guest would read from the CD: cd_files by base name, cd_content at its path.
    assert_eq!(iso_file(&cd, "/user-data", dir.path()), "#cloud-config\n");
    assert_eq!(iso_file(&cd, "/meta-data", dir.path()), "instance-id: x\n");
    assert_eq!(iso_file(&cd, "/extra/readme.txt", dir.path()), "hello");
    // The floppy: 1.44 MB FAT12, the label, floppy_files at the root, floppy_dirs with their
    // structure (read back with mtools).
    let fd = dir.path().join("work/echo-floppy.img");
    let fds = fd.to_str().unwrap();
    assert_eq!(std::fs::metadata(&fd).unwrap().len(), 1440 * 1024);
    let minfo = tool("minfo", &["-i", fds, "::"]);
    assert!(minfo.contains("FAT12"), "{minfo}");
    assert!(tool("mlabel", &["-i", fds, "-s", "::"]).contains("OEMDRV"));
    assert_eq!(tool("mtype", &["-i", fds, "::/ks.cfg"]), "text\nreboot\n");
    assert_eq!(
        tool("mtype", &["-i", fds, "::/drivers/net/e1000.inf"]),
        "[Version]\n"
    );

    d.start().await.unwrap();
    assert_eq!(d.accelerator_used(), Some("tcg"));
    assert!(
        d.typing_paced(),
        "vCPU threads not found (debug-threads=on)"
    );
    let argv = d.argv().join(" ");
    let a = d.ssh_address(Duration::from_secs(1)).await.unwrap();
    let (host, port) = (a.host, a.port);
    assert_eq!(host, "127.0.0.1");
    assert!((20000..=29999).contains(&port));
    assert!(
        argv.contains(&format!("hostfwd=tcp:127.0.0.1:{port}-:22")),
        "{argv}"
    );
    assert!(
        argv.contains("restrict=on") && argv.contains("echo-cd.iso"),
        "{argv}"
    );
    // QEMU has the floppy image in its first floppy drive.
    let blocks = d.qmp().unwrap().execute("query-block", None).await.unwrap();
    let floppy = blocks
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["inserted"]["file"] == fds)
        .unwrap_or_else(|| panic!("no drive holds the floppy image: {blocks:#}"));
    assert_eq!(floppy["device"], "floppy0", "{floppy:#}");
    // QEMU holds the forwarded port.
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err());

    let serial = d.serial_log();
    let text = serial_contains(&serial, "R\n", Duration::from_secs(60)).await;
    assert!(text.starts_with("R\n"), "guest did not boot: {text:?}");

    let png = dir.path().join("shot.png");
    d.screenshot(&png).await.unwrap();
    assert_eq!(&std::fs::read(&png).unwrap()[..8], b"\x89PNG\r\n\x1a\n");

    let typed = "Hello, World! ~`<>?{}|:\"_+ 0123456789-=[]\\;',./";
    let mut events = parse(&[typed.replace('<', "<<On><<Off>")], &Fields::new()).unwrap();
    // `<<On><<Off>` is a press/release of '<' (shift+comma) through input-send-event.
    assert!(events.contains(&KeyEvent::Down(osimager_drivers::bootcmd::Key::Char('<'))));
    events.extend(parse(&["<wait100ms><enter>".to_string()], &Fields::new()).unwrap());
    d.send_keys(&events, &|_, _| {}).await.unwrap();

    assert!(
        d.wait_stopped(Duration::from_secs(60)).await.unwrap(),
        "guest did not power off"
    );
    let text = std::fs::read_to_string(&serial).unwrap();
    assert_eq!(text, format!("R\n{typed}\r\n"));
    assert!(
        eventually(Duration::from_secs(10), || d.shutdown_event().is_some()).await,
        "no SHUTDOWN event"
    );
    let ev = d.shutdown_event().expect("SHUTDOWN event");
    assert_eq!(ev["reason"], "guest-shutdown");

    let files = d.export(&out_dir).await.unwrap();
    assert_eq!(files, vec![out_dir.join("echo"), out_dir.join("echo-1")]);
    let info = qemu_img_info(&files[0]);
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 16 * 1024 * 1024);
    // disk_compression: every allocated cluster of the export is compressed.
    let (allocated, compressed) = qcow2_clusters(&files[0]);
    assert!(
        allocated > 0 && compressed == allocated,
        "disk_compression: {compressed} of {allocated} clusters compressed"
    );
    // The exported disk still boots the guest's boot sector (same first 512 bytes).
    let raw = dir.path().join("check.raw");
    let st = std::process::Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(&files[0])
        .arg(&raw)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        std::fs::read(&raw).unwrap()[..512],
        std::fs::read(ECHO_BOOT).unwrap()[..]
    );

    d.destroy().await.unwrap();
    d.destroy().await.unwrap();
    assert!(!dir.path().join("work").exists(), "work files left behind");
    assert!(out_dir.join("echo").exists());
}

#[tokio::test]
async fn powerdown_force_stop_and_destroy_while_running() {
    let dir = tempfile::tempdir().unwrap();
    // A VNC port range that is free right now (QEMU picks one in it).
    let (lo, hi) = ports::free_port_range(10);
    let b = builder(
        json!({"vnc_port_min": lo, "vnc_port_max": hi, "skip_compaction": true, "format": "raw"}),
    );
    let mut d = QemuDriver::new(QemuConfig::from_builder(&b, env(dir.path())).unwrap());
    d.create(&echo_media()).await.unwrap();
    d.start().await.unwrap();
    let vnc = d.vnc_port().expect("VNC port");
    assert!((lo..=hi).contains(&vnc));
    let qmp = d.qmp().unwrap();
    let mut events = qmp.subscribe();
    d.request_shutdown().await.unwrap();
    // The echo guest ignores ACPI: QEMU reports the power button, the VM keeps running.
    let ev = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let e = events.recv().await.unwrap();
            if e.name == "POWERDOWN" {
                return e;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(ev.name, "POWERDOWN");
    assert!(!d.wait_stopped(Duration::from_millis(500)).await.unwrap());
    assert!(
        d.export(dir.path()).await.is_err(),
        "export must refuse a running VM"
    );
    d.force_stop().await.unwrap();
    assert!(d.wait_stopped(Duration::ZERO).await.unwrap());
    let out = dir.path().join("out");
    let files = d.export(&out).await.unwrap();
    assert_eq!(qemu_img_info(&files[0])["format"], "raw");
    d.destroy().await.unwrap();
    assert!(d.send_keys(&[], &|_, _| {}).await.is_err());
}

#[tokio::test]
async fn destroy_kills_a_running_vm() {
    let dir = tempfile::tempdir().unwrap();
    let mut d =
        QemuDriver::new(QemuConfig::from_builder(&builder(json!({})), env(dir.path())).unwrap());
    d.create(&echo_media()).await.unwrap();
    d.start().await.unwrap();
    let port = d.ssh_address(Duration::from_secs(1)).await.unwrap().port;
    d.destroy().await.unwrap();
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "QEMU still holds its port"
    );
    assert!(!dir.path().join("work").exists());
    let _: PathBuf = d.serial_log();
}

/// With `-no-shutdown` QEMU stays up after the guest powers off; `wait_stopped` sees the
/// SHUTDOWN event and makes it quit so the disk can be exported.
#[tokio::test]
async fn shutdown_event_stops_a_no_shutdown_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let b = builder(json!({"communicator": "none", "qemuargs": [
        ["-netdev", "user,id=user.0,restrict=on"], ["-no-shutdown"]
    ]}));
    let mut d = QemuDriver::new(QemuConfig::from_builder(&b, env(dir.path())).unwrap());
    d.create(&echo_media()).await.unwrap();
    d.start().await.unwrap();
    assert!(d.argv().contains(&"-no-shutdown".to_string()));
    let text = serial_contains(&d.serial_log(), "R\n", Duration::from_secs(60)).await;
    assert!(text.starts_with("R\n"), "{text:?}");
    let enter = parse(&["<enter>".to_string()], &Fields::new()).unwrap();
    d.send_keys(&enter, &|_, _| {}).await.unwrap();
    assert!(d.wait_stopped(Duration::from_secs(60)).await.unwrap());
    assert_eq!(d.shutdown_event().unwrap()["reason"], "guest-shutdown");
    let files = d.export(&dir.path().join("out")).await.unwrap();
    assert_eq!(files.len(), 1);
    d.destroy().await.unwrap();
}

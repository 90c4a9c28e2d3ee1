//! The QEMU driver against real QEMU (TCG, a 512-byte test guest that echoes typed keys to the
//! serial port and powers off after Enter — `fixtures/echo_boot.S`).

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
    std::fs::create_dir_all(&seed).unwrap();
    std::fs::write(seed.join("user-data"), "#cloud-config\n").unwrap();
    std::fs::write(seed.join("meta-data"), "instance-id: x\n").unwrap();
    let out_dir = dir.path().join("output");
    let b = builder(json!({
        "cd_files": [seed.join("user-data"), seed.join("meta-data")],
        "cd_label": "cidata",
        "cd_content": {"extra/readme.txt": "hello"},
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
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ev = d.shutdown_event().expect("SHUTDOWN event");
    assert_eq!(ev["reason"], "guest-shutdown");

    let files = d.export(&out_dir).await.unwrap();
    assert_eq!(files, vec![out_dir.join("echo"), out_dir.join("echo-1")]);
    let info = qemu_img_info(&files[0]);
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 16 * 1024 * 1024);
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
    let b = builder(
        json!({"vnc_port_min": 5990, "vnc_port_max": 5999, "skip_compaction": true, "format": "raw"}),
    );
    let mut d = QemuDriver::new(QemuConfig::from_builder(&b, env(dir.path())).unwrap());
    d.create(&echo_media()).await.unwrap();
    d.start().await.unwrap();
    let vnc = d.vnc_port().expect("VNC port");
    assert!((5990..=5999).contains(&vnc));
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

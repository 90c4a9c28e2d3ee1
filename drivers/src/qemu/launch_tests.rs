//! Launch details that need the driver's internals (real QEMU, tiny guest, TCG).

use super::args::LaunchPlan;
use super::launch::pick_port;
use super::*;
use crate::driver::{DriverEnv, Media};
use crate::Driver;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const ECHO_BOOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/echo_boot.bin");

fn driver(dir: &Path, extra: serde_json::Value) -> QemuDriver {
    let mut b = json!({
        "type": "qemu", "vm_name": "t", "disk_image": true, "format": "qcow2",
        "disk_size": "8M", "accelerator": "tcg", "memory": 32, "headless": true,
        "disk_interface": "ide"
    });
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    let env = DriverEnv {
        build_name: "t".into(),
        work_dir: dir.join("work"),
        log_dir: dir.join("logs"),
        vars: Vec::new(),
    };
    QemuDriver::new(QemuConfig::from_builder(b.as_object().unwrap(), env).unwrap())
}

/// QEMU's "Could not set up host forwarding rule" is recognised, so `start` retries with
/// another port instead of failing.
#[tokio::test]
async fn taken_ssh_port_means_retry() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = driver(dir.path(), json!({}));
    d.create(&echo_media()).await.unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let rt = tempfile::tempdir().unwrap();
    let plan = LaunchPlan {
        accel: "tcg",
        qmp_socket: rt.path().join("q.sock"),
        ssh_host_port: Some(port),
        disks: d.disks.clone(),
        cd_image: None,
        floppy_image: None,
        efi_vars: None,
        have_display: false,
    };
    assert!(d.launch(&plan).await.unwrap().is_none());
    // Other start-up failures are errors with QEMU's own message and the command.
    let mut bad = driver(
        dir.path(),
        json!({"qemuargs": [["-machine", "type=no-such-machine"]]}),
    );
    bad.create(&echo_media()).await.unwrap();
    let e = bad.start().await.unwrap_err().to_string();
    assert!(
        e.contains("no-such-machine") && e.contains("qemu-system-x86_64"),
        "{e}"
    );
    bad.destroy().await.unwrap();
    d.destroy().await.unwrap();
}

#[test]
fn pick_port_skips_busy_and_avoided() {
    let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p = a.local_addr().unwrap().port();
    assert_eq!(pick_port(p, p, 7, &[]), None);
    if p < 65535 {
        let q = p + 1;
        if std::net::TcpListener::bind(("127.0.0.1", q)).is_ok() {
            assert_eq!(pick_port(p, q, 0, &[]), Some(q));
            assert_eq!(pick_port(p, q, 0, &[q]), None);
        }
    }
}

/// `accelerator: auto` confirms KVM with a probe guest and otherwise falls back to TCG with a
/// warning; either way the guest boots and nothing hangs.
#[tokio::test]
async fn auto_accelerator_confirms_kvm_or_falls_back() {
    let check = tokio::time::timeout(Duration::from_secs(60), kvm_usable("qemu-system-x86_64"))
        .await
        .expect("the KVM probe must not hang");
    eprintln!("KVM usable: {} ({})", check.usable, check.reason);
    if !Path::new("/dev/kvm").exists() {
        assert!(!check.usable);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut d = driver(
        dir.path(),
        json!({"accelerator": "auto", "communicator": "none"}),
    );
    d.create(&echo_media()).await.unwrap();
    d.start().await.unwrap();
    let used = d.accelerator_used().unwrap();
    assert_eq!(used, if check.usable { "kvm" } else { "tcg" });
    assert!(d.argv().join(" ").contains(&format!("accel={used}")));
    if !check.usable {
        assert!(
            d.warnings().iter().any(|w| w.contains("TCG")),
            "{:?}",
            d.warnings()
        );
    }
    let log = d.serial_log();
    let end = std::time::Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .starts_with("R\n")
    {
        assert!(std::time::Instant::now() < end, "guest did not boot");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    d.destroy().await.unwrap();
}

fn echo_media() -> Media {
    Media {
        iso_path: Some(ECHO_BOOT.into()),
        http: None,
    }
}

//! The VNC client against QEMU's own VNC server: keys typed over RFB reach the echo guest.

/// Loopback ports found at run time (the repository's shared test harness, tests/support).
#[path = "../../tests/support/ports.rs"]
mod ports;

use osimager_drivers::bootcmd::{parse, Fields, KeyEvent};
use osimager_drivers::qemu::{QemuConfig, QemuDriver};
use osimager_drivers::vnc::{VncClient, VncError};
use osimager_drivers::{Driver, DriverEnv, Media};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

const ECHO_BOOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/echo_boot.bin");

async fn wait_for(path: &Path, needle: &str, timeout: Duration) -> String {
    let end = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) || Instant::now() > end {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until the serial log is longer than `len` bytes; returns its length.
async fn wait_longer(path: &Path, len: usize, timeout: Duration) -> usize {
    let end = Instant::now() + timeout;
    loop {
        let now = std::fs::metadata(path)
            .map(|m| m.len() as usize)
            .unwrap_or(0);
        if now > len || Instant::now() > end {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn vnc_keys_reach_the_guest() {
    let dir = tempfile::tempdir().unwrap();
    let (lo, hi) = ports::free_port_range(10);
    let b = json!({
        "type": "qemu", "vm_name": "vnc", "disk_image": true, "disk_size": "8M",
        "accelerator": "tcg", "memory": 32, "headless": true, "communicator": "none",
        "disk_interface": "ide", "vnc_bind_address": "127.0.0.1",
        "vnc_port_min": lo, "vnc_port_max": hi,
        "qemuargs": [["-netdev", "user,id=user.0,restrict=on"]]
    });
    let env = DriverEnv {
        build_name: "vnc".into(),
        work_dir: dir.path().join("work"),
        log_dir: dir.path().join("logs"),
        vars: Vec::new(),
    };
    let mut d = QemuDriver::new(QemuConfig::from_builder(b.as_object().unwrap(), env).unwrap());
    d.create(&Media {
        iso_path: Some(ECHO_BOOT.into()),
        http: None,
    })
    .await
    .unwrap();
    d.start().await.unwrap();
    let port = d.vnc_port().expect("QEMU reports its VNC port");
    let log = d.serial_log();
    assert!(wait_for(&log, "R\n", Duration::from_secs(60))
        .await
        .contains("R\n"));

    let mut vnc = VncClient::connect(&format!("127.0.0.1:{port}"), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(vnc.width > 0 && vnc.height > 0);
    let typed = "Vnc: Hello, World! ~`{}|:\"_+?>,./[]\\;'=-0123456789 @#$%^&*()";
    let mut events = parse(&[typed.to_string()], &Fields::new()).unwrap();
    events.extend(parse(&["<<On><<Off><enter>".to_string()], &Fields::new()).unwrap());
    // Paced by the guest itself: after each key press the next waits until the guest has
    // echoed it (a starved TCG vCPU on a loaded host can take far longer than any fixed
    // interval, and QEMU's PS/2 queue drops what overflows). What is asserted is exact: every
    // key arrives once, in order, with the right shift state.
    let mut echoed = "R\n".len();
    for ev in &events {
        vnc.type_events(std::slice::from_ref(ev), Duration::from_millis(20))
            .await
            .unwrap();
        if matches!(ev, KeyEvent::Tap(_) | KeyEvent::Down(_)) {
            let grown = wait_longer(&log, echoed, Duration::from_secs(20)).await;
            assert!(
                grown > echoed,
                "no echo for {ev:?} within 20 s: {:?}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            echoed = grown;
        }
    }
    let text = wait_for(&log, "\r\n", Duration::from_secs(30)).await;
    assert_eq!(text, format!("R\n{typed}<\r\n"));
    assert!(d.wait_stopped(Duration::from_secs(30)).await.unwrap());
    drop(vnc);
    d.destroy().await.unwrap();
}

#[tokio::test]
async fn vnc_connect_errors_are_clear() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    // A server that never greets: timeout, not a hang.
    let e = VncClient::connect(&addr, Duration::from_millis(300))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, VncError::Timeout(..)), "{e}");
    drop(l);
    let e = VncClient::connect(&addr, Duration::from_secs(5))
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("connecting"), "{e}");
}

//! The VirtualBox driver against the FAKE VBoxManage running the VM as a real QEMU guest
//! (fake config `guest: "qemu"`): the 512-byte echo guest (`fixtures/echo_boot.S`, booted from
//! an El Torito CD made with xorriso) echoes every key it reads to COM1, which the driver
//! points at a file in its log directory. So the scancodes the driver sends through
//! `keyboardputscancode` are checked against what a real guest's BIOS really read, then Enter
//! powers the guest off and the VM is exported to an OVA with a real stream-optimized disk.
//! Runs a QEMU guest: run it under `flock /tmp/osimager-guest.lock`.

mod vbox_common;

use osimager_drivers::bootcmd::{parse_str, Fields};
use osimager_drivers::{Driver, Media};
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use vbox_common::*;

const ECHO_BOOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/echo_boot.bin");

/// A bootable CD holding the echo boot sector (no-emulation El Torito).
fn echo_iso(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("cdroot");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(ECHO_BOOT, root.join("echo.bin")).unwrap();
    let iso = dir.join("echo.iso");
    let st = std::process::Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-o"])
        .arg(&iso)
        .args(["-b", "echo.bin", "-no-emul-boot", "-boot-load-size", "4"])
        .arg(&root)
        .status()
        .unwrap();
    assert!(st.success());
    iso
}

async fn serial_contains(path: &Path, needle: &str, timeout: Duration) -> String {
    let end = std::time::Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) || std::time::Instant::now() > end {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn scancodes_reach_a_real_guest_and_the_ova_holds_its_disk() {
    let s = Scratch::new(json!({"version": "7.0.20r163906", "guest": "qemu"}));
    let iso = echo_iso(s.path());
    let mut d = driver(&s, json!({"memory": 32, "disk_size": 16}));
    d.create(&Media {
        iso_path: Some(iso),
        http: None,
    })
    .await
    .unwrap();
    d.start().await.unwrap();
    let serial = d.serial_log();
    let text = serial_contains(&serial, "R\n", Duration::from_secs(90)).await;
    assert!(
        text.contains("R\n"),
        "the echo guest did not boot: {text:?}"
    );
    // Shifted characters, digits, punctuation: the guest's BIOS turns each scancode sequence
    // back into the character (US layout).
    let typed = "Hello, VirtualBox 7! a=b&c~d|e{f} 1 < 2 > 0 ?\"h\"";
    let events = parse_str(&format!("{typed}<enter>"), &Fields::new()).unwrap();
    d.send_keys(&events, &no_progress).await.unwrap();
    let text = serial_contains(&serial, "\r\n", Duration::from_secs(60)).await;
    assert_eq!(text, format!("R\n{typed}\r\n"), "what the guest read");
    // Enter powers the echo guest off by itself.
    assert!(d.wait_stopped(Duration::from_secs(60)).await.unwrap());
    let out = s.path().join("out");
    let files = d.export(&out).await.unwrap();
    assert_eq!(files, vec![out.join("vbtest.ova")]);
    let listing = std::process::Command::new("tar")
        .arg("tf")
        .arg(&files[0])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout),
        "vbtest.ovf\nvbtest.mf\nvbtest-disk001.vmdk\n"
    );
    d.destroy().await.unwrap();
    assert!(s.registered().is_empty());
}

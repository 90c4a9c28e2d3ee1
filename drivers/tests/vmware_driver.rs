//! The VMware driver end to end against the stand-ins (tests/fakes/vmware, FAKES of vmrest
//! and vmrun that run the .vmx as a real QEMU guest with QEMU's VNC server): the echo guest
//! boots from the ISO the driver attaches, the boot command is typed over VNC (with the
//! default VNC password), the guest is found from the DHCP leases, powers itself off, the VM
//! is exported and everything is removed. Once through a private vmrest the driver starts
//! from a generated .vmrestCfg, once through vmrun alone. Boots guests: run under
//! `flock /tmp/osimager-guest.lock`.

/// Loopback ports found at run time (the repository's shared test harness, tests/support).
#[path = "../../tests/support/ports.rs"]
mod ports;

use osimager_drivers::bootcmd::{Key, KeyEvent, Special};
use osimager_drivers::vmware::Vmx;
use osimager_drivers::{DriverRegistry, Media};

mod vmware_common;
use serde_json::json;
use std::process::Command;
use std::time::Duration;
use vmware_common::{processes_in, rig, wait_for, wait_no_processes, Rig};

fn builder(r: &Rig) -> serde_json::Map<String, serde_json::Value> {
    let (lo, hi) = ports::free_port_range(10);
    json!({
        "type": "vmware-iso", "vm_name": "echo", "network_adapter_type": "e1000",
        "memory": 32, "disk_size": "16M", "headless": true, "communicator": "ssh",
        "ssh_port": r.ssh_port, "boot_key_interval": "10ms",
        "vnc_port_min": lo, "vnc_port_max": hi,
        "vmx_data_post": {"annotation": "built by the vmware driver test"}
    })
    .as_object()
    .unwrap()
    .clone()
}

fn taps(text: &str) -> Vec<KeyEvent> {
    let mut v: Vec<KeyEvent> = text.chars().map(|c| KeyEvent::Tap(Key::Char(c))).collect();
    v.push(KeyEvent::Tap(Key::Special(Special::Enter)));
    v
}

async fn full_build(with_vmrest: bool) {
    let r = rig(with_vmrest);
    let mut d = DriverRegistry::builtin()
        .make(&builder(&r), r.env.clone())
        .unwrap();
    // The stand-in's NAT network: the host side is the loopback, the guest sees 10.0.2.2.
    let h = d.host_address().await.unwrap();
    assert_eq!(
        (h.bind.to_string().as_str(), h.guest_ip.as_str()),
        ("127.0.0.1", "10.0.2.2")
    );
    d.create(&Media {
        iso_path: Some(r.iso.clone()),
        http: None,
    })
    .await
    .unwrap();
    let vmx = r.env.work_dir.join("echo.vmx");
    assert!(vmx.is_file());
    let serial = d.capabilities().serial_log.unwrap();
    d.start().await.unwrap();
    let boot = wait_for(&serial, "R\n", Duration::from_secs(90)).await;
    assert!(
        boot.contains("R\n"),
        "the echo guest did not boot from the ISO: {boot:?}"
    );
    let running = Vmx::read(&vmx).unwrap();
    assert_eq!(running.get("remotedisplay.vnc.enabled"), Some("TRUE"));
    assert_eq!(
        running.get("remotedisplay.vnc.password").map(str::len),
        Some(8),
        "a VNC password by default"
    );
    let shot = r.dir.path().join("shot.png");
    d.screenshot(&shot).await.unwrap();
    assert!(std::fs::read(&shot).unwrap().starts_with(b"\x89PNG"));
    // The guest's address comes from the DHCP leases (no VMware Tools in the guest).
    let ssh = d.ssh_address(Duration::from_secs(60)).await.unwrap();
    assert!(
        ssh.host.starts_with("127.") && ssh.host != "127.0.0.1",
        "{ssh:?}"
    );
    assert_eq!(ssh.port, r.ssh_port);
    let typed = "vmware: Hello, VNC! ~`{}|:\"_+?><,./[]\\;'=-0123456789 @#$%^&*()";
    let progress = std::sync::Mutex::new((0, 0));
    d.send_keys(&taps(typed), &|n, all| *progress.lock().unwrap() = (n, all))
        .await
        .unwrap();
    assert_eq!(
        *progress.lock().unwrap(),
        (typed.len() + 1, typed.len() + 1)
    );
    let echo = wait_for(&serial, "\r\n", Duration::from_secs(60)).await;
    assert!(echo.ends_with(&format!("R\n{typed}\r\n")), "{echo:?}");
    // The echo guest powers itself off after Enter.
    assert!(d.wait_stopped(Duration::from_secs(60)).await.unwrap());
    let out = r.dir.path().join("out");
    let files = d.export(&out).await.unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"echo.vmx".to_string()), "{names:?}");
    assert!(names.contains(&"disk.vmdk".to_string()), "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| !n.ends_with(".lck") && !n.ends_with(".log")),
        "{names:?}"
    );
    let v = Vmx::read(&out.join("echo.vmx")).unwrap();
    assert!(
        v.0.keys().all(|k| !k.starts_with("remotedisplay.")),
        "VNC keys left"
    );
    assert_eq!(v.get("ide0:0.devicetype"), Some("cdrom-raw"));
    assert_eq!(v.get("ide0:0.filename"), Some("auto detect"));
    assert_eq!(v.get("serial0.present"), Some("FALSE"));
    assert_eq!(v.get("ethernet0.virtualdev"), Some("e1000"));
    assert!(v.get("ethernet0.generatedaddress").is_none());
    assert_eq!(v.get("annotation"), Some("built by the vmware driver test"));
    let info = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(out.join("disk.vmdk"))
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["format"], "vmdk");
    assert_eq!(info["virtual-size"], 16 * 1024 * 1024);
    d.destroy().await.unwrap();
    d.destroy().await.unwrap();
    assert!(!r.env.work_dir.exists(), "work directory left");
    assert!(
        out.join("disk.vmdk").is_file(),
        "the export survives the cleanup"
    );
    let left = wait_no_processes(r.dir.path()).await;
    assert!(left.is_empty(), "processes left: {left:?}");
    let inv = r.dir.path().join("home/.vmware/fake-inventory.json");
    assert!(
        !inv.exists(),
        "the private vmrest's HOME (with the registration) is removed"
    );
}

#[tokio::test]
async fn vmware_driver_builds_through_a_private_vmrest() {
    full_build(true).await;
}

#[tokio::test]
async fn vmware_driver_builds_through_vmrun_alone() {
    full_build(false).await;
}

#[tokio::test]
async fn vmware_driver_destroy_while_running_and_leave_running() {
    let r = rig(true);
    // destroy() on a running VM (the error path): powered off, unregistered, deleted.
    let mut d = DriverRegistry::builtin()
        .make(&builder(&r), r.env.clone())
        .unwrap();
    let media = Media {
        iso_path: Some(r.iso.clone()),
        http: None,
    };
    d.create(&media).await.unwrap();
    d.start().await.unwrap();
    let serial = d.capabilities().serial_log.unwrap();
    assert!(wait_for(&serial, "R\n", Duration::from_secs(90))
        .await
        .contains("R\n"));
    d.destroy().await.unwrap();
    assert!(!r.env.work_dir.exists());
    let left = wait_no_processes(r.dir.path()).await;
    assert!(left.is_empty(), "processes left: {left:?}");
    // --on-error abort: the VM outlives the driver; the stop command given works.
    let mut d = DriverRegistry::builtin()
        .make(&builder(&r), r.env.clone())
        .unwrap();
    d.create(&media).await.unwrap();
    d.start().await.unwrap();
    let left = d.leave_running();
    drop(d);
    assert!(
        left.items.iter().any(|i| i.contains("echo.vmx")),
        "{left:?}"
    );
    assert!(!format!("{left:?}").contains(
        &Vmx::read(&r.env.work_dir.join("echo.vmx"))
            .unwrap()
            .get("remotedisplay.vnc.password")
            .unwrap()
            .to_string()
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let procs = processes_in(r.dir.path());
    assert!(
        procs.iter().any(|p| p.contains("qemu-system")),
        "the VM should still run: {procs:?}"
    );
    assert!(
        !procs.iter().any(|p| p.contains("/vmrest")),
        "the private vmrest is stopped: {procs:?}"
    );
    for cmd in &left.stop_commands {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(cmd)
            .env_clear()
            .envs(r.env.vars.iter().cloned());
        assert!(c.status().unwrap().success(), "{cmd}");
    }
    let left = wait_no_processes(r.dir.path()).await;
    assert!(
        left.is_empty(),
        "processes left after the stop commands: {left:?}"
    );
    assert!(!r.env.work_dir.exists());
}

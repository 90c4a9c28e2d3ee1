//! The hermetic test OS (tests/testos) installed through the VMware driver alone — no engine —
//! against the FAKE VMware of tests/fakes/vmware: the boot command typed over VNC at the
//! ISOLINUX prompt fetches the answer file from a loopback HTTP server through the fake's NAT
//! network (the guest's 10.0.2.2), the installed system is found from the DHCP leases and
//! answers SSH, and the exported VMDK holds the installed root file system. The engine-level
//! test (osimager build …, with Ansible) is tests/vmware_e2e.rs in the main crate.
//!
//! Slow (a real install under TCG) and covered by tests/vmware_e2e.rs in CI, so ignored by
//! default: `cargo test -p osimager-drivers --test vmware_testos -- --ignored` with the media
//! built (tests/testos/build-media.sh; run explicitly, it fails without them), under
//! `flock /tmp/osimager-guest.lock`.

/// Loopback ports found at run time (the repository's shared test harness, tests/support).
#[path = "../../tests/support/ports.rs"]
mod ports;

use osimager_drivers::bootcmd::{parse, Fields};
use osimager_drivers::{DriverRegistry, Media};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod vmware_common;
use vmware_common::{rig, wait_for, wait_no_processes};

fn testos_iso() -> Option<PathBuf> {
    let cache = std::env::var_os("OSIMAGER_TESTOS_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/osimager-testos"))
        })?;
    let iso = cache.join("current/testos.iso");
    iso.is_file().then_some(iso)
}

/// Serve `body` as every path on 127.0.0.1:`port` (the answer file); returns the task.
async fn serve(port: u16, body: String) -> tokio::task::JoinHandle<()> {
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    })
}

/// The SSH server's banner at `host:port` (QEMU's port forward accepts connections before
/// the guest does: only a banner proves sshd is up).
async fn banner(host: &str, port: u16, timeout: Duration) -> Option<String> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if let Ok(Ok(mut s)) = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect((host, port)),
        )
        .await
        {
            let mut buf = [0u8; 64];
            if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await
            {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if text.starts_with("SSH-") {
                    return Some(text);
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    None
}

/// `/etc/hostname` of the first partition of `vmdk`: qemu-img converts the VMDK to a sparse
/// raw image (only the written data takes space), debugfs reads ext4 at the partition's offset.
fn hostname_in(vmdk: &Path, scratch: &Path) -> String {
    let raw = scratch.join("disk.raw");
    assert!(Command::new("qemu-img")
        .args(["convert", "-f", "vmdk", "-O", "raw"])
        .arg(vmdk)
        .arg(&raw)
        .status()
        .unwrap()
        .success());
    let mut mbr = [0u8; 512];
    std::io::Read::read_exact(&mut std::fs::File::open(&raw).unwrap(), &mut mbr).unwrap();
    assert_eq!(&mbr[510..512], &[0x55, 0xaa], "no MBR on the exported disk");
    let start = u64::from(u32::from_le_bytes(mbr[454..458].try_into().unwrap()));
    let out = Command::new("debugfs")
        .args(["-R", "cat /etc/hostname"])
        .arg(format!("{}?offset={}", raw.display(), start * 512))
        .stderr(Stdio::null())
        .output()
        .expect("debugfs (Debian package e2fsprogs)");
    let _ = std::fs::remove_file(&raw);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
#[ignore = "slow guest install; tests/vmware_e2e.rs covers it in CI"]
async fn testos_installs_through_the_vmware_driver() {
    let iso = testos_iso().expect("no test OS media: run tests/testos/build-media.sh");
    let mut r = rig(true);
    // The one host port the fake's NAT network forwards to the guest: the answer file's server.
    let http_port = ports::free_port();
    r.env
        .vars
        .push(("FAKE_VMWARE_HOST_PORTS".into(), http_port.to_string()));
    let answer =
        "hostname=vmw-testos\nusername=testos\npassword=osi-test-pw\nrootfs=cdrom\ndisk=/dev/vda\n";
    let server = serve(http_port, answer.to_string()).await;
    // The bundled vmware platform's keys (pvscsi, a monolithic sparse disk, firmware through
    // vmx_data) with the test OS's e1000 NIC; the default VNC password.
    let b = json!({
        "type": "vmware-iso", "vm_name": "vmw-testos", "guest_os_type": "other6xlinux-64",
        "cpus": 1, "memory": 512, "disk_size": "2048M", "disk_adapter_type": "pvscsi",
        "disk_type_id": "0", "network_adapter_type": "e1000", "network": "nat",
        "headless": true, "vnc_bind_address": "127.0.0.1", "skip_compaction": false,
        "vmx_data": {"firmware": "bios"}, "communicator": "ssh", "ssh_port": r.ssh_port
    });
    let mut d = DriverRegistry::builtin()
        .make(b.as_object().unwrap(), r.env.clone())
        .unwrap();
    let host = d.host_address().await.unwrap();
    d.create(&Media {
        iso_path: Some(iso),
        http: None,
    })
    .await
    .unwrap();
    let serial = d.capabilities().serial_log.unwrap();
    let t0 = Instant::now();
    d.start().await.unwrap();
    let prompt = wait_for(&serial, "boot:", Duration::from_secs(120)).await;
    assert!(prompt.contains("boot:"), "no ISOLINUX prompt: {prompt:?}");
    let fields = Fields::new()
        .with("HTTPIP", host.guest_ip.clone())
        .with("HTTPPort", http_port.to_string());
    let events = parse(
        &["<wait>install url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/testos.cfg<enter>".to_string()],
        &fields,
    )
    .unwrap();
    d.send_keys(&events, &|_, _| {}).await.unwrap();
    eprintln!(
        "typed the boot command after {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let ssh = d.ssh_address(Duration::from_secs(900)).await.unwrap();
    let b = banner(&ssh.host, ssh.port, Duration::from_secs(900)).await;
    eprintln!(
        "SSH banner {b:?} at {}:{} after {:.1}s",
        ssh.host,
        ssh.port,
        t0.elapsed().as_secs_f64()
    );
    let console = String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()).into_owned();
    assert!(
        b.is_some(),
        "the installed system never answered SSH; console:\n{console}"
    );
    server.abort();
    d.force_stop().await.unwrap();
    let out = r.dir.path().join("out");
    d.export(&out).await.unwrap();
    let vmx = osimager_drivers::vmware::Vmx::read(&out.join("vmw-testos.vmx")).unwrap();
    eprintln!("exported .vmx:\n{}", vmx.encode());
    assert!(vmx.0.keys().all(|k| !k.starts_with("remotedisplay.")));
    d.destroy().await.unwrap();
    assert_eq!(
        hostname_in(&out.join("disk.vmdk"), r.dir.path()),
        "vmw-testos"
    );
    let left = wait_no_processes(r.dir.path()).await;
    assert!(left.is_empty(), "processes left: {left:?}");
}

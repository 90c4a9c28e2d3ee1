//! Shared by the VMware driver tests: a scratch directory with the FAKE VMware of
//! tests/fakes/vmware (stand-ins for vmrest and vmrun) on PATH, its state and network
//! configuration, and helpers to watch the guest and the processes left behind.
#![allow(dead_code)]

use osimager_drivers::DriverEnv;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const FAKES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fakes/vmware");
pub const ECHO_BOOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/echo_boot.bin");

pub struct Rig {
    pub dir: tempfile::TempDir,
    pub env: DriverEnv,
    pub iso: PathBuf,
    pub ssh_port: u16,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A scratch directory with the stand-ins on PATH (vmrest only when `with_vmrest`), their
/// state and VMware's network configuration inside it, and the echo guest as a bootable ISO.
pub fn rig(with_vmrest: bool) -> Rig {
    let dir = tempfile::Builder::new()
        .prefix("vmw-drv-")
        .tempdir()
        .unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let mut tools = vec!["vmrun"];
    if with_vmrest {
        tools.push("vmrest");
    }
    for t in tools {
        std::os::unix::fs::symlink(format!("{FAKES}/{t}"), bin.join(t)).unwrap();
    }
    let iso_root = dir.path().join("iso-root");
    std::fs::create_dir_all(&iso_root).unwrap();
    std::fs::copy(ECHO_BOOT, iso_root.join("echo.bin")).unwrap();
    let iso = dir.path().join("echo.iso");
    let st = Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-o"])
        .arg(&iso)
        .args(["-b", "echo.bin", "-no-emul-boot", "-boot-load-size", "4"])
        .arg(&iso_root)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("xorriso (Debian package xorriso)");
    assert!(st.success());
    let etc = dir.path().join("etc");
    let ssh_port = free_port();
    let env = DriverEnv {
        build_name: "echo".into(),
        work_dir: dir.path().join("work"),
        log_dir: dir.path().join("logs"),
        vars: vec![
            (
                "PATH".into(),
                format!(
                    "{}:{}",
                    bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            ),
            ("HOME".into(), dir.path().join("home").display().to_string()),
            (
                "FAKE_VMWARE_STATE".into(),
                dir.path().join("state").display().to_string(),
            ),
            ("FAKE_VMWARE_ETC".into(), etc.display().to_string()),
            (
                "OSIMAGER_VMWARE_CONFIG_DIR".into(),
                etc.display().to_string(),
            ),
            ("FAKE_VMWARE_GUEST_PORTS".into(), format!("{ssh_port}:22")),
        ],
    };
    // VMware's installation puts its network configuration in place before any build.
    let st = Command::new(format!("{FAKES}/fakevmware.py"))
        .arg("install")
        .env("FAKE_VMWARE_STATE", dir.path().join("state"))
        .env("FAKE_VMWARE_ETC", &etc)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    Rig {
        dir,
        env,
        iso,
        ssh_port,
    }
}

pub async fn wait_for(path: &Path, needle: &str, timeout: Duration) -> String {
    let end = Instant::now() + timeout;
    loop {
        let text = String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned();
        if text.contains(needle) || Instant::now() > end {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Processes whose command line mentions the scratch directory (QEMU, the VM runner, vmrest).
pub fn processes_in(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
                return None;
            }
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(&needle).then(|| format!("{pid}: {cmd}"))
        })
        .collect()
}

pub async fn wait_no_processes(dir: &Path) -> Vec<String> {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let p = processes_in(dir);
        if p.is_empty() || Instant::now() > end {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

//! End to end through the native engine with the VMware driver against the FAKE VMware of
//! tests/fakes/vmware (stand-in vmrest and vmrun that run the .vmx as a real QEMU guest with
//! QEMU's VNC server): `osimager build vmware/standin/testos-1-x86_64 NAME --engine native`
//! starts a private vmrest from a generated .vmrestCfg, writes the .vmx and the VMDK, types
//! the boot command over VNC (with VNC Authentication), installs the hermetic test OS,
//! finds the guest from the fake's DHCP leases, provisions it with Ansible, shuts it down,
//! compacts the disk and exports the VM. The exported .vmx is then checked key by key and the
//! VMDK read back with qemu-img (and debugfs) holds the playbook's marker file.
//!
//! Slow: runs only with OSIMAGER_E2E=1 and the test OS media built (tests/testos/build-media.sh);
//! otherwise skipped visibly (and a failure in CI). Boots a guest: run under
//! `flock /tmp/osimager-guest.lock`.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::process::{assert_nothing_left, entries, eventually, processes_mentioning, Spawned};
use support::{e2e_enabled, media_cache, path_with_tools, repo};

const TARGET: &str = "vmware/standin/testos-1-x86_64";
/// The HTTP ports the fake forwards to the guest (the standin location's http_port_min/max).
const HTTP_PORTS: &str = "8731-8739";
/// Where the fake publishes the guest's SSH port (see the standin location).
const SSH_PORT: u16 = 2222;

/// The stand-ins on PATH as `vmrest` and `vmrun` (what a VMware installation provides).
fn fake_bin(scratch: &Path) -> PathBuf {
    let bin = scratch.join("vmware-bin");
    std::fs::create_dir_all(&bin).unwrap();
    for t in ["vmrest", "vmrun"] {
        std::os::unix::fs::symlink(repo().join("tests/fakes/vmware").join(t), bin.join(t)).unwrap();
    }
    bin
}

fn spawn_cli(scratch: &Path, name: &str) -> Spawned {
    std::fs::create_dir_all(scratch.join("tmp")).unwrap();
    let bin = fake_bin(scratch);
    let etc = scratch.join("vmware-etc");
    // VMware's installation puts its network configuration in place before any build.
    let st = Command::new(repo().join("tests/fakes/vmware/fakevmware.py"))
        .arg("install")
        .env("FAKE_VMWARE_STATE", scratch.join("vmware-state"))
        .env("FAKE_VMWARE_ETC", &etc)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "installing the fake VMware");
    let path = format!("{}:{}", bin.display(), path_with_tools());
    let mut c = Command::new(support::osimager_bin());
    c.args(["build", TARGET, name, "--engine", "native", "--output-dir"])
        .arg(scratch.join("vms/vmware").join(name))
        .args([
            "-D",
            &format!("ansible_extra_vars=osimager_marker=built-{name}"),
        ])
        .args(["-D", &format!("ssh_port={SSH_PORT}")])
        .env("XDG_CONFIG_HOME", repo().join("tests/testos/config"))
        .env("XDG_DATA_HOME", scratch.join("data"))
        .env("XDG_CACHE_HOME", scratch.join("cache"))
        .env("OSIMAGER_TESTOS_CACHE", media_cache())
        .env("TMPDIR", scratch.join("tmp"))
        .env("PATH", path)
        // The fake VMware installation: its state, its network configuration (read by the
        // driver from OSIMAGER_VMWARE_CONFIG_DIR, as it reads /etc/vmware on a real host) and
        // the ports its NAT network carries.
        .env("FAKE_VMWARE_STATE", scratch.join("vmware-state"))
        .env("FAKE_VMWARE_ETC", &etc)
        .env("OSIMAGER_VMWARE_CONFIG_DIR", &etc)
        .env("FAKE_VMWARE_HOST_PORTS", HTTP_PORTS)
        .env("FAKE_VMWARE_GUEST_PORTS", format!("{SSH_PORT}:22"));
    Spawned::start(c)
}

/// A .vmx as lower-cased key → value.
fn read_vmx(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            ))
        })
        .collect()
}

/// The exported .vmx, every key: Packer's template with the builder's values, `vmx_data` on
/// top, and the build's temporary devices reset (ISO, serial console, VNC).
fn expected_vmx(name: &str) -> BTreeMap<String, String> {
    let pairs: &[(&str, &str)] = &[
        (".encoding", "UTF-8"),
        ("bios.bootorder", "hdd,cdrom"),
        ("checkpoint.vmstate", ""),
        ("cleanshutdown", "TRUE"),
        ("config.version", "8"),
        ("cpuid.corespersocket", "1"),
        ("displayname", name),
        ("ethernet0.addresstype", "generated"),
        ("ethernet0.bsdname", "en0"),
        ("ethernet0.connectiontype", "nat"),
        ("ethernet0.displayname", "Ethernet"),
        ("ethernet0.linkstatepropagation.enable", "FALSE"),
        ("ethernet0.pcislotnumber", "33"),
        ("ethernet0.present", "TRUE"),
        ("ethernet0.virtualdev", "e1000"),
        ("ethernet0.vnet", ""),
        ("ethernet0.wakeonpcktrcv", "FALSE"),
        ("extendedconfigfile", &format!("{name}.vmxf")),
        ("firmware", "bios"),
        ("floppy0.present", "FALSE"),
        ("guestos", "other6xlinux-64"),
        ("gui.fullscreenatpoweron", "FALSE"),
        ("gui.viewmodeatpoweron", "windowed"),
        ("hgfs.linkrootshare", "TRUE"),
        ("hgfs.maprootshare", "TRUE"),
        ("hpet0.present", "TRUE"),
        ("ide0:0.clientdevice", "TRUE"),
        ("ide0:0.devicetype", "cdrom-raw"),
        ("ide0:0.filename", "auto detect"),
        ("ide0:0.present", "TRUE"),
        ("isolation.tools.hgfs.disable", "FALSE"),
        ("memsize", "512"),
        ("msg.autoanswer", "true"),
        ("numvcpus", "1"),
        ("nvme0.present", "FALSE"),
        ("nvram", &format!("{name}.nvram")),
        ("parallel0.present", "FALSE"),
        ("parallel0.startconnected", "FALSE"),
        ("pcibridge0.pcislotnumber", "17"),
        ("pcibridge0.present", "TRUE"),
        ("powertype.poweroff", "soft"),
        ("powertype.poweron", "soft"),
        ("powertype.reset", "soft"),
        ("powertype.suspend", "soft"),
        ("proxyapps.publishtohost", "FALSE"),
        ("replay.filename", ""),
        ("replay.supported", "FALSE"),
        ("sata0.present", "FALSE"),
        ("scsi0.pcislotnumber", "16"),
        ("scsi0.present", "TRUE"),
        ("scsi0.virtualdev", "pvscsi"),
        ("scsi0:0.filename", "disk.vmdk"),
        ("scsi0:0.present", "TRUE"),
        ("scsi0:0.redo", ""),
        ("serial0.present", "FALSE"),
        ("sound.autodetect", "TRUE"),
        ("sound.filename", "-1"),
        ("sound.present", "FALSE"),
        ("sound.startconnected", "FALSE"),
        ("tools.synctime", "TRUE"),
        ("tools.upgrade.policy", "upgradeAtPowerCycle"),
        ("uuid.action", "create"),
        ("vhv.enable", "FALSE"),
        ("virtualhw.productcompatibility", "hosted"),
        ("virtualhw.version", "21"),
        ("vmci0.id", "1861462627"),
        ("vmci0.pcislotnumber", "35"),
        ("vmci0.present", "TRUE"),
        ("vmotion.checkpointfbsize", "65536000"),
    ];
    let mut m: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (n, slot) in [(4, 21), (5, 22), (6, 23), (7, 24)] {
        m.insert(format!("pcibridge{n}.functions"), "8".into());
        m.insert(format!("pcibridge{n}.pcislotnumber"), slot.to_string());
        m.insert(format!("pcibridge{n}.present"), "TRUE".into());
        m.insert(format!("pcibridge{n}.virtualdev"), "pcieRootPort".into());
    }
    m
}

/// A file of the first partition's ext4 file system inside `vmdk`: qemu-img converts the
/// VMDK to a sparse raw image (only the written data takes space), debugfs reads the file at
/// the partition's offset.
fn read_from_vmdk(vmdk: &Path, scratch: &Path, file: &str) -> String {
    let raw = scratch.join("disk.raw");
    if !raw.exists() {
        let st = Command::new("qemu-img")
            .args(["convert", "-f", "vmdk", "-O", "raw"])
            .arg(vmdk)
            .arg(&raw)
            .status()
            .unwrap();
        assert!(st.success());
    }
    let mut mbr = [0u8; 512];
    std::io::Read::read_exact(&mut std::fs::File::open(&raw).unwrap(), &mut mbr).unwrap();
    assert_eq!(&mbr[510..512], &[0x55, 0xaa], "no MBR on the exported disk");
    let start = u64::from(u32::from_le_bytes(mbr[454..458].try_into().unwrap()));
    let out = Command::new("debugfs")
        .args(["-R", &format!("cat {file}")])
        .arg(format!("{}?offset={}", raw.display(), start * 512))
        .stderr(Stdio::null())
        .output()
        .expect("debugfs (Debian package e2fsprogs)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// No VM process, no vmrest, no temp dir (the private vmrest's HOME lives there), no VM the
/// fake still runs.
fn assert_nothing_running(s: &Path, outputs: &[&Path], what: &str) {
    assert_nothing_left(s, outputs, &[], what);
    let running = entries(&s.join("vmware-state/running"));
    assert!(
        running.is_empty(),
        "{what}: the fake still runs VMs: {running:?}"
    );
}

#[test]
fn e2e_vmware_builds_testos_through_the_standins() {
    if !e2e_enabled() {
        return;
    }
    let scratch = tempfile::Builder::new()
        .prefix("vmware-e2e-")
        .tempdir()
        .unwrap();
    let s = scratch.path();
    let name = "vmw-e2e";
    let started = Instant::now();
    let mut child = spawn_cli(s, name);
    let (code, log) = child.exit_and_output(Duration::from_secs(2400));
    eprintln!(
        "native VMware build took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(code, 0, "build failed");
    assert!(
        !log.iter().any(|l| l.contains("osi-test-pw")),
        "the SSH password leaked into the output"
    );

    let out = s.join("vms/vmware").join(name);
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert!(files.contains(&format!("{name}.vmx")), "{files:?}");
    assert!(files.contains(&"disk.vmdk".to_string()), "{files:?}");
    assert!(
        files
            .iter()
            .all(|f| !f.ends_with(".lck") && !f.ends_with(".log") && !f.ends_with(".iso")),
        "build leftovers exported: {files:?}"
    );

    // The .vmx, key by key.
    let got = read_vmx(&out.join(format!("{name}.vmx")));
    let want = expected_vmx(name);
    for (k, v) in &want {
        assert_eq!(got.get(k), Some(v), ".vmx key {k}");
    }
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(extra.is_empty(), "unexpected .vmx keys: {extra:?}");

    // The disk: a VMDK of the builder's size that holds what the playbook wrote.
    let info = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(out.join("disk.vmdk"))
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["format"], "vmdk");
    assert_eq!(info["virtual-size"], 2048u64 * 1024 * 1024);
    assert_eq!(
        info["format-specific"]["data"]["create-type"],
        "monolithicSparse"
    );
    let marker = read_from_vmdk(&out.join("disk.vmdk"), s, "/etc/osimager-marker");
    assert_eq!(marker.trim(), format!("built-{name}"));
    let build = read_from_vmdk(&out.join("disk.vmdk"), s, "/etc/osimager-build");
    assert!(build.contains("OSIMAGER_PLATFORM=vmware"), "{build}");
    assert!(build.contains("OSIMAGER_LOCATION=standin"), "{build}");

    // Nothing left: no VM process, no vmrest, no temp dirs, no registration.
    assert_nothing_running(s, &[], "after the build");
}

/// Ctrl-C while the engine waits for SSH (the VM running, registered with the private
/// vmrest): the build stops, the VM is powered off, unregistered and deleted, the private
/// vmrest and its HOME are gone.
#[test]
fn e2e_vmware_sigint_while_waiting_for_ssh_leaves_nothing() {
    if !e2e_enabled() {
        return;
    }
    let scratch = tempfile::Builder::new()
        .prefix("vmware-sig-")
        .tempdir()
        .unwrap();
    let s = scratch.path();
    let name = "vmw-sig";
    let mut child = spawn_cli(s, name);
    child.wait_line("==> wait for ssh", Duration::from_secs(300));
    let both_running = || {
        let procs = processes_mentioning(&s.display().to_string(), &[]);
        procs.iter().any(|p| p.contains("qemu-system"))
            && procs.iter().any(|p| p.contains("vmrest"))
    };
    assert!(
        eventually(Duration::from_secs(30), both_running),
        "the VM and the private vmrest should be running now: {:?}",
        processes_mentioning(&s.display().to_string(), &[])
    );
    child.signal(libc::SIGINT);
    let t = Instant::now();
    let (code, rest) = child.exit_and_output(Duration::from_secs(180));
    eprintln!(
        "CLI exited {code} {:.1}s after SIGINT",
        t.elapsed().as_secs_f64()
    );
    assert_ne!(code, 0);
    assert!(
        rest.iter().any(|l| l.contains("interrupted by SIGINT")),
        "{rest:?}"
    );
    let out = s.join("vms/vmware").join(name);
    assert_nothing_running(s, &[&out], "after SIGINT");
}

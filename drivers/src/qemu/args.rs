//! The QEMU command line: Packer's defaults, then `qemuargs` overrides with Packer's rule — an
//! override entry `[flag, parts…]` (parts joined with no separator, templated) replaces every
//! default entry with the same flag; several entries with one flag all apply; a flag alone
//! (`["-no-reboot"]`) is passed without a value.

use super::config::QemuConfig;
use super::config_parts::Firmware;
use crate::bootcmd::{render, Fields};
use crate::DriverError;
use std::path::{Path, PathBuf};

/// Everything about one launch attempt that is not in the config.
#[derive(Debug, Clone)]
pub(crate) struct LaunchPlan {
    /// `kvm` or `tcg`.
    pub accel: &'static str,
    pub qmp_socket: PathBuf,
    pub ssh_host_port: Option<u16>,
    pub disks: Vec<PathBuf>,
    pub cd_image: Option<PathBuf>,
    /// The `floppy_files`/`floppy_dirs` image (Packer attaches it as the first floppy drive).
    pub floppy_image: Option<PathBuf>,
    pub efi_vars: Option<PathBuf>,
    /// Whether a local display is available (`DISPLAY`/`WAYLAND_DISPLAY` set).
    pub have_display: bool,
    /// Resume a saved VM (install cache): `-incoming` from this migration stream, with as many
    /// empty CD drives as the saved VM had (the device set must be the same).
    pub incoming: Option<Incoming>,
}

/// A saved VM to resume instead of booting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Incoming {
    pub stream: PathBuf,
    pub cdroms: usize,
}

/// `'…'` for `/bin/sh` (QEMU runs `exec:` migration URIs through it).
pub(crate) fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\"'\"'"))
}

/// Commas in option values are doubled (QEMU's escaping).
fn esc(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// Template fields available in `qemuargs`.
pub(crate) fn qemuargs_fields(cfg: &QemuConfig, plan: &LaunchPlan) -> Fields {
    let mut f = Fields::new()
        .with("Name", cfg.vm_name.clone())
        .with("OutputDir", cfg.output_directory.display().to_string());
    if let Some(h) = &cfg.media.http {
        f.insert("HTTPIP", h.ip.clone());
        f.insert("HTTPPort", h.port.to_string());
    }
    if let Some(p) = plan.ssh_host_port {
        f.insert("SSHHostPort", p.to_string());
    }
    f
}

fn defaults(cfg: &QemuConfig, plan: &LaunchPlan) -> Vec<(String, Vec<String>)> {
    let mut g: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |flag: &str, vals: Vec<String>| g.push((flag.to_string(), vals));
    // debug-threads names the vCPU threads (`CPU 0/TCG`) so typing can be paced by them.
    add("-name", vec![format!("{},debug-threads=on", cfg.vm_name)]);
    add(
        "-machine",
        vec![format!("type={},accel={}", cfg.machine_type, plan.accel)],
    );
    add("-m", vec![format!("{}M", cfg.memory_mib)]);
    let topo = cfg.sockets.unwrap_or(1) * cfg.cores.unwrap_or(1) * cfg.threads.unwrap_or(1);
    let mut smp = format!("cpus={}", cfg.cpus.max(topo));
    for (k, v) in [
        ("sockets", cfg.sockets),
        ("cores", cfg.cores),
        ("threads", cfg.threads),
    ] {
        if let Some(v) = v {
            smp.push_str(&format!(",{k}={v}"));
        }
    }
    add("-smp", vec![smp]);
    let cpu = match (cfg.cpu_model.as_deref(), plan.accel) {
        // `host` only exists under KVM; under TCG the closest is `max`.
        (Some("host"), "tcg") => Some("max".to_string()),
        // No model under TCG: QEMU's default (qemu64), as Packer passes no -cpu. On this
        // project's test guest, `max` made guest code 25-70 % slower under TCG (python3 start,
        // compile, sha256sum; docs/BENCHMARKS.md).
        (None, "tcg") => None,
        (None, _) => Some("host".to_string()),
        (Some(m), _) => Some(m.to_string()),
    };
    if let Some(cpu) = cpu {
        add("-cpu", vec![cpu]);
    }
    let mut netdev = "user,id=user.0".to_string();
    if let (Some(port), Some(ssh)) = (plan.ssh_host_port, &cfg.ssh) {
        netdev.push_str(&format!(
            ",hostfwd=tcp:127.0.0.1:{port}-:{}",
            ssh.guest_port
        ));
    }
    add("-netdev", vec![netdev]);
    let mut devices = vec![format!("{},netdev=user.0", cfg.net_device)];
    let mut drives = Vec::new();
    let disk_opts = format!(
        "cache={},discard={},detect-zeroes={},format={}",
        cfg.disk_cache,
        cfg.disk_discard,
        cfg.disk_detect_zeroes,
        cfg.format.as_str()
    );
    match cfg.disk_interface.as_str() {
        "scsi" | "virtio-scsi" => devices.push("virtio-scsi-pci,id=scsi0".into()),
        "sata" => devices.push("ahci,id=ahci0".into()),
        _ => {}
    }
    for (i, d) in plan.disks.iter().enumerate() {
        match cfg.disk_interface.as_str() {
            "virtio" | "ide" => drives.push(format!(
                "file={},if={},{disk_opts}",
                esc(d),
                cfg.disk_interface
            )),
            other => {
                drives.push(format!("file={},if=none,id=drive{i},{disk_opts}", esc(d)));
                devices.push(match other {
                    "sata" => format!("ide-hd,bus=ahci0.{i},drive=drive{i}"),
                    "nvme" => format!("nvme,serial=osimager{i},drive=drive{i}"),
                    _ => format!("scsi-hd,bus=scsi0.0,drive=drive{i}"),
                });
            }
        }
    }
    match &plan.incoming {
        // The same CD drives as the saved VM, empty: the guest is past its install.
        Some(inc) => drives.extend((0..inc.cdroms).map(|_| "media=cdrom".to_string())),
        None => {
            if !cfg.disk_image {
                if let Some(iso) = &cfg.media.iso_path {
                    drives.push(format!("file={},media=cdrom", esc(iso)));
                }
            }
            if let Some(cd) = &plan.cd_image {
                drives.push(format!("file={},media=cdrom", esc(cd)));
            }
        }
    }
    // The floppy drive exists in both cases (a resumed VM needs the same device set).
    if let Some(fd) = &plan.floppy_image {
        drives.push(format!("file={},if=floppy,index=0,format=raw", esc(fd)));
    }
    if let (Firmware::Efi { code, .. }, Some(vars)) = (&cfg.firmware, &plan.efi_vars) {
        drives.push(format!(
            "if=pflash,unit=0,format=raw,readonly=on,file={}",
            esc(code)
        ));
        drives.push(format!("if=pflash,unit=1,format=raw,file={}", esc(vars)));
    }
    add("-device", devices);
    add("-drive", drives);
    let boot_cd = !cfg.disk_image && cfg.media.iso_path.is_some() && plan.incoming.is_none();
    add(
        "-boot",
        vec![if boot_cd { "once=d".into() } else { "c".into() }],
    );
    if let Firmware::BiosFile(p) = &cfg.firmware {
        add("-bios", vec![p.display().to_string()]);
    }
    if let Some(vnc) = &cfg.vnc {
        add(
            "-vnc",
            vec![format!(
                "{}:{},to={}",
                vnc.bind_address,
                vnc.port_min - 5900,
                vnc.port_max - 5900
            )],
        );
    }
    let display = match (&cfg.display, cfg.headless || !plan.have_display) {
        (_, true) => Some("none".to_string()),
        (Some(d), false) => Some(d.clone()),
        (None, false) => None,
    };
    if let Some(d) = display {
        add("-display", vec![d]);
    }
    add("-serial", vec![format!("file:{}", esc(&cfg.serial_log()))]);
    g
}

/// The full argv (program first).
pub(crate) fn build_argv(cfg: &QemuConfig, plan: &LaunchPlan) -> Result<Vec<String>, DriverError> {
    let mut groups = defaults(cfg, plan);
    let fields = qemuargs_fields(cfg, plan);
    let mut overridden: Vec<(String, Vec<String>)> = Vec::new();
    for (i, entry) in cfg.qemuargs.iter().enumerate() {
        let flag = entry[0].clone();
        let mut val = String::new();
        for (j, part) in entry.iter().enumerate().skip(1) {
            val.push_str(&render(part, &fields).map_err(|e| {
                DriverError::Msg(format!("QEMU builder key \"qemuargs\"[{i}][{j}]: {e}"))
            })?);
        }
        match overridden.iter_mut().find(|(f, _)| *f == flag) {
            Some((_, vals)) => {
                if !val.is_empty() {
                    vals.push(val)
                }
            }
            None => overridden.push((flag, if val.is_empty() { vec![] } else { vec![val] })),
        }
    }
    // Packer #6804: a `-device` override without the network device gets it appended.
    if let Some((_, vals)) = overridden.iter_mut().find(|(f, _)| f == "-device") {
        if !vals.concat().contains(&cfg.net_device) {
            vals.push(format!("{},netdev=user.0", cfg.net_device));
        }
    }
    for (flag, vals) in overridden {
        match groups.iter_mut().find(|(f, _)| *f == flag) {
            Some(g) => g.1 = vals,
            None => groups.push((flag, vals)),
        }
    }
    if let Some(inc) = &plan.incoming {
        groups.push((
            "-incoming".into(),
            vec![format!("exec:cat {}", sh_quote(&inc.stream))],
        ));
    }
    // Our QMP socket is always added: the driver cannot work without it.
    groups.push((
        "-qmp".into(),
        vec![format!("unix:{},server=on,wait=off", esc(&plan.qmp_socket))],
    ));
    let mut argv = vec![cfg.qemu_binary.clone()];
    for (flag, vals) in groups {
        if vals.is_empty() {
            argv.push(flag);
        } else {
            for v in vals {
                argv.push(flag.clone());
                argv.push(v);
            }
        }
    }
    Ok(argv)
}

use super::args::{build_argv, LaunchPlan};
use super::*;
use crate::driver::{DriverEnv, HttpEndpoint, Media};
use serde_json::json;
use std::time::Duration;

fn env() -> DriverEnv {
    DriverEnv {
        build_name: "b1".into(),
        work_dir: "/w".into(),
        log_dir: "/l".into(),
        vars: Vec::new(),
    }
}

fn media() -> Media {
    Media {
        iso_path: Some("/isos/x.iso".into()),
        http: Some(HttpEndpoint {
            ip: "10.0.2.2".into(),
            port: 8123,
        }),
    }
}

fn cfg(v: serde_json::Value) -> Result<QemuConfig, ConfigError> {
    QemuConfig::from_builder(v.as_object().unwrap(), env()).map(|c| c.with_media(media()))
}

fn plan() -> LaunchPlan {
    LaunchPlan {
        accel: "tcg",
        qmp_socket: "/run/q.sock".into(),
        ssh_host_port: Some(3333),
        disks: vec!["/w/vm.qcow2".into()],
        cd_image: None,
        floppy_image: None,
        efi_vars: None,
        have_display: false,
    }
}

fn pairs(argv: &[String], flag: &str) -> Vec<String> {
    argv.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].clone())
        .collect()
}

#[test]
fn defaults_follow_packer() {
    let c = cfg(json!({"type": "qemu"})).unwrap();
    assert_eq!(c.vm_name, "packer-b1");
    assert_eq!(c.output_directory, PathBuf::from("output-b1"));
    assert_eq!(c.disk_size_mib, 40960);
    assert_eq!(c.format, DiskFormat::Qcow2);
    assert_eq!(c.memory_mib, 512);
    assert_eq!(c.machine_type, "pc");
    assert_eq!(c.accelerator, Accelerator::Auto);
    assert_eq!(c.disk_interface, "virtio");
    assert_eq!(c.net_device, "virtio-net");
    assert_eq!(c.boot_key_interval, DEFAULT_KEY_INTERVAL);
    let ssh = c.ssh.as_ref().unwrap();
    assert_eq!(
        (ssh.guest_port, ssh.host_port_min, ssh.host_port_max),
        (22, 2222, 4444)
    );
    assert!(c.vnc.is_none());
}

#[test]
fn osimager_style_values() {
    // Values as the bundled qemu platform produces them (strings from markers, "" = unset).
    let c = cfg(json!({
        "vm_name": "web1", "sockets": "2", "cores": 2, "memory": "2048", "disk_size": "20480M",
        "format": "raw", "firmware": "", "accelerator": "none", "cpu_model": "max",
        "cd_files": "/t/user-data,/t/meta-data", "cd_label": "cidata", "headless": "true",
        "boot_key_interval": "25ms", "disk_additional_size": ["1G", 512],
        "output_directory": "/vms/qemu/web1"
    }))
    .unwrap();
    assert_eq!((c.sockets, c.cores, c.memory_mib), (Some(2), Some(2), 2048));
    assert_eq!((c.disk_size_mib, c.format), (20480, DiskFormat::Raw));
    assert_eq!(c.firmware, Firmware::Bios);
    assert_eq!(c.accelerator, Accelerator::Tcg);
    assert_eq!(
        c.cd_files,
        vec![PathBuf::from("/t/user-data"), PathBuf::from("/t/meta-data")]
    );
    assert_eq!(c.cd_label.as_deref(), Some("cidata"));
    assert!(c.headless);
    assert_eq!(c.boot_key_interval, Duration::from_millis(25));
    assert_eq!(c.disk_additional_size_mib, vec![1024, 512]);
    let argv = build_argv(&c, &plan()).unwrap();
    assert_eq!(pairs(&argv, "-smp"), vec!["cpus=4,sockets=2,cores=2"]);
    assert_eq!(pairs(&argv, "-m"), vec!["2048M"]);
}

#[test]
fn disk_sizes() {
    for (v, mib) in [
        (json!(10240), 10240),
        (json!("10240"), 10240),
        (json!("10G"), 10240),
        (json!("10GiB"), 10240),
        (json!("1T"), 1048576),
        (json!("512M"), 512),
        (json!("2048K"), 2),
    ] {
        assert_eq!(
            cfg(json!({ "disk_size": v })).unwrap().disk_size_mib,
            mib,
            "{v}"
        );
    }
    let e = cfg(json!({"disk_size": "ten"})).unwrap_err();
    assert_eq!(e.key, "disk_size");
    assert!(e.to_string().contains("\"20G\""), "{e}");
}

#[test]
fn errors_name_key_and_accepted_values() {
    for (key, v, needle) in [
        ("format", json!("vmdk"), "qcow2, raw"),
        ("disk_interface", json!("floppy"), "virtio"),
        ("disk_cache", json!("fast"), "writeback"),
        ("disk_discard", json!("yes"), "unmap, ignore"),
        ("disk_detect_zeroes", json!("maybe"), "unmap, on, off"),
        ("accelerator", json!("hvf"), "kvm"),
        ("memory", json!("lots"), "whole number"),
        ("headless", json!("perhaps"), "true or false"),
        ("boot_key_interval", json!("fast"), "10ms"),
        ("qemuargs", json!([["nodash"]]), "flag"),
        ("qemuargs", json!("-m 1G"), "list of lists"),
        ("firmware", json!("/no/such/fw.bin"), "\"efi\""),
    ] {
        let e = cfg(json!({ key: v })).unwrap_err();
        assert_eq!(e.key, key, "{e}");
        assert!(e.to_string().contains(needle), "{key}: {e}");
    }
    let e = cfg(json!({"use_backing_file": true})).unwrap_err();
    assert!(e.to_string().contains("disk_image"), "{e}");
}

#[test]
fn efi_uses_ovmf() {
    let c = cfg(json!({"firmware": "efi"})).unwrap();
    let Firmware::Efi { code, vars } = &c.firmware else {
        panic!("{:?}", c.firmware)
    };
    assert!(code.starts_with("/usr/share/OVMF/") && code.is_file());
    assert!(vars.to_string_lossy().contains("VARS"));
    let mut p = plan();
    p.efi_vars = Some("/w/vars.fd".into());
    let argv = build_argv(&c, &p).unwrap();
    let drives = pairs(&argv, "-drive");
    assert!(drives
        .iter()
        .any(|d| d.contains("if=pflash,unit=0") && d.contains("readonly=on")));
    assert!(drives
        .iter()
        .any(|d| d == "if=pflash,unit=1,format=raw,file=/w/vars.fd"));
    assert_eq!(cfg(json!({"efi_boot": true})).unwrap().firmware, c.firmware);
}

#[test]
fn default_command_line() {
    let c = cfg(json!({"vm_name": "vm", "headless": true})).unwrap();
    let argv = build_argv(&c, &plan()).unwrap();
    assert_eq!(argv[0], "qemu-system-x86_64");
    assert_eq!(pairs(&argv, "-machine"), vec!["type=pc,accel=tcg"]);
    // No cpu_model under TCG: no -cpu at all (QEMU's qemu64, Packer's command line).
    assert!(pairs(&argv, "-cpu").is_empty());
    assert_eq!(
        pairs(&argv, "-netdev"),
        vec!["user,id=user.0,hostfwd=tcp:127.0.0.1:3333-:22"]
    );
    assert_eq!(pairs(&argv, "-device"), vec!["virtio-net,netdev=user.0"]);
    assert_eq!(
        pairs(&argv, "-drive"),
        vec![
            "file=/w/vm.qcow2,if=virtio,cache=writeback,discard=ignore,detect-zeroes=off,format=qcow2",
            "file=/isos/x.iso,media=cdrom"
        ]
    );
    assert_eq!(pairs(&argv, "-boot"), vec!["once=d"]);
    assert_eq!(pairs(&argv, "-display"), vec!["none"]);
    assert_eq!(pairs(&argv, "-serial"), vec!["file:/l/vm-serial.log"]);
    assert_eq!(
        pairs(&argv, "-qmp"),
        vec!["unix:/run/q.sock,server=on,wait=off"]
    );
    // `host` is a KVM-only model: under TCG it becomes `max`.
    let c = cfg(json!({"cpu_model": "host"})).unwrap();
    assert_eq!(
        pairs(&build_argv(&c, &plan()).unwrap(), "-cpu"),
        vec!["max"]
    );
    let mut p = plan();
    p.accel = "kvm";
    assert_eq!(pairs(&build_argv(&c, &p).unwrap(), "-cpu"), vec!["host"]);
}

#[test]
fn qemuargs_override_like_packer() {
    let c = cfg(json!({
        "vm_name": "vm",
        "qemuargs": [
            ["-netdev", "user,id=user.0,restrict=on,host=10.0.2.254,",
             "hostfwd=tcp:127.0.0.1:{{ .SSHHostPort }}-:22,",
             "guestfwd=tcp:10.0.2.2:{{.HTTPPort}}-cmd:socat STDIO TCP:127.0.0.1:{{ .HTTPPort }}"],
            ["-m", "1024M"],
            ["-device", "virtio-rng-pci"],
            ["-no-reboot"],
            ["-smbios", "type=1,serial={{ .Name }}"],
            ["-smbios", "type=11,value={{ .OutputDir }}"]
        ]
    }))
    .unwrap();
    let argv = build_argv(&c, &plan()).unwrap();
    assert_eq!(
        pairs(&argv, "-netdev"),
        vec!["user,id=user.0,restrict=on,host=10.0.2.254,hostfwd=tcp:127.0.0.1:3333-:22,guestfwd=tcp:10.0.2.2:8123-cmd:socat STDIO TCP:127.0.0.1:8123"]
    );
    assert_eq!(pairs(&argv, "-m"), vec!["1024M"]);
    // Packer #6804: the network device is kept when -device is overridden.
    assert_eq!(
        pairs(&argv, "-device"),
        vec!["virtio-rng-pci", "virtio-net,netdev=user.0"]
    );
    assert!(argv.contains(&"-no-reboot".to_string()));
    assert_eq!(
        pairs(&argv, "-smbios"),
        vec!["type=1,serial=vm", "type=11,value=output-b1"]
    );
    assert_eq!(argv.iter().filter(|a| *a == "-m").count(), 1);
    let c = cfg(json!({"qemuargs": [["-name", "{{ .Nope }}"]]})).unwrap();
    let e = build_argv(&c, &plan()).unwrap_err().to_string();
    assert!(
        e.contains("qemuargs") && e.contains(".Nope") && e.contains(".SSHHostPort"),
        "{e}"
    );
}

#[test]
fn disk_interfaces() {
    for (iface, dev) in [
        ("virtio-scsi", "scsi-hd,bus=scsi0.0,drive=drive0"),
        ("sata", "ide-hd,bus=ahci0.0,drive=drive0"),
        ("nvme", "nvme,serial=osimager0,drive=drive0"),
    ] {
        let c = cfg(json!({ "disk_interface": iface })).unwrap();
        let argv = build_argv(&c, &plan()).unwrap();
        assert!(
            pairs(&argv, "-device").contains(&dev.to_string()),
            "{iface}: {argv:?}"
        );
        assert!(pairs(&argv, "-drive")[0].contains("if=none,id=drive0"));
    }
    let c = cfg(json!({ "disk_interface": "ide" })).unwrap();
    assert!(pairs(&build_argv(&c, &plan()).unwrap(), "-drive")[0].contains("if=ide"));
}

#[test]
fn vnc_only_when_asked() {
    let c = cfg(json!({"vnc_port_min": 5905, "vnc_port_max": 5910})).unwrap();
    let argv = build_argv(&c, &plan()).unwrap();
    assert_eq!(pairs(&argv, "-vnc"), vec!["127.0.0.1:5,to=10"]);
    let c = cfg(json!({"communicator": "none"})).unwrap();
    assert!(c.ssh.is_none());
}

#[test]
fn floppy_keys_and_drive() {
    let c = cfg(
        json!({"type": "qemu", "floppy_files": ["/t/ks.cfg", "/t/drivers"],
        "floppy_dirs": "/t/tree"}),
    )
    .unwrap();
    assert_eq!(
        c.floppy_files,
        vec![PathBuf::from("/t/ks.cfg"), PathBuf::from("/t/drivers")]
    );
    assert_eq!(c.floppy_dirs, vec![PathBuf::from("/t/tree")]);
    assert_eq!(c.floppy_label, "packer", "Packer's default label");
    let c = cfg(json!({"type": "qemu", "floppy_label": "OEMDRV"})).unwrap();
    assert_eq!(c.floppy_label, "OEMDRV");
    let e = cfg(json!({"type": "qemu", "floppy_label": "much-too-long-label"})).unwrap_err();
    assert_eq!(e.key, "floppy_label");
    let e = cfg(json!({"type": "qemu", "floppy_files": [1]})).unwrap_err();
    assert_eq!(e.key, "floppy_files");

    let mut p = plan();
    p.floppy_image = Some("/w/vm-floppy.img".into());
    let argv = build_argv(&c, &p).unwrap();
    assert!(
        pairs(&argv, "-drive")
            .contains(&"file=/w/vm-floppy.img,if=floppy,index=0,format=raw".into()),
        "{argv:?}"
    );
    let argv = build_argv(&c, &plan()).unwrap();
    assert!(!argv.iter().any(|a| a.contains("if=floppy")), "{argv:?}");
}

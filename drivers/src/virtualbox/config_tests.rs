use super::config::*;
use super::setup::{self, Layout, MediumKind};
use super::VBoxVersion;
use crate::driver::DriverEnv;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn env() -> DriverEnv {
    DriverEnv {
        build_name: "b1".into(),
        work_dir: "/w".into(),
        log_dir: "/l".into(),
        vars: Vec::new(),
    }
}

fn cfg(v: Value) -> Result<VBoxConfig, VBoxConfigError> {
    VBoxConfig::from_builder(v.as_object().unwrap(), env())
}

fn ver(s: &str) -> VBoxVersion {
    VBoxVersion::parse_line(s).unwrap()
}

fn pairs(argv: &[String]) -> Vec<(String, String)> {
    argv[2..]
        .chunks(2)
        .map(|c| (c[0].clone(), c.get(1).cloned().unwrap_or_default()))
        .collect()
}

fn has(argv: &[String], k: &str, v: &str) -> bool {
    pairs(argv).iter().any(|(a, b)| a == k && b == v)
}

fn flag(argv: &[String], k: &str) -> bool {
    argv.iter().any(|a| a == k)
}

/// The bundled platform (platforms/virtualbox.json) as OSImager resolves it for a target.
fn bundled() -> Value {
    json!({
        "type": "virtualbox-iso", "name": "debian-12-x86_64", "vm_name": "debian-12-x86_64",
        "output_directory": "/tmp/vms/virtualbox/debian-12-x86_64",
        "iso_url": "https://example.org/debian.iso", "iso_checksum": "none",
        "iso_target_path": "/iso/debian.iso", "cpus": 2, "memory": 2048, "disk_size": 20480,
        "hard_drive_interface": "sata", "hard_drive_nonrotational": true,
        "hard_drive_discard": true, "guest_additions_mode": "disable", "headless": true,
        "http_directory": "/tmp/x", "http_bind_address": "127.0.0.1",
        "vrdp_bind_address": "127.0.0.1",
        "vboxmanage": [["modifyvm", "{{ .Name }}", "--firmware", "bios", "--graphicscontroller",
                        "vmsvga", "--vram", "33", "--rtcuseutc", "on", "--ioapic", "on"]],
        "boot_wait": "5s", "shutdown_timeout": "15m", "keep_registered": false, "format": "ova",
        "boot_command": ["<esc><wait>auto url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/x<enter>"],
        "communicator": "ssh", "ssh_username": "root", "ssh_password": "pw",
        "ssh_timeout": "60m", "ssh_handshake_attempts": 100, "ssh_pty": true,
        "shutdown_command": "/sbin/shutdown -P now", "guest_os_type": "Debian_64",
        "_comment": "ignored"
    })
}

#[test]
fn defaults_follow_packer() {
    let c = cfg(json!({"type": "virtualbox-iso", "guest_additions_mode": "disable"})).unwrap();
    assert_eq!(c.vm_name, "packer-b1");
    assert_eq!(c.guest_os_type, "Other");
    assert_eq!((c.cpus, c.memory_mib, c.disk_size_mib), (1, 512, 40000));
    assert_eq!(c.disk_bus, DiskBus::Ide);
    assert_eq!(c.iso_bus, DiskBus::Ide);
    assert_eq!(c.nic_type, "82540EM");
    assert_eq!(c.format, ExportFormat::Ovf);
    assert_eq!(c.export_file_name(), "packer-b1.ovf");
    assert_eq!(
        c.forward,
        Some(NatForward {
            guest_port: 22,
            host_port_min: 2222,
            host_port_max: 4444
        })
    );
    assert_eq!(c.keygroup_interval, Duration::from_millis(100));
    assert!(!c.headless && !c.keep_registered && !c.skip_export);
    assert!(c.warnings.is_empty());
}

#[test]
fn the_bundled_platform_is_accepted() {
    let c = cfg(bundled()).unwrap();
    assert_eq!(c.disk_bus, DiskBus::Sata);
    assert_eq!(c.format, ExportFormat::Ova);
    assert_eq!(c.export_file_name(), "debian-12-x86_64.ova");
    assert!(c.nonrotational && c.discard && c.headless);
    assert_eq!(c.vboxmanage.len(), 1);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn osimager_1_11_data_is_accepted() {
    // Keys the original's bundled virtualbox platform and specs produce.
    let c = cfg(json!({
        "type": "virtualbox-iso", "vm_name": "x", "usb": true, "disable_shutdown": false,
        "gfx_controller": "vmsvga", "gfx_vram_size": 32, "rtc_time_base": "UTC",
        "hard_drive_interface": "scsi", "skip_export": true, "keep_registered": true,
        "guest_additions_mode": "disable", "cd_files": "/tmp/a/ks.cfg", "cd_label": "OEMDRV",
        "ssh_host": "127.0.0.1", "ssh_port": "{{ .SSHHostPort }}",
        "ssh_ciphers": ["aes128-cbc"], "ssh_key_exchange_algorithms": ["diffie-hellman-group14-sha1"],
        "winrm_timeout": "4h", "iso_target_path": "/iso/x.iso", "firmware": "efi",
        "vboxmanage": [["movevm", "{{.Name}}", "--folder=/tmp/vms/vbox"]]
    }))
    .unwrap();
    assert_eq!(c.forward.as_ref().unwrap().guest_port, 22);
    assert!(c.rtc_utc && c.usb && c.skip_export && c.keep_registered);
    assert_eq!(c.cd_files, vec![PathBuf::from("/tmp/a/ks.cfg")]);
    assert_eq!(c.firmware, "efi");
    let c = cfg(
        json!({"type": "virtualbox-iso", "guest_additions_mode": "disable",
                       "ssh_host_port_min": 3000, "ssh_host_port_max": 3001,
                       "host_port_min": 1, "communicator": "winrm"}),
    )
    .unwrap();
    assert_eq!(
        c.forward,
        Some(NatForward {
            guest_port: 5985,
            host_port_min: 3000,
            host_port_max: 3001
        })
    );
}

#[test]
fn unknown_and_unsupported_keys_are_reported_together() {
    let e = cfg(
        json!({"type": "virtualbox-iso", "memroy": 1024, "floppy_files": ["a"],
                       "qemuargs": [["-m", "1"]]}),
    )
    .unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("\"memroy\": unknown key; did you mean memory?"),
        "{m}"
    );
    assert!(
        m.contains("\"floppy_files\": not supported by the native VirtualBox driver"),
        "{m}"
    );
    assert!(m.contains("\"qemuargs\": unknown key"), "{m}");
    assert!(m.contains("--engine packer"), "{m}");
}

#[test]
fn values_are_checked() {
    for (k, v, needle) in [
        (
            "hard_drive_interface",
            json!("floppy"),
            "ide, sata, scsi, pcie, virtio",
        ),
        ("iso_interface", json!("scsi"), "ide, sata, virtio"),
        ("format", json!("vmdk"), "ovf, ova"),
        ("nic_type", json!("e1000"), "82540EM"),
        ("firmware", json!("uefi"), "bios, efi"),
        ("gfx_vram_size", json!(256), "at most 128"),
        ("gfx_efi_resolution", json!("big"), "WIDTHxHEIGHT"),
        ("sata_port_count", json!(31), "30"),
        ("boot_keygroup_interval", json!("fast"), "not a duration"),
        ("host_port_min", json!(70000), "not a TCP port"),
        ("vboxmanage", json!([["modifyvm", "{{ .Nope }}"]]), "Nope"),
        ("vboxmanage", json!("modifyvm x"), "list of commands"),
        ("guest_additions_mode", json!("upload"), "attach"),
        ("type", json!("qemu"), "virtualbox-iso"),
        ("vm_name", json!("a/b"), "plain file name"),
        ("disable_shutdown", json!(true), "not supported natively"),
        ("acpi_shutdown", json!("true"), "not supported natively"),
    ] {
        let mut b = json!({"type": "virtualbox-iso", "guest_additions_mode": "disable"});
        b[k] = v;
        let e = cfg(b).unwrap_err();
        assert_eq!(e.key, k, "{e}");
        assert!(e.to_string().contains(needle), "{k}: {e}");
    }
    let e = cfg(
        json!({"type": "virtualbox-iso", "host_port_min": 5000, "host_port_max": 4000,
                       "guest_additions_mode": "disable"}),
    )
    .unwrap_err();
    assert!(e.to_string().contains("above"), "{e}");
}

#[test]
fn missing_guest_additions_mode_warns() {
    let c = cfg(json!({"type": "virtualbox-iso"})).unwrap();
    assert_eq!(c.guest_additions, GuestAdditions::Disable);
    assert!(
        c.warnings[0].contains("guest_additions_mode"),
        "{:?}",
        c.warnings
    );
}

#[test]
fn modifyvm_spellings_per_version() {
    let c = cfg(
        json!({"type": "virtualbox-iso", "guest_additions_mode": "disable", "cpus": 2,
                       "memory": 1024}),
    )
    .unwrap();
    let v6 = setup::modifyvm_hardware(&c, &ver("6.1.50r161033"));
    let v7 = setup::modifyvm_hardware(&c, &ver("7.0.16_Ubuntur162802"));
    let v71 = setup::modifyvm_hardware(&c, &ver("7.1.4r165100"));
    for a in [&v6, &v7, &v71] {
        assert_eq!(&a[..2], ["modifyvm", "packer-b1"]);
        assert!(has(a, "--cpus", "2") && has(a, "--ioapic", "on") && has(a, "--memory", "1024"));
        assert!(has(a, "--boot1", "disk") && has(a, "--boot2", "dvd"));
        assert!(has(a, "--nictype1", "82540EM") && has(a, "--firmware", "bios"));
        assert!(has(a, "--usb", "off") && has(a, "--rtcuseutc", "off"));
    }
    assert!(has(&v6, "--audio", "none") && !flag(&v6, "--audio-driver"));
    assert!(has(&v7, "--audio-driver", "none") && !flag(&v7, "--audio"));
    assert_eq!(v7, v71);
    let none = cfg(
        json!({"type": "virtualbox-iso", "guest_additions_mode": "disable",
                          "audio_controller": "none"}),
    )
    .unwrap();
    assert!(has(
        &setup::modifyvm_hardware(&none, &ver("7.0.0r1")),
        "--audio-enabled",
        "off"
    ));
    assert!(has(
        &setup::modifyvm_hardware(&none, &ver("6.1.0r1")),
        "--audio",
        "none"
    ));
}

#[test]
fn localhostreachable_only_on_7x() {
    let c = cfg(bundled()).unwrap();
    let v6 = setup::modifyvm_nat(&c, &ver("6.1.26_Ubuntur145957"));
    assert_eq!(v6, ["modifyvm", "debian-12-x86_64", "--nic1", "nat"]);
    for v in ["7.0.0_BETA1r151234", "7.0.20r163906", "7.1.16r172425"] {
        let a = setup::modifyvm_nat(&c, &ver(v));
        assert!(has(&a, "--nat-localhostreachable1", "on"), "{v}: {a:?}");
    }
    assert_eq!(
        setup::add_forward("vm", 3333, 22),
        [
            "modifyvm",
            "vm",
            "--natpf1",
            "packercomm,tcp,127.0.0.1,3333,,22"
        ]
    );
}

#[test]
fn drives_are_laid_out_on_their_controllers() {
    // SATA disk + ISO on IDE (the bundled platform): IDE 0/0 holds the ISO.
    let c = cfg(bundled()).unwrap();
    let mut l = Layout::default();
    for (p, _) in setup::disk_paths(&c, Path::new("/w")) {
        l.add(c.disk_bus, MediumKind::Hdd, p).unwrap();
    }
    l.add(c.iso_bus, MediumKind::Dvd, "/isos/x.iso".into())
        .unwrap();
    let a = &l.attachments;
    assert_eq!((a[0].controller, a[0].port, a[0].device), ("SATA", 0, 0));
    assert_eq!(a[0].medium, PathBuf::from("/w/debian-12-x86_64.vdi"));
    assert_eq!((a[1].controller, a[1].port, a[1].device), ("IDE", 0, 0));
    let ctl = l.controllers(&c);
    assert_eq!(
        ctl[0],
        [
            "storagectl",
            "debian-12-x86_64",
            "--name",
            "IDE",
            "--add",
            "ide"
        ]
    );
    assert_eq!(
        ctl[1],
        [
            "storagectl",
            "debian-12-x86_64",
            "--name",
            "SATA",
            "--add",
            "sata",
            "--portcount",
            "1"
        ]
    );
    let att = a[0].attach_args(&c);
    assert!(has(&att, "--nonrotational", "on") && has(&att, "--discard", "on"));
    assert!(has(&att, "--type", "hdd"));
    assert_eq!(
        a[1].detach_args("vm"),
        [
            "storageattach",
            "vm",
            "--storagectl",
            "IDE",
            "--port",
            "0",
            "--device",
            "0",
            "--type",
            "dvddrive",
            "--medium",
            "none"
        ]
    );
    // Everything on SATA: the ISO takes the port after the disks (not Packer's port 13).
    let c = cfg(
        json!({"type": "virtualbox-iso", "guest_additions_mode": "disable",
                       "hard_drive_interface": "sata", "iso_interface": "sata",
                       "disk_additional_size": [1024], "sata_port_count": 1}),
    )
    .unwrap();
    let mut l = Layout::default();
    let disks = setup::disk_paths(&c, Path::new("/w"));
    assert_eq!(disks[1], (PathBuf::from("/w/packer-b1-1.vdi"), 1024));
    for (p, _) in disks {
        l.add(c.disk_bus, MediumKind::Hdd, p).unwrap();
    }
    l.add(c.iso_bus, MediumKind::Dvd, "/i.iso".into()).unwrap();
    assert_eq!(l.attachments[2].port, 2);
    assert!(l.controllers(&c)[1].ends_with(&["--portcount".to_string(), "3".to_string()]));
    // IDE has four slots.
    let mut l = Layout::default();
    for i in 0..4 {
        l.add(DiskBus::Ide, MediumKind::Dvd, format!("/{i}").into())
            .unwrap();
    }
    assert!(l.add(DiskBus::Ide, MediumKind::Dvd, "/5".into()).is_err());
}

#[test]
fn user_commands_are_templated() {
    let c = cfg(bundled()).unwrap();
    let f = c.fields(Some(&crate::HttpEndpoint {
        ip: "10.0.2.2".into(),
        port: 8123,
    }));
    let r = setup::render_command(&c.vboxmanage[0], &f).unwrap();
    assert_eq!(&r[..2], ["modifyvm", "debian-12-x86_64"]);
    let r = setup::render_command(&["x".into(), "{{ .HTTPIP }}:{{.HTTPPort}}".into()], &f).unwrap();
    assert_eq!(r[1], "10.0.2.2:8123");
}

#[test]
fn the_registry_builds_virtualbox_natively() {
    let reg = crate::DriverRegistry::builtin();
    assert!(reg.supports("virtualbox-iso") && reg.supports("qemu"));
    let d = reg.make(bundled().as_object().unwrap(), env());
    assert!(d.is_ok());
    let e = reg
        .make(
            json!({"type": "virtualbox-iso", "bogus": 1})
                .as_object()
                .unwrap(),
            env(),
        )
        .err()
        .unwrap();
    assert!(e.to_string().contains("bogus"), "{e}");
}

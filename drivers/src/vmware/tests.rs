use super::vmx::{buses, clean, enable_vnc, initial};
use super::*;
use crate::DriverEnv;
use serde_json::{json, Value};
use std::path::Path;

fn env() -> DriverEnv {
    DriverEnv {
        build_name: "b".into(),
        work_dir: "/w".into(),
        log_dir: "/l".into(),
        vars: vec![("PATH".into(), "/nonexistent".into())],
    }
}

fn cfg(v: Value) -> Result<VmwareConfig, ConfigError> {
    VmwareConfig::from_builder(v.as_object().unwrap(), env())
}

/// The builder block the bundled platforms/vmware.json resolves to (values as OSImager
/// renders them: numbers as strings, booleans as booleans).
fn bundled() -> Value {
    json!({
        "type": "vmware-iso", "vm_name": "web1", "output_directory": "/vms/vmware/web1",
        "iso_url": "/iso/x.iso", "iso_checksum": "none", "cpus": "2", "cores": "1",
        "memory": "2048", "disk_size": "20480", "disk_adapter_type": "pvscsi",
        "disk_type_id": "0", "network_adapter_type": "vmxnet3", "network": "nat",
        "headless": true, "vnc_bind_address": "127.0.0.1", "vnc_disable_password": true,
        "http_directory": "/tmp/x", "http_bind_address": "127.0.0.1", "boot_wait": "5s",
        "shutdown_timeout": "15m", "skip_compaction": false, "vmx_data": {"firmware": "bios"},
        "guest_os_type": "debian12-64", "ssh_username": "root", "ssh_password": "pw",
        "boot_command": ["<esc>"], "shutdown_command": "poweroff"
    })
}

#[test]
fn defaults_are_packers() {
    let c = cfg(json!({"type": "vmware-iso", "network_adapter_type": "e1000"})).unwrap();
    assert_eq!(c.vm_name, "packer-b");
    assert_eq!(c.guest_os_type, "other-64");
    assert_eq!(c.version, 21);
    assert_eq!(c.memory_mib, 512);
    assert_eq!(c.disk_size_mib, 40000);
    assert_eq!(c.disk_type_id, 1);
    assert_eq!(c.disk_adapter_type, "lsilogic");
    assert_eq!(c.network, "nat");
    assert_eq!(c.format, Format::Vmx);
    assert_eq!(c.boot_key_interval, DEFAULT_KEY_INTERVAL);
    let v = c.vnc.as_ref().unwrap();
    assert_eq!(
        (v.bind_address.as_str(), v.port_min, v.port_max),
        ("127.0.0.1", 5900, 6000)
    );
    assert!(!v.disable_password, "a VNC password is the default");
    assert_eq!(c.comm_port, Some(22));
    assert_eq!(c.disk_names(), ["disk.vmdk"]);
}

#[test]
fn bundled_platform_block_is_accepted() {
    let c = cfg(bundled()).unwrap();
    assert_eq!(
        (c.cpus, c.cores, c.memory_mib, c.disk_size_mib),
        (Some(2), Some(1), 2048, 20480)
    );
    assert_eq!(c.disk_adapter_type, "pvscsi");
    assert_eq!(c.disk_type_id, 0);
    assert!(c.vnc.as_ref().unwrap().disable_password);
}

#[test]
fn bad_values_name_their_key() {
    let mut b = bundled();
    b["network_adapter_type"] = json!("");
    assert_eq!(cfg(b).unwrap_err().key, "network_adapter_type");
    for (k, v) in [
        ("version", json!(14)),
        ("disk_type_id", json!(9)),
        ("firmware", json!("uefi")),
        ("format", json!("qcow2")),
        ("serial", json!("PIPE:/tmp/x")),
        ("parallel", json!("FILE:/tmp/p")),
        ("vnc_port_min", json!(7000)),
        ("vnc_bind_address", json!("localhost")),
        ("usb_version", json!("3.1")),
        ("disk_adapter_type", json!("virtio")),
        ("boot_key_interval", json!("fast")),
    ] {
        let mut b = bundled();
        b[k] = v;
        let e = cfg(b).unwrap_err();
        assert_eq!(e.key, k, "{e}");
        assert!(e.to_string().starts_with("VMware builder key"), "{e}");
    }
    let mut b = bundled();
    b["disable_vnc"] = json!(true);
    assert_eq!(cfg(b).unwrap_err().key, "disable_vnc");
}

#[test]
fn ovf_without_ovftool_fails_at_validation() {
    let mut b = bundled();
    b["format"] = json!("ova");
    let e = cfg(b.clone()).unwrap_err();
    assert_eq!(e.key, "format");
    assert!(e.to_string().contains("ovftool"), "{e}");
    assert!(e.to_string().contains("use format \"vmx\""), "{e}");
    b["skip_export"] = json!(true);
    assert!(cfg(b).is_ok(), "skip_export needs no ovftool");
}

#[test]
fn registry_builds_vmware_iso_and_validates() {
    let r = crate::DriverRegistry::builtin();
    assert!(r.supports("vmware-iso"));
    assert!(r.make(bundled().as_object().unwrap(), env()).is_ok());
    let mut b = bundled();
    b["floppy_files"] = json!(["a.cfg"]);
    let e = r.make(b.as_object().unwrap(), env()).err().unwrap();
    assert!(e.to_string().contains("floppy_files"), "{e}");
}

#[test]
fn buses_follow_packer() {
    let b = buses("lsilogic", None);
    assert_eq!(
        (b.disk_bus, b.cdrom_bus, b.cdrom_unit, b.scsi_present),
        ("scsi", "ide", 0, true)
    );
    let b = buses("sata", None);
    assert_eq!(
        (b.disk_bus, b.cdrom_bus, b.cdrom_unit, b.sata_present),
        ("sata", "sata", 1, true)
    );
    let b = buses("nvme", None);
    assert_eq!(
        (
            b.disk_bus,
            b.cdrom_bus,
            b.cdrom_unit,
            b.nvme_present,
            b.sata_present
        ),
        ("nvme", "sata", 0, true, true)
    );
    let b = buses("ide", None);
    assert_eq!((b.disk_bus, b.cdrom_bus, b.cdrom_unit), ("ide", "ide", 1));
    let b = buses("pvscsi", Some("sata"));
    assert_eq!(
        (
            b.scsi_virtual_dev.as_str(),
            b.cdrom_bus,
            b.cdrom_unit,
            b.sata_present
        ),
        ("pvscsi", "sata", 0, true)
    );
}

#[test]
fn initial_vmx_has_packers_keys_and_vmx_data_on_top() {
    let mut b = bundled();
    b["vmx_data"] = json!({"firmware": "efi", "ethernet0.pciSlotNumber": "99", "Custom.Key": 7});
    b["disk_additional_size"] = json!([1024, 2048]);
    let c = cfg(b).unwrap();
    let (v, tmp) = initial(
        &c,
        Some(Path::new("/iso/x.iso")),
        Path::new("/l/web1-serial.log"),
    );
    let expect = [
        ("displayname", "web1"),
        ("guestos", "debian12-64"),
        ("numvcpus", "2"),
        ("cpuid.corespersocket", "1"),
        ("memsize", "2048"),
        ("virtualhw.version", "21"),
        ("config.version", "8"),
        ("firmware", "efi"),
        ("nvram", "web1.nvram"),
        ("extendedconfigfile", "web1.vmxf"),
        ("floppy0.present", "FALSE"),
        ("bios.bootorder", "hdd,cdrom"),
        ("powertype.poweroff", "soft"),
        ("ethernet0.connectiontype", "nat"),
        ("ethernet0.virtualdev", "vmxnet3"),
        ("ethernet0.addresstype", "generated"),
        ("ethernet0.pcislotnumber", "99"),
        ("scsi0.present", "TRUE"),
        ("scsi0.virtualdev", "pvscsi"),
        ("scsi0:0.filename", "disk.vmdk"),
        // The CD-ROM is on another bus: extra disks follow the main one (Packer's unitSkip 1).
        ("scsi0:1.filename", "disk-1.vmdk"),
        ("scsi0:2.filename", "disk-2.vmdk"),
        ("ide0:0.filename", "/iso/x.iso"),
        ("ide0:0.devicetype", "cdrom-image"),
        ("serial0.filename", "/l/web1-serial.log"),
        ("serial0.filetype", "file"),
        ("msg.autoanswer", "true"),
        ("uuid.action", "create"),
        ("custom.key", "7"),
        ("sound.present", "FALSE"),
        ("vhv.enable", "FALSE"),
    ];
    for (k, val) in expect {
        assert_eq!(v.get(k), Some(val), "{k}");
    }
    assert!(v.get("usb.present").is_none());
    assert_eq!(tmp.cdrom.as_deref(), Some("ide0:0"));
    assert!(tmp.serial);
    // Sorted, lower-cased, quoted; and it parses back to the same map.
    let text = v.encode();
    assert!(text.starts_with(".encoding = \"UTF-8\"\n"), "{text}");
    assert_eq!(Vmx::parse(&text), v);
}

#[test]
fn vmx_parse_tolerates_vmware_rewrites() {
    let v = Vmx::parse("# comment\n.encoding = \"UTF-8\"\r\nDisplayName = \"a b\"\n  numvcpus=\"2\"\nbad line\nnvme0:0.virtualSSD = 1\n");
    assert_eq!(v.get("displayname"), Some("a b"));
    assert_eq!(v.get("NUMVCPUS"), Some("2"));
    assert!(v.encode().contains("nvme0:0.virtualSSD = 1\n"));
}

#[test]
fn clean_resets_cdrom_disables_build_serial_and_removes_vnc() {
    let c = cfg(bundled()).unwrap();
    let (mut v, tmp) = initial(&c, Some(Path::new("/iso/x.iso")), Path::new("/l/s.log"));
    enable_vnc(&mut v, "127.0.0.1", 5977, Some("pw123456"));
    assert_eq!(v.get("remotedisplay.vnc.password"), Some("pw123456"));
    v.set("ethernet0.generatedAddress", "00:0c:29:aa:bb:cc");
    v.set("ethernet0.generatedAddressOffset", "0");
    let mut post = std::collections::BTreeMap::new();
    post.insert("annotation".to_string(), "built".to_string());
    clean(&mut v, &tmp, &post, false);
    assert_eq!(v.get("ide0:0.devicetype"), Some("cdrom-raw"));
    assert_eq!(v.get("ide0:0.filename"), Some("auto detect"));
    assert_eq!(v.get("ide0:0.clientdevice"), Some("TRUE"));
    assert_eq!(v.get("serial0.present"), Some("FALSE"));
    assert!(v.get("serial0.filename").is_none());
    assert!(
        v.0.keys().all(|k| !k.starts_with("remotedisplay.")),
        "{:?}",
        v.0.keys()
    );
    assert!(v.get("ethernet0.generatedaddress").is_none());
    assert!(v.get("ethernet0.generatedaddressoffset").is_none());
    assert_eq!(v.get("ethernet0.virtualdev"), Some("vmxnet3"));
    assert_eq!(v.get("annotation"), Some("built"));
    clean(&mut v, &tmp, &post, true);
    assert!(v.0.keys().all(|k| !k.starts_with("ethernet")));
}

#[test]
fn vmrest_config_is_bcrypt_of_salt_and_password() {
    let text = vmrest_config_text(8697, "u", "P4ss!word", "s@lt").unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines[0], "port=8697");
    assert_eq!(lines[1], "username=u");
    let hash = lines[2].strip_prefix("password=").unwrap();
    assert!(hash.starts_with("$2a$10$"), "{hash}");
    assert!(pwhash::bcrypt::verify("s@ltP4ss!word", hash));
    assert!(!pwhash::bcrypt::verify("P4ss!word", hash));
    assert_eq!(lines[3], "salt=s@lt");
    assert!(!text.contains("P4ss!word"));
}

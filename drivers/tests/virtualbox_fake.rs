//! Contract tests of the VirtualBox driver against the FAKE VBoxManage
//! (`tests/fakes/vboxmanage/`, a stand-in following VBoxManage's documented CLI and output
//! formats; VirtualBox cannot run on these machines). The fake keeps VM state on disk and holds
//! forwarded ports in a stand-in VM process. Here: the whole lifecycle on 7.x, 6.x (which
//! rejects 7.x options), export variants, cleanup and leave_running. The other injected
//! failures (error with exit status 0, lock after power-off, keyboard queue overflow, stolen
//! forward port, ignored power button) are in `virtualbox_faults.rs`.

#[path = "../../tests/ova_check/mod.rs"]
mod ova_check;
mod vbox_common;

use osimager_drivers::bootcmd::{parse_str, Fields};
use osimager_drivers::Driver;
use serde_json::json;
use std::time::Duration;
use vbox_common::*;

/// Decode set-1 scancodes (US layout) back into text; special keys as `<name>`.
fn decode(codes: &[u8]) -> String {
    let rows: [(&str, &str, u8); 4] = [
        ("1234567890-=", "!@#$%^&*()_+", 0x02),
        ("qwertyuiop[]", "QWERTYUIOP{}", 0x10),
        ("asdfghjkl;'`", "ASDFGHJKL:\"~", 0x1e),
        ("\\zxcvbnm,./", "|ZXCVBNM<>?", 0x2b),
    ];
    let mut out = String::new();
    let mut shift = false;
    let mut ext = false;
    for &c in codes {
        if c == 0xe0 {
            ext = true;
            continue;
        }
        let make = c & 0x80 == 0;
        let code = c & 0x7f;
        if code == 0x2a && !ext {
            shift = make;
            continue;
        }
        if make {
            let s = match (ext, code) {
                (false, 0x39) => " ".to_string(),
                (false, 0x1c) => "<enter>".to_string(),
                (false, 0x01) => "<esc>".to_string(),
                (true, 0x4b) => "<left>".to_string(),
                (true, 0x53) => "<del>".to_string(),
                (false, _) => rows
                    .iter()
                    .find_map(|(lo, hi, start)| {
                        let i = code.checked_sub(*start)? as usize;
                        let row = if shift { hi } else { lo };
                        row.chars().nth(i).map(String::from)
                    })
                    .unwrap_or_else(|| format!("<{code:02x}>")),
                (true, _) => format!("<e0 {code:02x}>"),
            };
            out.push_str(&s);
        }
        ext = false;
    }
    out
}

#[tokio::test]
async fn full_lifecycle_on_virtualbox_7() {
    let s = Scratch::new(json!({"version": "7.1.4r165100"}));
    let mut d = driver(&s, json!({}));
    assert!(d.host_address().await.unwrap().guest_ip == "10.0.2.2");
    d.create(&media(&s)).await.unwrap();
    assert_eq!(d.version().unwrap().to_string(), "7.1.4r165100");
    assert_eq!(s.registered(), ["vbtest"]);
    let calls = s.calls();
    let argvs: Vec<&Vec<String>> = calls.iter().map(|(a, _)| a).collect();
    // Registered inside the build's work directory, NAT reaching the host's loopback (7.x),
    // the forward on 127.0.0.1 in the configured range, VRDP for the headless VM, the user's
    // vboxmanage command with {{ .Name }} rendered.
    let createvm = argvs.iter().find(|a| a[0] == "createvm").unwrap();
    assert!(createvm
        .join(" ")
        .contains(&format!("--basefolder {}", s.path().join("work").display())));
    assert!(argvs
        .iter()
        .any(|a| has_opt(a, "modifyvm", "--nat-localhostreachable1")));
    let port = d.ssh_host_port().unwrap();
    assert!((20000..=29999).contains(&port));
    assert!(argvs
        .iter()
        .any(|a| a.last().unwrap() == &format!("packercomm,tcp,127.0.0.1,{port},,22")));
    assert!(argvs.iter().any(|a| has_opt(a, "modifyvm", "--vrde")));
    assert!(argvs
        .iter()
        .any(|a| a[0] == "modifyvm" && a[1] == "vbtest" && a.contains(&"vmsvga".to_string())));
    // While configured, the port is held so no one else takes it.
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err());

    d.start().await.unwrap();
    let ssh = d.ssh_address(Duration::from_secs(5)).await.unwrap();
    assert_eq!((ssh.host.as_str(), ssh.port), ("127.0.0.1", port));
    // The stand-in VM holds the forward.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let startvm = s
        .calls()
        .into_iter()
        .find(|(a, _)| a[0] == "startvm")
        .unwrap()
        .0;
    assert_eq!(startvm[2..], ["--type", "headless"]);

    let text = "<esc>install Url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ks.cfg?a=\"B\"&x~|<left><del><enter>";
    let events = parse_str(text, &Fields::placeholders().with("HTTPPort", "8123")).unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    d.send_keys(&events, &|i, n| seen.lock().unwrap().push((i, n)))
        .await
        .unwrap();
    let calls = s.key_calls();
    assert!(calls.len() > 3, "{} calls", calls.len());
    for c in &calls {
        assert!(c.len() <= 25, "{} codes in one call", c.len());
        assert_ne!(c.last(), Some(&0xe0));
    }
    assert_eq!(
        decode(&calls.concat()),
        "<esc>install Url=http://10.0.2.2:8123/ks.cfg?a=\"B\"&x~|<left><del><enter>"
    );
    assert_eq!(
        seen.lock().unwrap().last(),
        Some(&(events.len(), events.len()))
    );
    // Typed keys never show in the call log's failure messages: typing went through once().
    let shot = s.path().join("shot.png");
    d.screenshot(&shot).await.unwrap();
    assert_eq!(&std::fs::read(&shot).unwrap()[..4], b"\x89PNG");

    d.request_shutdown().await.unwrap();
    assert!(d.wait_stopped(Duration::from_secs(30)).await.unwrap());
    let out = s.path().join("out");
    let files = d.export(&out).await.unwrap();
    assert_eq!(files, vec![out.join("vbtest.ova")]);
    let members = ova_check::tar_members(&files[0]);
    let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["vbtest.ovf", "vbtest.mf", "vbtest-disk001.vmdk"]);
    let mf = String::from_utf8(members[1].1.clone()).unwrap();
    ova_check::assert_manifest(&members, &mf);
    let ovf = String::from_utf8(members[0].1.clone()).unwrap();
    assert!(ovf.contains("ovf:href=\"vbtest-disk001.vmdk\""), "{ovf}");
    let calls = s.calls();
    let argvs: Vec<&Vec<String>> = calls.iter().map(|(a, _)| a).collect();
    let export_at = argvs.iter().position(|a| a[0] == "export").unwrap();
    let export = argvs[export_at];
    assert!(export.contains(&"--manifest".to_string()));
    // Before export: DVD emptied, COM1 off, the forward removed.
    let before = &argvs[..export_at];
    assert!(before
        .iter()
        .any(|a| a[0] == "storageattach" && a.last().unwrap() == "none"));
    assert!(before
        .iter()
        .any(|a| a[0] == "modifyvm" && a.ends_with(&["--uart1".into(), "off".into()])));
    assert!(before
        .iter()
        .any(|a| a[0] == "modifyvm" && a.ends_with(&["delete".into(), "packercomm".into()])));

    d.destroy().await.unwrap();
    assert!(s.registered().is_empty());
    assert!(!s.path().join("work").exists(), "work dir left");
    assert!(s.iso().exists(), "the installer ISO must survive");
    assert!(s
        .calls()
        .iter()
        .any(|(a, _)| a[..] == ["unregistervm", "vbtest", "--delete"]));
    // Idempotent.
    d.destroy().await.unwrap();
}

#[tokio::test]
async fn virtualbox_6_gets_no_7x_options_and_crlf_output_parses() {
    let s = Scratch::new(json!({"version": "6.1.26_Ubuntur145957", "crlf": true}));
    // The fake itself rejects the 7.x option, as 6.1 does.
    s.vboxmanage(&["createvm", "--name", "probe", "--register"]);
    let out = s.vboxmanage(&["modifyvm", "probe", "--nat-localhostreachable1", "on"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Unknown option: --nat-localhostreachable1")
    );
    s.vboxmanage(&["unregistervm", "probe", "--delete"]);

    let mut d = driver(&s, json!({}));
    d.create(&media(&s)).await.unwrap();
    d.start().await.unwrap();
    d.force_stop().await.unwrap();
    d.export(&s.path().join("out")).await.unwrap();
    d.destroy().await.unwrap();
    for (a, status) in s
        .calls()
        .into_iter()
        .filter(|(a, _)| !a.contains(&"probe".to_string()))
    {
        assert_ne!(status, 2, "syntax error from {a:?}");
        for opt in [
            "--nat-localhostreachable1",
            "--audio-driver",
            "--audio-enabled",
        ] {
            assert!(!a.contains(&opt.to_string()), "{opt} sent to 6.x: {a:?}");
        }
    }
    assert!(s
        .calls()
        .iter()
        .any(|(a, _)| has_opt(a, "modifyvm", "--audio")));
}

#[tokio::test]
async fn a_7x_option_in_vboxmanage_fails_clearly_on_6x() {
    let s = Scratch::new(json!({"version": "6.1.50r161033"}));
    let mut d = driver(
        &s,
        json!({"vboxmanage": [["modifyvm", "{{.Name}}", "--nic-type1", "virtio"]]}),
    );
    let e = d.create(&media(&s)).await.unwrap_err().to_string();
    assert!(
        e.contains("vboxmanage command failed") && e.contains("Unknown option: --nic-type1"),
        "{e}"
    );
    assert!(e.contains("syntax error"), "{e}");
    d.destroy().await.unwrap();
    assert!(s.registered().is_empty());
}

#[tokio::test]
async fn a_vm_of_the_same_name_is_never_touched() {
    let s = Scratch::new(json!({}));
    s.vboxmanage(&["createvm", "--name", "vbtest", "--register"]);
    let mut d = driver(&s, json!({}));
    let e = d.create(&media(&s)).await.unwrap_err().to_string();
    assert!(
        e.contains("already registered") && e.contains("unregistervm"),
        "{e}"
    );
    d.destroy().await.unwrap();
    assert_eq!(s.registered(), ["vbtest"]);
}

#[tokio::test]
async fn destroy_powers_off_a_running_vm_and_leave_running_keeps_it() {
    let s = Scratch::new(json!({}));
    let mut d = driver(&s, json!({}));
    d.create(&media(&s)).await.unwrap();
    d.start().await.unwrap();
    d.destroy().await.unwrap();
    assert!(s.registered().is_empty());

    let mut d = driver(&s, json!({}));
    d.create(&media(&s)).await.unwrap();
    d.start().await.unwrap();
    let left = d.leave_running();
    d.destroy().await.unwrap();
    assert_eq!(s.registered(), ["vbtest"]);
    let all = left.stop_commands.join("\n");
    assert!(
        all.contains("controlvm \"vbtest\" poweroff")
            && all.contains("unregistervm \"vbtest\" --delete"),
        "{all}"
    );
    assert!(
        left.items.iter().any(|i| i.contains("SSH to the guest")),
        "{:?}",
        left.items
    );
    s.vboxmanage(&["controlvm", "vbtest", "poweroff"]);
    s.vboxmanage(&["unregistervm", "vbtest", "--delete"]);
}

#[tokio::test]
async fn skip_export_copies_the_disk_and_keep_registered_keeps_the_vm() {
    let s = Scratch::new(json!({}));
    let mut d = driver(&s, json!({"skip_export": true, "keep_registered": true}));
    d.create(&media(&s)).await.unwrap();
    d.start().await.unwrap();
    d.force_stop().await.unwrap();
    let files = d.export(&s.path().join("out")).await.unwrap();
    assert_eq!(files, vec![s.path().join("out/vbtest.vdi")]);
    let disk = d.disks()[0].clone();
    assert!(
        disk.starts_with(s.home().join("VirtualBox VMs")),
        "{}",
        disk.display()
    );
    d.destroy().await.unwrap();
    assert_eq!(s.registered(), ["vbtest"]);
    assert!(disk.exists());
    s.vboxmanage(&["unregistervm", "vbtest", "--delete"]);
    assert!(!disk.exists());
}

#[tokio::test]
async fn cd_files_go_on_a_third_ide_drive_and_are_removed() {
    let s = Scratch::new(json!({}));
    let extra = s.path().join("answers.txt");
    std::fs::write(&extra, "x").unwrap();
    let mut d = driver(
        &s,
        json!({"hard_drive_interface": "ide", "cd_files": [extra.display().to_string()],
               "cd_content": {"ks.cfg": "text"}, "cd_label": "OEMDRV"}),
    );
    d.create(&media(&s)).await.unwrap();
    let cd = s.path().join("work/vbtest-cd.iso");
    assert!(cd.exists());
    let attach: Vec<String> = s
        .calls()
        .into_iter()
        .filter(|(a, _)| a[0] == "storageattach")
        .map(|(a, _)| format!("{} {} {} {}", a[3], a[5], a[7], a[11]))
        .collect();
    let disk = s.path().join("work/vbtest.vdi");
    assert_eq!(
        attach,
        [
            format!("IDE 0 0 {}", disk.display()),
            format!("IDE 0 1 {}", s.iso().display()),
            format!("IDE 1 0 {}", cd.display()),
        ]
    );
    d.destroy().await.unwrap();
    assert!(!cd.exists());
    assert!(s.iso().exists() && extra.exists());
}

#[tokio::test]
async fn ovf_export_with_output_filename_and_export_opts() {
    let s = Scratch::new(json!({}));
    let mut d = driver(
        &s,
        json!({"format": "ovf", "output_filename": "image", "export_opts": ["--ovf20"]}),
    );
    d.create(&media(&s)).await.unwrap();
    d.start().await.unwrap();
    d.force_stop().await.unwrap();
    let out = s.path().join("out");
    let files = d.export(&out).await.unwrap();
    assert_eq!(
        files,
        [
            out.join("image.ovf"),
            out.join("image-disk001.vmdk"),
            out.join("image.mf")
        ]
    );
    let mf = std::fs::read_to_string(out.join("image.mf")).unwrap();
    assert!(mf.starts_with("SHA256 (image.ovf) = "), "{mf}");
    let export = s
        .calls()
        .into_iter()
        .find(|(a, _)| a[0] == "export")
        .unwrap()
        .0;
    assert!(
        export.ends_with(&["--manifest".to_string(), "--ovf20".to_string()]),
        "{export:?}"
    );
    d.destroy().await.unwrap();
}

#[tokio::test]
async fn missing_vboxmanage_says_what_to_do() {
    let s = Scratch::new(json!({}));
    let mut env = s.env();
    env.vars = vec![("PATH".into(), "/nonexistent".into())];
    let cfg =
        osimager_drivers::virtualbox::VBoxConfig::from_builder(&builder(json!({})), env).unwrap();
    let mut d = osimager_drivers::virtualbox::VirtualBoxDriver::new(cfg);
    let e = d.create(&media(&s)).await.unwrap_err().to_string();
    assert!(
        e.contains("VBoxManage was not found") && e.contains("--engine packer"),
        "{e}"
    );
    d.destroy().await.unwrap();
}

#[tokio::test]
async fn version_warning_about_the_kernel_module_fails_early() {
    let s = Scratch::new(json!({"version_warning": true}));
    let mut d = driver(&s, json!({}));
    let e = d.create(&media(&s)).await.unwrap_err().to_string();
    assert!(e.contains("vboxconfig") && e.contains("not set up"), "{e}");
    d.destroy().await.unwrap();
}

//! `osimager doctor` on this host (issue 18), through the real binary in a newcomer's
//! environment (tests/newcomer_support).

mod newcomer_support;
use newcomer_support::{out, Home};
use std::path::Path;

fn kvm_probe() -> osimager_drivers::qemu::KvmCheck {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(osimager_drivers::qemu::kvm_usable(&format!(
            "qemu-system-{}",
            std::env::consts::ARCH
        )))
}

/// `doctor` on this host, with PATH limited to the system directories (no Ansible venv): the
/// CI machines have QEMU, qemu-img, socat and Packer 1.6.6, /dev/kvm present but unusable, no
/// VirtualBox and no VMware. Where the host differs, the test expects what the host has.
#[test]
fn doctor_reports_this_host() {
    let h = Home::new();
    let mut c = h.cmd(&["doctor"]);
    c.env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    let (ok, stdout, err) = out(c.output().unwrap());
    assert!(ok, "nothing is broken here: {stdout}{err}");
    eprintln!("{stdout}");
    let line = |id: &str| -> String {
        stdout
            .lines()
            .find(|l| {
                l.get(11..)
                    .is_some_and(|r| r.starts_with(&format!("{id} ")))
            })
            .unwrap_or_else(|| panic!("no {id} line in:\n{stdout}"))
            .to_string()
    };
    let arch = std::env::consts::ARCH;
    assert!(
        line("qemu").starts_with(&format!(
            "  ok       qemu              QEMU found: /usr/bin/qemu-system-{arch} (QEMU emulator \
             version"
        )),
        "{stdout}"
    );
    let kvm = kvm_probe();
    if !Path::new("/dev/kvm").exists() {
        assert!(line("kvm").contains("KVM not available (/dev/kvm does not exist)"));
    } else if kvm.usable {
        assert!(line("kvm").starts_with("  ok       kvm               KVM usable"));
    } else {
        // This host: present but unusable, said exactly so, with what it means.
        assert_eq!(
            line("kvm"),
            format!(
                "  warn     kvm               KVM present but unusable: {}; QEMU builds run \
                 under TCG (software emulation, several times slower)",
                kvm.reason
            )
        );
        assert!(
            stdout.contains("Can build: qemu (native engine, TCG)"),
            "{stdout}"
        );
    }
    let no_vbox = !Path::new("/usr/bin/VBoxManage").exists();
    if no_vbox {
        assert_eq!(
            line("virtualbox"),
            "  missing  virtualbox        VirtualBox not found (no VBoxManage on PATH): \
             virtualbox/… targets cannot be built here"
        );
    }
    if !Path::new("/usr/bin/vmrun").exists() && !Path::new("/usr/bin/vmrest").exists() {
        assert_eq!(
            line("vmware"),
            "  missing  vmware            VMware not found (no vmrun or vmrest on PATH): \
             vmware/… targets cannot be built here"
        );
    }
    assert!(line("ansible-playbook")
        .starts_with("  missing  ansible-playbook  ansible-playbook not found on PATH"));
    assert!(
        stdout.contains("fix: install Ansible into a venv"),
        "{stdout}"
    );
    assert!(
        line("packer").contains("Packer 1.6.6 found: /usr/bin/packer"),
        "{stdout}"
    );
    assert!(line("secrets").starts_with("  missing  secrets           no secret store"));
    assert!(line("locations").starts_with("  missing  locations         no locations in"));
    assert!(stdout.ends_with("Next: osimager init\n"), "{stdout}");

    // With (fake) VirtualBox and VMware command-line tools on PATH they are found, and the
    // platforms they serve are listed as buildable, natively and through Packer. The fakes answer
    // `VBoxManage --version` as VirtualBox 7.0 does; nothing else is asked of them.
    let fakes = tempfile::tempdir().unwrap();
    for (name, body) in [
        ("VBoxManage", "#!/bin/sh\necho 7.0.14r161095\n"),
        ("vmrun", "#!/bin/sh\nexit 0\n"),
    ] {
        let p = fakes.path().join(name);
        std::fs::write(&p, body).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut c = h.cmd(&["doctor", "--json", "--no-kvm-probe"]);
    c.env("PATH", format!("{}:/usr/bin:/bin", fakes.path().display()));
    let (ok, stdout, err) = out(c.output().unwrap());
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let check = |id: &str| {
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(check("virtualbox")["status"], "ok");
    assert_eq!(check("virtualbox")["version"], "7.0.14r161095");
    assert_eq!(check("vmware")["status"], "ok");
    if no_vbox {
        assert_eq!(r["accelerator"]["name"], "tcg");
        let platforms: Vec<String> = r["can_build"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                format!(
                    "{}/{}",
                    b["platform"].as_str().unwrap(),
                    b["engine"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            platforms,
            [
                "qemu/native",
                "qemu/packer",
                "virtualbox/native",
                "virtualbox/packer",
                "vmware/native",
                "vmware/packer"
            ]
        );
    }
}

use super::*;
use serde_json::json;

fn plan(builder: Value, provisioners: Value) -> BuildPlan {
    BuildPlan {
        builder: builder.as_object().unwrap().clone(),
        provisioners: provisioners.as_array().unwrap().clone(),
        variables: json!({"ssh-username": "builder"})
            .as_object()
            .unwrap()
            .clone(),
        ..Default::default()
    }
}

fn ansible() -> Value {
    json!([{"type": "ansible", "playbook_file": "config.yml"}])
}

fn host(user: &str) -> Host {
    Host {
        local_user: Some(user.into()),
        kvm: None,
    }
}

fn v(s: &str) -> Option<PackerVersion> {
    PackerVersion::parse(s)
}

#[test]
fn root_caller_with_a_non_root_communicator_gets_the_communicator_user() {
    let mut p = plan(
        json!({"type": "qemu", "communicator": "ssh", "ssh_username": "{{ user `ssh-username` }}"}),
        ansible(),
    );
    let a = adapt(&mut p, v("1.6.6"), &host("root"));
    // Written as in the builder, so Packer renders it the same way.
    assert_eq!(p.provisioners[0]["user"], "{{ user `ssh-username` }}");
    assert!(a.proxy_ssh_rsa);
    assert_eq!(a.notes.len(), 2, "{:?}", a.notes);
    assert!(a.notes[0].contains("\"builder\""), "{}", a.notes[0]);
    // Newer Packer: the user default is unchanged upstream, the ssh-rsa key is gone.
    let mut p = plan(json!({"type": "null", "ssh_username": "testos"}), ansible());
    let a = adapt(&mut p, v("1.11.2"), &host("alice"));
    assert_eq!(p.provisioners[0]["user"], "testos");
    assert!(!a.proxy_ssh_rsa);
}

#[test]
fn nothing_changes_when_it_is_not_needed() {
    // The communicator user is the local user.
    let mut p = plan(
        json!({"type": "qemu", "ssh_username": "{{user `ssh-username`}}"}),
        ansible(),
    );
    let before = p.clone();
    let a = adapt(&mut p, v("1.11.0"), &host("builder"));
    assert_eq!(p.provisioners, before.provisioners);
    assert_eq!(a, Adapted::default());
    // The provisioner chose its user, or brings its own inventory.
    for extra in [
        json!({"user": "root"}),
        json!({"inventory_file": "hosts.ini"}),
    ] {
        let mut prov = ansible();
        for (k, x) in extra.as_object().unwrap() {
            prov[0][k] = x.clone();
        }
        let mut p = plan(json!({"type": "qemu", "ssh_username": "testos"}), prov);
        let before = p.clone();
        adapt(&mut p, v("1.11.0"), &host("root"));
        assert_eq!(p.provisioners, before.provisioners);
    }
    // No proxy: Packer already uses the communicator's user and connects straight to the guest.
    for use_proxy in [json!(false), json!("false"), json!("F")] {
        let mut prov = ansible();
        prov[0]["use_proxy"] = use_proxy;
        let mut p = plan(json!({"type": "qemu", "ssh_username": "testos"}), prov);
        let a = adapt(&mut p, v("1.6.6"), &host("root"));
        assert!(p.provisioners[0].get("user").is_none());
        assert_eq!(a, Adapted::default());
    }
    // Not an SSH communicator, or no Ansible at all.
    let mut p = plan(
        json!({"type": "qemu", "communicator": "winrm", "winrm_username": "Administrator"}),
        ansible(),
    );
    adapt(&mut p, v("1.6.6"), &host("root"));
    assert!(p.provisioners[0].get("user").is_none());
    let mut p = plan(
        json!({"type": "qemu", "ssh_username": "testos"}),
        json!([{"type": "shell", "inline": ["true"]}]),
    );
    assert_eq!(adapt(&mut p, v("1.6.6"), &host("root")), Adapted::default());
}

#[test]
fn unknown_local_user_or_unrenderable_name_still_sets_the_user() {
    let mut p = plan(json!({"type": "qemu", "ssh_username": "testos"}), ansible());
    let none = Host {
        local_user: None,
        kvm: None,
    };
    adapt(&mut p, v("1.6.6"), &none);
    assert_eq!(p.provisioners[0]["user"], "testos");
    let mut p = plan(
        json!({"type": "qemu", "ssh_username": "{{ .Unknown }}"}),
        ansible(),
    );
    adapt(&mut p, v("1.6.6"), &host("root"));
    assert_eq!(p.provisioners[0]["user"], "{{ .Unknown }}");
}

#[test]
fn kvm_that_cannot_run_guests_means_tcg_for_packer() {
    let broken = KvmState {
        device_opens: true,
        usable: false,
        reason: "the KVM probe guest failed".into(),
    };
    let with = |kvm: KvmState| Host {
        local_user: Some("root".into()),
        kvm: Some(kvm),
    };
    // No accelerator: Packer would pick KVM because /dev/kvm opens.
    let mut p = plan(json!({"type": "qemu"}), json!([]));
    let a = adapt(&mut p, v("1.6.6"), &with(broken.clone()));
    assert_eq!(p.builder["accelerator"], "tcg");
    assert!(
        a.notes[0].contains("KVM is not usable here"),
        "{:?}",
        a.notes
    );
    // Working KVM, or /dev/kvm that does not open (Packer picks TCG itself): unchanged.
    for kvm in [
        KvmState {
            usable: true,
            ..broken.clone()
        },
        KvmState {
            device_opens: false,
            ..broken.clone()
        },
    ] {
        let mut p = plan(json!({"type": "qemu"}), json!([]));
        assert_eq!(adapt(&mut p, None, &with(kvm)), Adapted::default());
        assert!(p.builder.get("accelerator").is_none());
    }
    // Explicit kvm stays as asked, with a warning; tcg, other builders, other emulators and
    // dry runs (no probe) are left alone.
    let mut p = plan(json!({"type": "qemu", "accelerator": "kvm"}), json!([]));
    let a = adapt(&mut p, v("1.6.6"), &with(broken.clone()));
    assert_eq!(p.builder["accelerator"], "kvm");
    assert!(a.notes[0].starts_with("warning:"), "{:?}", a.notes);
    for b in [
        json!({"type": "qemu", "accelerator": "tcg"}),
        json!({"type": "virtualbox-iso"}),
        json!({"type": "qemu", "qemu_binary": "qemu-system-aarch64"}),
    ] {
        let mut p = plan(b.clone(), json!([]));
        assert_eq!(
            adapt(&mut p, v("1.6.6"), &with(broken.clone())),
            Adapted::default()
        );
        assert_eq!(Value::Object(p.builder), b);
    }
    let mut p = plan(json!({"type": "qemu"}), json!([]));
    assert_eq!(adapt(&mut p, v("1.6.6"), &host("root")), Adapted::default());
}

#[test]
fn local_user_is_the_password_entry_of_our_uid() {
    let name = local_user_name().expect("this process has a password entry");
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    assert_eq!(name, String::from_utf8_lossy(&out.stdout).trim());
}

//! The VM's process dies under the build (no guest): the FAKE driver runs a real stand-in
//! process for the VM (`spawn_process`), which the test SIGKILLs while the build waits for SSH
//! and while it provisions. The build must notice at once (not at `ssh_timeout`), say the VM
//! stopped, stop the provisioner (with its children) and clean up. The same cells with real
//! QEMU are in guest_cells.rs.

use crate::harness::{
    assert_clean, fake_builder, kill_vm_process, Ended, FakeKnobs, Scratch, Spec, OURS,
};
use crate::ssh_common::{prepare, Sshd};
use crate::support::process::{eventually, processes_mentioning};
use serde_json::json;
use std::time::Duration;

#[test]
fn vm_killed_while_waiting_for_ssh_fails_at_once() {
    let s = Scratch::new("vm-kill-ssh");
    // Nobody listens there: SSH never answers.
    let port = crate::support::free_port();
    let spec = Spec {
        driver: "fake".into(),
        fake: FakeKnobs {
            spawn_process: true,
            ssh_port: Some(port),
            ..Default::default()
        },
        builder: fake_builder(
            &s.out(),
            json!({"communicator": "ssh", "ssh_username": "root",
                   "ssh_password": "fault-secret-pw", "ssh_timeout": "10m"}),
        ),
        ..Spec::default()
    };
    let mut child = s.spawn(&spec);
    child.wait_line("==> wait for ssh", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(1));
    kill_vm_process(&s, "fake-vm");
    let ended = Ended::wait(child, Duration::from_secs(60));
    eprintln!("exited {:.1}s after the kill", ended.secs);
    ended.assert_failed(
        "wait for ssh",
        &[
            "the VM stopped while waiting for SSH: the fake VM process exited",
            "SIGKILL",
        ],
    );
    assert!(!ended.text.contains("fault-secret-pw"), "secret leaked");
    assert_clean(&s, &s.out(), "VM killed while waiting for SSH");
}

/// The provisioner (shell-local, running a script of the scratch dir, so a survivor would be
/// found; a shell waiting for `sleep`, which notices nothing) is running when the VM dies: the
/// step fails at once and the provisioner's whole process tree is gone.
#[test]
fn vm_killed_while_provisioning_stops_the_provisioner() {
    let s = Scratch::new("vm-kill-prov");
    let files = prepare(false);
    let mut sshd = Sshd::start(&files, crate::support::free_port(), None);
    sshd.wait_listening();
    let marker = s.path().join("linger.sh");
    std::fs::write(&marker, "sleep 600\n").unwrap();
    let spec = Spec {
        driver: "fake".into(),
        fake: FakeKnobs {
            spawn_process: true,
            ssh_port: Some(sshd.port),
            ..Default::default()
        },
        builder: fake_builder(
            &s.out(),
            json!({"communicator": "ssh", "ssh_username": "root",
                   "ssh_private_key_file": files.client_key.display().to_string(),
                   "ssh_timeout": "30s"}),
        ),
        provisioners: Some(vec![json!({
            "type": "shell-local",
            "inline": [format!("echo fault-cell-provisioning-started; sh {}; true", marker.display())],
        })]),
        ..Spec::default()
    };
    let mut child = s.spawn(&spec);
    child.wait_line("fault-cell-provisioning-started", Duration::from_secs(60));
    assert!(
        eventually(Duration::from_secs(10), || {
            processes_mentioning(&marker.display().to_string(), OURS)
                .iter()
                .any(|p| p.contains("sh "))
        }),
        "the provisioner's command runs"
    );
    kill_vm_process(&s, "fake-vm");
    let ended = Ended::wait(child, Duration::from_secs(60));
    ended.assert_failed("provision", &["the VM stopped while provisioning"]);
    assert_clean(&s, &s.out(), "VM killed while provisioning");
}

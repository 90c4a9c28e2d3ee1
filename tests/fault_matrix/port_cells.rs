//! Port faults with the real QEMU driver and the real HTTP server: the answer-file HTTP port
//! range exhausted (every port held by a listener of the test); the SSH forwarding port pinned
//! (`host_port_min` = `host_port_max`) and taken; a range whose first port is taken, where
//! the engine forwards from another. QEMU never gets past the BIOS (a blank ISO).

use crate::harness::{assert_clean, qemu_builder, Scratch, Spec, OURS};
use crate::support::process::{eventually, processes_mentioning};
use serde_json::json;
use std::net::TcpListener;
use std::time::Duration;

/// Listeners on `first..=last` (all free when found), held by the test.
fn hold(first: u16, last: u16) -> Vec<TcpListener> {
    (first..=last)
        .map(|p| TcpListener::bind(("127.0.0.1", p)).expect("the port was free a moment ago"))
        .collect()
}

#[test]
fn http_port_range_exhausted_fails_before_the_vm_and_says_widen_it() {
    let s = Scratch::new("http-ports");
    let (first, last) = crate::support::free_port_range(3);
    let _held = hold(first, last);
    let spec = Spec {
        driver: "builtin".into(),
        builder: qemu_builder(&s, json!({"http_port_min": first, "http_port_max": last})),
        ..Spec::default()
    };
    let r = s.run(&spec, Duration::from_secs(120));
    r.assert_failed(
        "http server",
        &[
            &format!("no free port on 127.0.0.1 in {first}-{last}"),
            "widen http_port_min/http_port_max",
        ],
    );
    assert!(!r.text.contains("fault-secret-pw"), "secret leaked");
    assert_clean(&s, &s.out(), "HTTP ports exhausted");
}

#[test]
fn ssh_forward_port_pinned_and_taken_fails_at_launch_and_says_widen_it() {
    let s = Scratch::new("ssh-port");
    let (p, _) = crate::support::free_port_range(1);
    let _held = hold(p, p);
    let spec = Spec {
        driver: "builtin".into(),
        builder: qemu_builder(&s, json!({"host_port_min": p, "host_port_max": p})),
        ..Spec::default()
    };
    let r = s.run(&spec, Duration::from_secs(120));
    r.assert_failed(
        "launch",
        &[
            &format!("no free TCP port on 127.0.0.1 in host_port_min..host_port_max ({p}–{p})"),
            "widen the range",
        ],
    );
    assert_clean(&s, &s.out(), "SSH port taken");
}

/// The first port of the range is taken: QEMU forwards from the other one (read from its
/// command line while it runs); then the build is interrupted and cleans up.
#[test]
fn ssh_forward_port_taken_in_a_range_the_engine_forwards_from_another() {
    let s = Scratch::new("ssh-port-range");
    let (p, q) = crate::support::free_port_range(2);
    let _held = hold(p, p);
    let spec = Spec {
        driver: "builtin".into(),
        builder: qemu_builder(&s, json!({"host_port_min": p, "host_port_max": q})),
        ..Spec::default()
    };
    let mut child = s.spawn(&spec);
    child.wait_line("==> boot wait", Duration::from_secs(120));
    let dir = s.path().display().to_string();
    let mut qemu = Vec::new();
    assert!(
        eventually(Duration::from_secs(30), || {
            qemu = processes_mentioning(&dir, OURS);
            qemu.iter().any(|c| c.contains("qemu-system"))
        }),
        "QEMU should be running"
    );
    let cmd = qemu.iter().find(|c| c.contains("qemu-system")).unwrap();
    assert!(
        cmd.contains(&format!("hostfwd=tcp:127.0.0.1:{q}-:22")),
        "forwards from the free port {q}, not the taken {p}: {cmd}"
    );
    child.signal(libc::SIGINT);
    let (code, _) = child.exit_and_output(Duration::from_secs(90));
    assert_eq!(code, 1);
    assert!(child
        .seen
        .iter()
        .any(|l| l.contains("interrupted by SIGINT")));
    assert_clean(&s, &s.out(), "SSH port range");
}

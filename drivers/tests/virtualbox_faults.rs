//! Contract tests of the VirtualBox driver against the FAKE VBoxManage's injected failures
//! (`tests/fakes/vboxmanage/`, a stand-in following VBoxManage's documented CLI; VirtualBox
//! cannot run on these machines): an error printed with exit status 0, the session lock
//! outliving a power-off (cleared, and not cleared within the bound), a keyboard queue that
//! overflows, a forwarded port taken in the race before start, a guest that ignores the ACPI
//! power button. 6.x rejecting 7.x options is in `virtualbox_fake.rs`.

mod vbox_common;

use osimager_drivers::bootcmd::{parse_str, Fields};
use osimager_drivers::Driver;
use serde_json::json;
use std::time::Duration;
use vbox_common::*;

#[tokio::test]
async fn an_error_printed_with_exit_status_0_is_a_failure() {
    let s = Scratch::new(json!({"faults": {"error_exit0": [
        {"command": "startvm", "message": "VT-x is not available (VERR_VMX_NO_VMX)"}]}}));
    let mut d = driver(&s, json!({}));
    d.create(&media(&s)).await.unwrap();
    let e = d.start().await.unwrap_err().to_string();
    assert!(
        e.contains("VT-x is not available") && e.contains("exit status 0"),
        "{e}"
    );
    let (argv, status) = s
        .calls()
        .into_iter()
        .find(|(a, _)| a[0] == "startvm")
        .unwrap();
    assert_eq!(status, 0, "{argv:?}");
    d.destroy().await.unwrap();
    assert!(s.registered().is_empty());
}

#[tokio::test]
async fn the_session_lock_after_power_off_is_waited_out() {
    let s = Scratch::new(json!({"faults": {"lock_after_poweroff": 4}}));
    let mut d = driver(&s, json!({}));
    d.create(&media(&s)).await.unwrap();
    d.start().await.unwrap();
    d.request_shutdown().await.unwrap();
    assert!(d.wait_stopped(Duration::from_secs(30)).await.unwrap());
    d.export(&s.path().join("out")).await.unwrap();
    d.destroy().await.unwrap();
    assert!(s.registered().is_empty());
    let shows_locked = s
        .calls()
        .iter()
        .filter(|(a, _)| a[0] == "showvminfo")
        .count();
    assert!(
        shows_locked >= 4,
        "the driver did not poll the session state"
    );
}

#[tokio::test]
async fn a_lock_that_does_not_clear_fails_within_the_bound() {
    let s = Scratch::new(json!({"faults": {"lock_after_poweroff": 40}}));
    let mut d = driver(&s, json!({}));
    d.create(&media(&s)).await.unwrap();
    d.start().await.unwrap();
    d.force_stop().await.unwrap();
    let e = d
        .export(&s.path().join("out"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("VBOX_E_INVALID_OBJECT_STATE") && e.contains("attempts"),
        "{e}"
    );
    let failures = s.calls().iter().filter(|(_, st)| *st == 1).count();
    assert!((6..40).contains(&failures), "{failures} failed calls");
    // The lock clears eventually (each call spends one of the 40); destroy then succeeds.
    let mut cleaned = false;
    for _ in 0..5 {
        if d.destroy().await.is_ok() {
            cleaned = true;
            break;
        }
    }
    assert!(cleaned && s.registered().is_empty());
}

#[tokio::test]
async fn an_overflowing_keyboard_queue_is_reported() {
    let s = Scratch::new(json!({"faults": {"keyboard_queue": 10}}));
    // The fake rejects more than its queue holds.
    let mut d = driver(&s, json!({}));
    d.create(&media(&s)).await.unwrap();
    d.start().await.unwrap();
    let events = parse_str("ABCDEFGHIJKLMNOP", &Fields::placeholders()).unwrap();
    let e = d
        .send_keys(&events, &no_progress)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("VERR_PDM_NO_QUEUE_ITEMS") && e.contains("boot_keygroup_interval"),
        "{e}"
    );
    // No typed key appears in the message (it might be a password).
    assert!(!e.contains("1e") && !e.contains("2a "), "{e}");
    d.destroy().await.unwrap();

    // With the documented queue (25 codes), a call of 26 fails and the driver's calls pass.
    let s = Scratch::new(json!({}));
    s.vboxmanage(&["createvm", "--name", "k", "--register"]);
    s.vboxmanage(&["startvm", "k", "--type", "headless"]);
    let mut many = vec!["controlvm", "k", "keyboardputscancode"];
    many.extend(std::iter::repeat_n("39", 26));
    let out = s.vboxmanage(&many);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("VERR_PDM_NO_QUEUE_ITEMS"));
    let out = s.vboxmanage(&["controlvm", "k", "keyboardputscancode", "e038"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("'e038' is not a hex byte"));
    s.vboxmanage(&["controlvm", "k", "poweroff"]);
    s.vboxmanage(&["unregistervm", "k", "--delete"]);
}

#[tokio::test]
async fn a_forward_port_taken_before_start_is_moved() {
    let s = Scratch::new(json!({"faults": {"steal_forward_port": 1}}));
    let mut d = driver(&s, json!({}));
    d.create(&media(&s)).await.unwrap();
    let first = d.ssh_host_port().unwrap();
    d.start().await.unwrap();
    let port = d.ssh_address(Duration::from_secs(5)).await.unwrap().port;
    assert_ne!(port, first, "the forward stayed on the stolen port");
    let log = std::fs::read_to_string(s.path().join("work/vbtest/Logs/VBox.log")).unwrap();
    assert!(
        log.contains(&format!("Failed to redirect TCP 127.0.0.1:{first} ")),
        "{log}"
    );
    let calls = s.calls();
    assert!(calls
        .iter()
        .any(|(a, st)| *st == 0
            && a[..] == ["controlvm", "vbtest", "natpf1", "delete", "packercomm"]));
    assert!(calls.iter().any(|(a, st)| *st == 0
        && a.get(2).is_some_and(|x| x == "natpf1")
        && a.get(3) == Some(&format!("packercomm,tcp,127.0.0.1,{port},,22"))));
    d.destroy().await.unwrap();
}

#[tokio::test]
async fn an_ignored_power_button_ends_in_power_off() {
    let s = Scratch::new(json!({"faults": {"acpi": "ignore"}}));
    let mut d = driver(&s, json!({}));
    d.create(&media(&s)).await.unwrap();
    d.start().await.unwrap();
    // No shutdown_command effect: the driver presses the power button half-way, the guest
    // ignores it, the wait times out, the engine powers off.
    assert!(!d.wait_stopped(Duration::from_secs(2)).await.unwrap());
    assert!(s
        .calls()
        .iter()
        .any(|(a, _)| a[..] == ["controlvm", "vbtest", "acpipowerbutton"]));
    d.force_stop().await.unwrap();
    assert!(s
        .calls()
        .iter()
        .any(|(a, _)| a[..] == ["controlvm", "vbtest", "poweroff"]));
    assert!(d.wait_stopped(Duration::from_secs(2)).await.unwrap());
    d.destroy().await.unwrap();
}

//! Restart: the server (a process of its own, with the fake backend) is killed with SIGKILL
//! while a build runs. After a restart the history is intact, the build is `interrupted`, and
//! neither its process (the fake's stand-in for QEMU, started in the build's work dir) nor
//! its work dir is left.

mod common;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server process, killed when the test ends (also when it fails).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(state: &std::path::Path, port: u16) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_osimager-fake-serve"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--state-dir"])
        .arg(state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect(&line)
        .to_string();
    (Server(child), format!("http://{addr}/api/v1"))
}

async fn json(url: String) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn kill_9_mid_build_then_restart() {
    common::crypto();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (mut server, base) = spawn(&state, 0);
    let port: u16 = base
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let http = reqwest::Client::new();
    let mk = |defines: &[&str]| serde_json::json!({"target": "qemu/hermetic/testos-1-x86_64", "name": "r1", "defines": defines});
    let done: Value = http
        .post(format!("{base}/builds"))
        .json(&mk(&["fake_step_ms=5"]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let done = done["id"].as_i64().unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while json(format!("{base}/builds/{done}")).await["state"] != "succeeded" {
        assert!(Instant::now() < end);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hung: Value = http
        .post(format!("{base}/builds"))
        .json(&mk(&["fake_step_ms=20", "fake_hang=provision"]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = hung["id"].as_i64().unwrap();
    let work = state.join("work").join(id.to_string());
    while common::processes_in(&work).is_empty()
        || json(format!("{base}/builds/{id}")).await["step"] != "provision"
    {
        assert!(Instant::now() < end, "the build never reached provision");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events_before = json(format!("{base}/builds/{id}/events")).await["items"]
        .as_array()
        .unwrap()
        .len();
    let leftover = common::processes_in(&work);
    assert!(!leftover.is_empty());

    server.0.kill().unwrap(); // SIGKILL: nothing of the server runs its cleanup
    server.0.wait().unwrap();
    assert!(
        !common::processes_in(&work).is_empty(),
        "the build's process outlived the server"
    );

    let (_server, base) = spawn(&state, port);
    let j = json(format!("{base}/builds/{id}")).await;
    assert_eq!(j["state"], "interrupted", "{j}");
    assert!(j["error"]["message"]
        .as_str()
        .unwrap()
        .contains("server stopped"));
    assert_eq!(
        json(format!("{base}/builds/{done}")).await["state"],
        "succeeded"
    );
    let after = json(format!("{base}/builds/{id}/events")).await["items"]
        .as_array()
        .unwrap()
        .len();
    assert!(
        after >= events_before.min(1) && after > 0,
        "events kept: {events_before} → {after}"
    );
    assert!(
        common::processes_in(&work).is_empty(),
        "no process of the interrupted build is left"
    );
    for pid in leftover {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
                || std::fs::read(format!("/proc/{pid}/cmdline"))
                    .unwrap()
                    .is_empty()
        );
    }
    assert!(!work.exists(), "its work dir is gone");
    let total = json(format!("{base}/builds")).await["total"]
        .as_u64()
        .unwrap();
    assert_eq!(total, 2);
    // The server works on: a new build runs.
    let next: Value = http
        .post(format!("{base}/builds"))
        .json(&mk(&["fake_step_ms=5"]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let next = next["id"].as_i64().unwrap();
    assert!(next > id);
    while json(format!("{base}/builds/{next}")).await["state"] != "succeeded" {
        assert!(Instant::now() < end + Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_second_server_on_the_same_state_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (_first, _) = spawn(&state, 0);
    let out = Command::new(env!("CARGO_BIN_EXE_osimager-fake-serve"))
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another osimager serve") && err.contains("--state-dir"),
        "{err}"
    );
}

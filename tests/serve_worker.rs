//! `osimager worker` with the real engine against `osimager serve --no-local-worker`, no
//! guest: a worker token made by the CLI, the worker registers what this host can build
//! (QEMU natively), claims a dry-run build of the test OS, runs it with the engine and
//! reports it; the server shows where it ran. A labelled build no worker has stays queued.

mod serve_support;
mod support;

use serde_json::{json, Value};
use serve_support::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_for(c: &reqwest::Client, url: &str, done: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let v: Value = c.get(url).send().await.unwrap().json().await.unwrap();
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < end, "{url}: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_worker_runs_a_dry_run_build_with_the_real_engine() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = Command::new(env!("CARGO_BIN_EXE_osimager"))
        .args([
            "serve",
            "token",
            "create",
            "--worker",
            "kvm-1",
            "--state-dir",
        ])
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let s = Serve::start(dir.path(), 0, &["--no-local-worker"]);
    let c = http();
    let path = support::path_with_tools();
    let _w = Worker(
        Command::new(env!("CARGO_BIN_EXE_osimager"))
            .args(["worker", "--server", &s.root, "--labels", "site=lab"])
            .arg("--work-dir")
            .arg(dir.path().join("worker"))
            .args(["--heartbeat-secs", "1"])
            .env("OSIMAGER_WORKER_TOKEN", &token)
            .env("XDG_CONFIG_HOME", &s.config_home)
            .env("XDG_DATA_HOME", dir.path().join("wdata"))
            .env("XDG_CACHE_HOME", dir.path().join("wcache"))
            .env("OSIMAGER_TESTOS_CACHE", media_cache())
            .env("OSIMAGER_DATA_DIR", repo())
            .env("PATH", path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let workers = wait_for(&c, &format!("{}/workers", s.base), |v| {
        v["items"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let w = &workers["items"][0];
    assert_eq!(w["name"], "kvm-1");
    assert_eq!(w["capabilities"]["native"], json!(["qemu"]), "{w}");
    assert_eq!(w["capabilities"]["labels"]["site"], "lab");
    assert!(w["capabilities"]["free_disk"].as_u64().unwrap() > 0);

    let other: Value = c
        .post(format!("{}/builds", s.base))
        .json(&json!({"target": TARGET, "name": "gpu1", "dry_run": true, "labels": {"gpu": "yes"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let b: Value = c
        .post(format!("{}/builds", s.base))
        .json(
            &json!({"target": TARGET, "name": "dry1", "dry_run": true, "labels": {"site": "lab"}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = b["id"].as_i64().unwrap();
    let done = wait_for(&c, &format!("{}/builds/{id}", s.base), |v| {
        !matches!(v["state"].as_str(), Some("queued" | "running"))
    })
    .await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["worker"], "kvm-1");
    let ev: Value = c
        .get(format!("{}/builds/{id}/events?limit=1000", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = ev.to_string();
    assert!(
        text.contains("build_started") && text.contains("build_finished"),
        "{text}"
    );
    assert!(
        !text.contains(CANARY),
        "the secret never leaves the worker unredacted"
    );
    let o: Value = c
        .get(format!("{}/builds/{}", s.base, other["id"]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(o["state"], "queued", "no worker has gpu=yes");
}

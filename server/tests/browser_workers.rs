//! Browser test of the workers page (Debian chromium through chromedriver, the harness of
//! tests/browser.rs) against a server with the fake backend: its own runner builds one job, a
//! remote worker (the real worker loop of `osimager worker`, in this process, with the fake
//! backend, over HTTP with a worker token) registers with a label and runs a labelled build.
//! The page lists both with their capabilities, state, current build and last heartbeat; each
//! build's page says where it ran.

mod common;

use osimager_server::auth::{hash_token, new_token};
use osimager_server::fake::FakeBackend;
use osimager_server::store::{Capabilities, RecordStore, TokenRole};
use osimager_server::testing::{wanted, Browser};
use osimager_server::worker::{run, WorkerConfig};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_page_shows_the_local_runner_a_remote_worker_and_where_builds_ran() {
    if !wanted() {
        return;
    }
    let s = common::start(|c| c.jobs = Some(1)).await;
    let root = s.base.trim_end_matches("/api/v1").to_string();

    // The server's own runner builds an unlabelled job before any worker exists.
    let local_build = s.build(&["fake_step_ms=5"]).await;
    let j = s.wait_state(local_build, &["succeeded"], T).await;
    let local = j["worker"].as_str().unwrap().to_string();
    assert!(
        local.starts_with("local:") && local.len() > "local:".len() + 9,
        "a runner name of its own: {local}"
    );

    // A remote worker with a label; a build asking for it runs there (and hangs in provision).
    let token = new_token();
    s.store
        .create_token_as("lab-7", &hash_token(&token), TokenRole::Worker)
        .await
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut caps = Capabilities {
        native: vec!["qemu".into()],
        tools: vec!["qemu-system-x86_64".into()],
        arch: "x86_64".into(),
        free_disk: 50 << 30,
        concurrency: 1,
        ..Default::default()
    };
    caps.labels.insert("site".into(), "lab".into());
    let worker = tokio::spawn(run(
        WorkerConfig {
            server: root.clone(),
            token,
            capabilities: caps,
            concurrency: 1,
            work_dir: s.dir.path().join("worker"),
            heartbeat: Duration::from_millis(300),
        },
        Arc::new(FakeBackend::new(s.dir.path().join("worker-images"))),
        stop.clone(),
    ));
    let (st, b) = s
        .post(
            "/builds",
            json!({"target": "qemu/hermetic/testos-1-x86_64", "name": "remote1",
                   "labels": {"site": "lab"}, "defines": ["fake_step_ms=20", "fake_hang=provision"]}),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let remote_build = b["id"].as_i64().unwrap();
    let j = s.wait_state(remote_build, &["running"], T).await;
    assert_eq!(j["worker"], "lab-7");

    let br = Browser::start("fake-workers").await;
    br.goto(&format!("{root}/")).await;
    br.click("[data-testid=nav-workers]").await;
    let row = br
        .wait_text("[data-testid='worker-lab-7']", T, |t| {
            t.contains("building") && t.contains(&format!("#{remote_build}"))
        })
        .await;
    for want in [
        "remote worker",
        "qemu",
        "site=lab",
        "x86_64",
        "50.0 GiB free",
        "ago",
    ] {
        assert!(row.contains(want), "{want:?} in the row: {row}");
    }
    let mine = br
        .wait_text(&format!("[data-testid='worker-{local}']"), T, |t| {
            t.contains("idle")
        })
        .await;
    assert!(mine.contains("this server's own runner"), "{mine}");
    br.shot("09-workers").await;

    // The build's page says where it runs; the local one's where it ran.
    br.click("[data-testid='worker-lab-7'] [data-testid=worker-job]")
        .await;
    br.wait_text("[data-testid=build-worker]", T, |t| t == "lab-7")
        .await;
    br.wait_text("[data-testid=build-state]", T, |t| t == "running")
        .await;
    br.shot("10-build-on-a-worker").await;
    br.goto(&format!("{root}/builds/{local_build}")).await;
    br.wait_text("[data-testid=build-worker]", T, |t| t == local)
        .await;

    // Cancelled: the worker hears it with its next heartbeat and the row goes idle.
    let (st, _) = s
        .post(&format!("/builds/{remote_build}/cancel"), json!(null))
        .await;
    assert_eq!(st, 202);
    s.wait_state(remote_build, &["cancelled"], T).await;
    br.goto(&format!("{root}/workers")).await;
    br.wait_text(
        "[data-testid='worker-lab-7'] [data-testid=worker-state]",
        T,
        |t| t == "idle",
    )
    .await;
    br.close().await;
    stop.cancel();
    worker.await.unwrap().unwrap();
}

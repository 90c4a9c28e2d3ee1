//! `osimager serve` with real guest builds of the test OS (QEMU under TCG): slow, runs only
//! with OSIMAGER_E2E=1 and the media built. Run one guest test at a time
//! (`flock /tmp/osimager-guest.lock cargo test --test serve_e2e -- --test-threads=1`).
//!
//! * From the web UI (chromium): start a native build, see steps and log lines appear and a
//!   console screenshot while it runs, download the image and check it against the SHA-256 the
//!   page lists; start a second build and cancel it from the UI: it shows cancelled and no QEMU
//!   is left. The guest's password is the secret canary (tests/support/canary): the argv and
//!   environment of the server and every process under it are sampled from /proc while the
//!   builds run; afterwards every response the test read, the page, the server's state dir
//!   (job store, logs, work dirs, artifacts other than the guest's image) are searched: no hit.
//! * `kill -9` the server during a build: after a restart the history is intact, the build is
//!   `interrupted`, and no QEMU or work dir of it is left.

mod serve_support;
mod support;

use osimager_server::testing::fantoccini::Locator;
use osimager_server::testing::{wanted, Browser};
use serve_support::*;
use sha2::{Digest, Sha256};
use std::time::Duration;
use support::canary::{Canary, Sampler, Scan};

const BUILD: Duration = Duration::from_secs(900);
const T: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_the_web_ui_a_real_build_is_followed_downloaded_and_a_second_cancelled() {
    if !e2e() || !wanted() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut s = Serve::start(dir.path(), 0, &["--jobs", "1"]);
    let canary = Canary::with_value(CANARY);
    let sampler = Sampler::start(&canary, s.child.id(), true);
    let mut scan = Scan::new(&canary);
    let c = http();
    let name = format!("srvui{}", std::process::id());
    let _outputs = support::VmOutputs(vec![name.clone(), format!("{name}c")]);
    let b = Browser::start("real").await;
    b.goto(&format!("{}/builds/new?target={TARGET}", s.root))
        .await;
    b.fill("[data-testid=name]", &name).await;
    b.select("[data-testid=engine]", "native").await;
    b.click("[data-testid=force]").await;
    let cmd = b
        .wait_text("[data-testid=command-preview]", T, |t| t.contains(&name))
        .await;
    assert_eq!(
        cmd,
        format!("osimager build {TARGET} {name} --engine native --force")
    );
    b.shot("real-01-new-build").await;
    b.click("[data-testid=submit]").await;
    b.wait_text("[data-testid=build-state]", T, |t| t == "running")
        .await;
    let id: i64 = b
        .client
        .current_url()
        .await
        .unwrap()
        .path()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // Before the build ends: steps change, log lines arrive, a console screenshot shows.
    b.wait_count("[data-testid=step-launch]", 1, BUILD).await;
    let steps_then = b.count("[data-testid^=step-]").await;
    let logs_then = b.wait_count("[data-testid=log-line]", 3, BUILD).await;
    b.wait_count("[data-testid=screenshot]", 1, BUILD).await;
    b.wait_count("[data-testid=step-wait_for_ssh]", 1, BUILD)
        .await;
    assert!(
        b.count("[data-testid^=step-]").await > steps_then,
        "steps changed while it ran"
    );
    assert!(b.count("[data-testid=log-line]").await >= logs_then);
    assert_eq!(
        b.text("[data-testid=build-state]").await,
        "running",
        "all of it seen before the end"
    );
    b.shot("real-02-running").await;
    let state = b
        .wait_text("[data-testid=build-state]", BUILD, |t| t != "running")
        .await;
    b.shot("real-03-finished").await;
    assert_eq!(
        state,
        "succeeded",
        "{}",
        json(&c, format!("{}/builds/{id}", s.base)).await
    );
    b.wait_count("[data-testid=artifact]", 1, T).await;
    // Download what the page links and check it against the SHA-256 it lists.
    let arts = b
        .client
        .find_all(Locator::Css("[data-testid=artifact] a"))
        .await
        .unwrap();
    let mut checked = 0;
    for a in arts {
        let file = a.text().await.unwrap();
        let href = a.attr("href").await.unwrap().unwrap();
        let listed = b.text(&format!("[data-testid='sha256-{file}']")).await;
        let mut r = c.get(format!("{}{href}", s.root)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let mut h = Sha256::new();
        while let Some(chunk) = r.chunk().await.unwrap() {
            h.update(&chunk);
        }
        assert_eq!(hex::encode(h.finalize()), listed.trim(), "{file}");
        checked += 1;
    }
    assert!(checked >= 1, "the image was listed and checked");
    // The same sums in sha256sum's format.
    let (_, sums) = get(&c, format!("{}/builds/{id}/checksums", s.base)).await;
    assert!(
        sums.lines().any(|l| l.ends_with(&format!("  {name}"))),
        "{sums}"
    );

    // A second build, cancelled from the UI once its VM runs.
    b.goto(&format!("{}/builds/new?target={TARGET}", s.root))
        .await;
    b.fill("[data-testid=name]", &format!("{name}c")).await;
    b.click("[data-testid=force]").await;
    b.click("[data-testid=submit]").await;
    b.wait_text("[data-testid=build-state]", T, |t| t == "running")
        .await;
    let id2: i64 = b
        .client
        .current_url()
        .await
        .unwrap()
        .path()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    b.wait_count("[data-testid=step-boot_command]", 1, BUILD)
        .await;
    assert!(!qemu_with(&format!("{name}c")).is_empty(), "its QEMU runs");
    b.click("[data-testid=cancel]").await;
    b.wait_text("[data-testid=build-state]", T * 3, |t| t == "cancelled")
        .await;
    b.shot("real-04-cancelled").await;
    assert!(
        qemu_with(&format!("{name}c")).is_empty(),
        "no QEMU is left once it shows cancelled"
    );
    wait_gone(
        &format!("{name}c"),
        &s.work_dir(id2),
        Duration::from_secs(1),
    )
    .await;
    assert!(!s.work_dir(id2).exists());

    // The canary never showed: every record of both builds, the server's answers, the page,
    // the processes, and every file the server keeps.
    for i in [id, id2] {
        for q in ["/events?limit=10000", "", "/checksums"] {
            let (_, body) = get(&c, format!("{}/builds/{i}{q}", s.base)).await;
            scan.text("server response", &format!("build {i}{q}"), body);
        }
    }
    for q in ["builds", &format!("targets/{TARGET}?name={name}")] {
        let (_, body) = get(&c, format!("{}/{q}", s.base)).await;
        scan.text("server response", q, body);
    }
    let html = b.client.source().await.unwrap();
    scan.text("page", "the build page", html);
    b.close().await;
    s.stop();
    scan.samples(&sampler.finish());
    // The exported image is the guest's own data (its answer file carried the password).
    scan.tree_with(&s.state, &|p: &std::path::Path| {
        p.file_name().is_some_and(|n| n == name.as_str())
    });
    scan.tree(&dir.path().join("data"));
    scan.tree(&dir.path().join("cache"));
    scan.assert_clean("secret-canary-serve.txt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_real_build_then_restart() {
    if !e2e() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut s = Serve::start(dir.path(), 0, &["--jobs", "1"]);
    let c = http();
    let name = format!("srvkill{}", std::process::id());
    let _outputs = support::VmOutputs(vec![name.clone()]);
    let r = c
        .post(format!("{}/builds", s.base))
        .json(&serde_json::json!({"target": TARGET, "name": name, "force": true}))
        .send()
        .await
        .unwrap();
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let end = std::time::Instant::now() + BUILD;
    while qemu_with(&name).is_empty() {
        assert!(std::time::Instant::now() < end, "QEMU never started");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events_before = get(&c, format!("{}/builds/{id}/events?limit=10000", s.base))
        .await
        .1;
    let n_before = serde_json::from_str::<serde_json::Value>(&events_before).unwrap()["items"]
        .as_array()
        .unwrap()
        .len();
    let work = s.work_dir(id);
    let port = s.port;
    s.kill9();
    // The runner notices (its pipe to the server closed) and unwinds the build by itself.
    wait_gone(&name, &work, Duration::from_secs(120)).await;
    let mut s = Serve::start(dir.path(), port, &["--jobs", "1"]);
    let j = wait_state(&c, &s.base, id, &["interrupted"], T).await;
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server stopped"),
        "{j}"
    );
    let n_after = json(&c, format!("{}/builds/{id}/events?limit=10000", s.base)).await["items"]
        .as_array()
        .unwrap()
        .len();
    assert!(
        n_after >= n_before,
        "history intact: {n_before} → {n_after}"
    );
    assert!(qemu_with(&name).is_empty());
    assert!(!work.exists(), "no work dir of it is left");
    s.stop();
}

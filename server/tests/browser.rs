//! Browser tests of the web UI (Debian chromium through chromedriver) against a server with
//! the fake backend: every page is visited and saved as a screenshot; a build is started from
//! the form and followed live (steps, log lines, console screenshot before it ends), its image
//! downloaded and checked against the listed SHA-256; a second build is cancelled from the UI;
//! a location is created, checked and saved. The same flows with a real test-OS build run in
//! the osimager crate (tests/serve_browser.rs).

mod common;

use osimager_server::testing::fantoccini::Locator;
use osimager_server::testing::{wanted, Browser};
use sha2::{Digest, Sha256};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn root(s: &common::TestServer) -> String {
    s.base.trim_end_matches("/api/v1").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_and_is_saved_as_a_screenshot() {
    if !wanted() {
        return;
    }
    let s = common::start(|c| c.jobs = Some(2)).await;
    let done = s.build(&["fake_step_ms=5"]).await;
    s.wait_state(done, &["succeeded"], T).await;
    let failed = s.build(&["fake_step_ms=5", "fake_fail=provision"]).await;
    s.wait_state(failed, &["failed"], T).await;
    let running = s
        .build(&["fake_step_ms=200", "fake_hang=wait_for_ssh"])
        .await;
    s.wait_state(running, &["running"], T).await;
    let b = Browser::start("fake").await;
    let r = root(&s);

    b.goto(&format!("{r}/")).await;
    b.wait_text("[data-testid=running]", T, |t| {
        t.contains(&format!("#{running}"))
    })
    .await;
    b.wait_text("[data-testid=accelerator]", T, |t| t.contains("tcg"))
        .await;
    b.wait_text("[data-testid=recent]", T, |t| {
        t.contains(&format!("#{done}"))
    })
    .await;
    b.shot("01-dashboard").await;

    b.click("[data-testid=nav-targets]").await;
    b.wait_count("[data-testid=target-row]", 10, T).await;
    b.fill("[data-testid=search]", "rhel").await;
    b.wait_text("[data-testid=targets]", T, |t| {
        t.to_lowercase().contains("targets (4)")
    })
    .await;
    b.select("[data-testid=filter-arch]", "x86_64").await;
    b.wait_text("[data-testid=targets]", T, |t| {
        t.to_lowercase().contains("targets (3)")
    })
    .await;
    b.shot("02-targets").await;

    b.goto(&format!("{r}/targets/qemu/lab/rhel-9.6-x86_64"))
        .await;
    let defs = b
        .wait_text("[data-testid=defs]", T, |t| t.contains("rhel"))
        .await;
    assert!(defs.contains("\"root_password\": \"***\""), "{defs}");
    b.click("[data-testid=validate]").await;
    b.wait_text("[data-testid=validation]", T, |t| {
        t.contains("Ready to build")
    })
    .await;
    b.shot("03-target-detail").await;
    b.click("[data-testid=tab-template]").await;
    b.wait_text("[data-testid=template]", T, |t| t.contains("builders"))
        .await;

    b.click("[data-testid=build-this]").await;
    b.fill("[data-testid=name]", "web1").await;
    b.fill("[data-testid=defines]", "memory=4096").await;
    b.select("[data-testid=engine]", "native").await;
    let cmd = b
        .wait_text("[data-testid=command-preview]", T, |t| t.contains("web1"))
        .await;
    assert_eq!(
        cmd,
        "osimager build qemu/lab/rhel-9.6-x86_64 web1 -D memory=4096 --engine native"
    );
    b.shot("04-new-build").await;

    b.goto(&format!("{r}/builds/{failed}")).await;
    b.wait_text("[data-testid=build-error]", T, |t| t.contains("provision"))
        .await;
    b.wait_count("[data-testid=screenshot]", 1, T).await;
    b.shot("05-build-failed").await;
    b.goto(&format!("{r}/builds/{done}")).await;
    b.wait_count("[data-testid=artifact]", 2, T).await;
    b.shot("06-build-succeeded").await;

    b.click("[data-testid=nav-history]").await;
    b.wait_count("[data-testid=history-row]", 3, T).await;
    b.click("[data-testid=state-failed]").await;
    b.wait_text("[data-testid=history]", T, |t| {
        t.to_lowercase().contains("history (1)")
    })
    .await;
    b.click("[data-testid=state-failed]").await;
    b.wait_count("[data-testid=history-row]", 3, T).await;
    b.shot("07-history").await;

    b.click("[data-testid=nav-locations]").await;
    b.click("[data-testid=location-lab]").await;
    b.wait_text("[data-testid=location-content]", T, |_| true)
        .await;
    b.shot("08-locations").await;
    s.post(
        &format!("/builds/{running}/cancel"),
        serde_json::json!(null),
    )
    .await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_started_from_the_ui_is_followed_live_downloaded_and_checked() {
    if !wanted() {
        return;
    }
    let s = common::start(|_| {}).await;
    let b = Browser::start("fake-live").await;
    let r = root(&s);
    b.goto(&format!(
        "{r}/builds/new?target=qemu/hermetic/testos-1-x86_64"
    ))
    .await;
    b.fill("[data-testid=name]", "live1").await;
    b.fill(
        "[data-testid=defines]",
        "fake_step_ms=400\nfake_log_lines=30",
    )
    .await;
    b.click("[data-testid=submit]").await;
    // The build page: while the build still runs, steps and log lines appear.
    b.wait_text("[data-testid=build-state]", T, |t| t == "running")
        .await;
    let first = b.wait_count("[data-testid^=step-]", 3, T).await;
    let logs_early = b.wait_count("[data-testid=log-line]", 1, T).await;
    b.wait_count("[data-testid=screenshot]", 1, T).await;
    let state = b
        .client
        .find(Locator::Css("[data-testid=build-state]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        state, "running",
        "the DOM showed steps, log lines and a screenshot before the end"
    );
    b.shot("live-running").await;
    let later = b.wait_count("[data-testid^=step-]", first + 3, T).await;
    assert!(later > first);
    b.wait_text("[data-testid=build-state]", T, |t| t == "succeeded")
        .await;
    let logs_late = b.count("[data-testid=log-line]").await;
    assert!(logs_late > logs_early, "{logs_early} → {logs_late}");
    b.wait_count("[data-testid=artifact]", 2, T).await;
    b.shot("live-succeeded").await;
    // Download the image the page links and check it against the SHA-256 it lists.
    let link = b
        .client
        .find(Locator::Css("[data-testid='download-live1.qcow2']"))
        .await
        .unwrap();
    let href = link.attr("href").await.unwrap().unwrap();
    let listed = b
        .client
        .find(Locator::Css("[data-testid='sha256-live1.qcow2']"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let bytes = reqwest::get(format!("{r}{href}"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(bytes.len() > 1000);
    assert_eq!(hex::encode(Sha256::digest(&bytes)), listed.trim());

    // A second build, cancelled from the UI.
    b.goto(&format!(
        "{r}/builds/new?target=qemu/hermetic/testos-1-x86_64"
    ))
    .await;
    b.fill(
        "[data-testid=defines]",
        "fake_step_ms=50\nfake_hang=provision",
    )
    .await;
    b.click("[data-testid=submit]").await;
    b.wait_count("[data-testid=step-provision]", 1, T).await;
    let url = b.client.current_url().await.unwrap();
    let id: i64 = url.path().rsplit('/').next().unwrap().parse().unwrap();
    let work = s.cfg.state_dir.join("work").join(id.to_string());
    assert!(
        !common::processes_in(&work).is_empty(),
        "the build's process runs"
    );
    b.click("[data-testid=cancel]").await;
    b.wait_text("[data-testid=build-state]", T, |t| t == "cancelled")
        .await;
    b.shot("live-cancelled").await;
    assert!(
        common::processes_in(&work).is_empty(),
        "no process of the cancelled build is left"
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_location_editor_creates_checks_and_saves() {
    if !wanted() {
        return;
    }
    let s = common::start(|_| {}).await;
    let b = Browser::start("fake-locations").await;
    b.goto(&format!("{}/locations", root(&s))).await;
    b.fill("[data-testid=new-location-name]", "edge").await;
    b.click("[data-testid=new-location]").await;
    b.wait_text("[data-testid=location-content]", T, |_| true)
        .await;
    let content = b
        .client
        .find(Locator::Css("[data-testid=location-content]"))
        .await
        .unwrap();
    content.clear().await.unwrap();
    content
        .send_keys(r#"{"platforms": ["qemu", "nosuch"]}"#)
        .await
        .unwrap();
    b.click("[data-testid=location-validate]").await;
    b.wait_text("[data-testid=location-validation]", T, |t| {
        t.contains("nosuch")
    })
    .await;
    b.shot("location-invalid").await;
    b.click("[data-testid=location-save]").await;
    b.wait_text("[data-testid=error]", T, |t| t.contains("nosuch"))
        .await;
    content.clear().await.unwrap();
    content
        .send_keys(r#"{"platforms": ["qemu"], "arches": ["x86_64"]}"#)
        .await
        .unwrap();
    b.click("[data-testid=location-save]").await;
    b.wait_count("[data-testid=location-saved]", 1, T).await;
    let (_, doc) = s.get("/locations/edge").await;
    assert_eq!(
        doc["content"],
        r#"{"platforms": ["qemu"], "arches": ["x86_64"]}"#
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_required_the_ui_asks_for_one() {
    if !wanted() {
        return;
    }
    use osimager_server::auth::{hash_token, new_token};
    use osimager_server::store::RecordStore;
    let s = common::start(|c| c.require_auth = true).await;
    let token = new_token();
    s.store
        .create_token("ui", &hash_token(&token))
        .await
        .unwrap();
    let b = Browser::start("fake-login").await;
    b.goto(&format!("{}/", root(&s))).await;
    b.fill("[data-testid=token]", "osi_wrong").await;
    b.click("[data-testid=login]").await;
    b.wait_text("[data-testid=error]", T, |t| {
        t.contains("unknown or revoked")
    })
    .await;
    b.shot("login").await;
    b.fill("[data-testid=token]", &token).await;
    b.click("[data-testid=login]").await;
    b.wait_text("[data-testid=accelerator]", T, |t| t.contains("tcg"))
        .await;
    // The live feed works with the session cookie too.
    let id = {
        let r = s
            .http
            .post(s.url("/builds"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"target": "qemu/hermetic/testos-1-x86_64", "defines": ["fake_hang=launch"]}))
            .send()
            .await
            .unwrap();
        r.json::<serde_json::Value>().await.unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    b.wait_text("[data-testid=running]", T, |t| {
        t.contains(&format!("#{id}"))
    })
    .await;
    let html = b.client.source().await.unwrap();
    assert!(!html.contains(&token), "the token is not in the page");
    b.close().await;
}

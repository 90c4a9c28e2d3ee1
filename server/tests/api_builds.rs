//! API: a build's life through the fake backend — queue, run, events and log by offset,
//! artifacts with checksums and Range, screenshots, cancel (queued and running), retry,
//! delete, priority order — and downloads confined to the build's own files.

mod common;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_build_runs_and_its_records_files_and_screenshots_are_served() {
    let s = common::start(|_| {}).await;
    let (st, created) = s
        .post(
            "/builds",
            json!({"target": "qemu/hermetic/testos-1-x86_64", "name": "web1", "ip": "10.0.0.5",
                   "defines": ["fake_step_ms=20", "memory=1024"], "engine": "native", "priority": 3,
                   "cache": "use"}),
        )
        .await;
    assert_eq!(st, 201, "{created}");
    assert_eq!(created["request"]["cache"], "use");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["state"], "queued");
    assert_eq!(
        created["command"],
        "osimager build qemu/hermetic/testos-1-x86_64 web1 10.0.0.5 -D fake_step_ms=20 -D memory=1024 --engine native --cache use"
    );
    let (st, bad) = s
        .post(
            "/builds",
            json!({"target": "qemu/hermetic/testos-1-x86_64", "cache": "sometimes"}),
        )
        .await;
    assert_eq!(st, 400, "{bad}");
    assert!(bad.to_string().contains("cache"), "{bad}");
    let done = s.wait_state(id, &["succeeded", "failed"], T).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(done["started_at"].is_string() && done["finished_at"].is_string());
    assert_eq!(done["step"], "manifest");
    let out = done["output_dir"].as_str().unwrap().to_string();

    // Events: in full, numbered without gaps, build_started first, build_finished last.
    let (st, ev) = s.get(&format!("/builds/{id}/events")).await;
    assert_eq!(st, 200);
    let items = ev["items"].as_array().unwrap();
    for (i, e) in items.iter().enumerate() {
        assert_eq!(e["seq"], i as u64);
        assert_eq!(e["build"], id.to_string());
    }
    assert_eq!(items[0]["type"], "build_started");
    assert_eq!(items.last().unwrap()["type"], "build_finished");
    assert_eq!(ev["next"], items.len() as u64);
    let (_, page) = s.get(&format!("/builds/{id}/events?from=5&limit=3")).await;
    let seqs: Vec<u64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![5, 6, 7]);
    assert_eq!(page["next"], 8);
    let (_, steps) = s
        .get(&format!("/builds/{id}/events?type=step_started"))
        .await;
    assert_eq!(steps["items"].as_array().unwrap().len(), 14);

    // Log by offset, JSON and text.
    let (_, log) = s.get(&format!("/builds/{id}/log")).await;
    let lines = log["items"].as_array().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l["line"].as_str().unwrap().contains("TASK [testos")),
        "{log}"
    );
    let mid = lines[3]["seq"].as_u64().unwrap();
    let (_, rest) = s.get(&format!("/builds/{id}/log?from={mid}")).await;
    assert_eq!(rest["items"][0]["seq"], mid);
    let r = s
        .http
        .get(s.url(&format!("/builds/{id}/log?format=text&limit=2")))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let next: u64 = r.headers()["x-next-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(r.text().await.unwrap().lines().count(), 2);
    assert!(next > 0);

    // Artifacts: listed with checksums, downloaded whole and by range, matching.
    let (_, arts) = s.get(&format!("/builds/{id}/artifacts")).await;
    let list = arts["items"].as_array().unwrap();
    let disk = list
        .iter()
        .find(|a| a["name"] == "web1.qcow2")
        .expect("the disk image");
    let r = s
        .http
        .get(format!(
            "{}{}",
            s.base.trim_end_matches("/api/v1"),
            disk["url"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("web1.qcow2"));
    let bytes = r.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, disk["size"].as_u64().unwrap());
    assert_eq!(
        hex::encode(Sha256::digest(&bytes)),
        disk["sha256"].as_str().unwrap()
    );
    let (_, sums) = s.get(&format!("/builds/{id}/checksums")).await;
    assert!(sums
        .as_str()
        .unwrap()
        .contains(&format!("{}  web1.qcow2", disk["sha256"].as_str().unwrap())));
    let r = s
        .http
        .get(s.url(&format!("/builds/{id}/artifacts/web1.qcow2")))
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        format!("bytes 100-199/{}", bytes.len())
    );
    assert_eq!(r.bytes().await.unwrap(), bytes.slice(100..200));
    let r = s
        .http
        .get(s.url(&format!("/builds/{id}/artifacts/web1.qcow2")))
        .header("range", format!("bytes={}-", bytes.len() + 10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 416);

    // Screenshots: timeline, latest, by index; real PNGs copied into the state dir.
    let (_, shots) = s.get(&format!("/builds/{id}/screenshots")).await;
    let names: Vec<&str> = shots["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["boot-wait", "typed", "installed"]);
    let r = s
        .http
        .get(s.url(&format!("/builds/{id}/screenshots/latest")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.headers()["x-screenshot-index"], "2");
    assert!(r.bytes().await.unwrap().starts_with(b"\x89PNG"));
    let r = s
        .http
        .get(s.url(&format!("/builds/{id}/screenshots/0")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (st, _) = s.get(&format!("/builds/{id}/screenshots/7")).await;
    assert_eq!(st, 404);
    let (st, e) = s
        .get(&format!("/builds/{id}/screenshots/..%2F..%2Fosimager.db"))
        .await;
    assert_eq!((st, e["field"].as_str()), (400, Some("index")));
    assert!(std::path::Path::new(&out).join("web1.qcow2").is_file());
    // The work dir is gone with the build.
    assert!(!s.cfg.state_dir.join("work").join(id.to_string()).exists());
}

#[tokio::test]
async fn downloads_are_confined_to_the_build_own_artifacts() {
    let s = common::start(|_| {}).await;
    let id = s.build(&["fake_step_ms=10"]).await;
    let done = s.wait_state(id, &["succeeded"], T).await;
    let out = std::path::PathBuf::from(done["output_dir"].as_str().unwrap());
    for evil in [
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "%2Fetc%2Fpasswd",
        "..",
        "vm1.qcow2%00",
        "SHA256SUMS%2F..%2F..%2Fstate%2Fosimager.db",
    ] {
        let (st, e) = s.get(&format!("/builds/{id}/artifacts/{evil}")).await;
        assert_eq!(st, 404, "{evil}: {e}");
    }
    let r = s
        .http
        .get(s.url(&format!("/builds/{id}/../../osimager.db")))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status().as_u16(), 200);
    // An artifact replaced by a symlink to a file elsewhere is not followed.
    let secret = s.dir.path().join("outside.txt");
    std::fs::write(&secret, "outside the output directory").unwrap();
    std::fs::remove_file(out.join("SHA256SUMS")).unwrap();
    std::os::unix::fs::symlink(&secret, out.join("SHA256SUMS")).unwrap();
    let r = s
        .http
        .get(s.url(&format!("/builds/{id}/artifacts/SHA256SUMS")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert!(!r.text().await.unwrap().contains("outside the output"));
    // Another build's artifact is not this build's.
    let other = s.build(&["fake_step_ms=10"]).await;
    s.wait_state(other, &["succeeded"], T).await;
    let (st, _) = s.get(&format!("/builds/{other}/artifacts/vm1.qcow2")).await;
    assert_eq!(st, 200);
    let (st, _) = s.get(&format!("/builds/{id}/artifacts/vm1.qcow2")).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn cancel_running_and_queued_builds() {
    let mut s = common::start(|c| c.jobs = Some(1)).await;
    let running = s.build(&["fake_step_ms=10", "fake_hang=provision"]).await;
    let queued = s.build(&["fake_step_ms=10"]).await;
    let j = s.wait_state(running, &["running"], T).await;
    assert_eq!(j["state"], "running");
    // The stand-in QEMU process runs in the build's work dir.
    let work = s.cfg.state_dir.join("work").join(running.to_string());
    let end = std::time::Instant::now() + T;
    while common::processes_in(&work).is_empty() {
        assert!(std::time::Instant::now() < end, "no build process appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (st, q) = s
        .post(&format!("/builds/{queued}/cancel"), json!(null))
        .await;
    assert_eq!((st, q["state"].as_str()), (202, Some("cancelled")));
    let (st, r) = s
        .post(&format!("/builds/{running}/cancel"), json!(null))
        .await;
    assert_eq!(st, 202);
    assert_eq!(r["cancel_requested"], true);
    let j = s
        .wait_state(running, &["cancelled", "failed", "succeeded"], T)
        .await;
    assert_eq!(j["state"], "cancelled", "{j}");
    assert_eq!(j["error"]["kind"], "cancelled");
    assert!(
        common::processes_in(&work).is_empty(),
        "no process of the build is left"
    );
    assert!(!work.exists());
    let (_, ev) = s
        .get(&format!(
            "/builds/{running}/events?type=step_finished,build_finished"
        ))
        .await;
    let last: Vec<&Value> = ev["items"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .take(2)
        .collect();
    assert_eq!(last[0]["result"], "cancelled");
    assert_eq!(last[1]["outcome"], "cancelled");
    let (st, e) = s
        .post(&format!("/builds/{running}/cancel"), json!(null))
        .await;
    assert_eq!(
        st, 202,
        "cancelling a cancelled build again is harmless: {e}"
    );
    let (_, qj) = s.get(&format!("/builds/{queued}")).await;
    assert_eq!(qj["started_at"], Value::Null, "never started");
    let done = s.build(&["fake_step_ms=5"]).await;
    s.wait_state(done, &["succeeded"], T).await;
    let (st, e) = s.post(&format!("/builds/{done}/cancel"), json!(null)).await;
    assert_eq!((st, e["kind"].as_str()), (409, Some("conflict")));
    let (st, _) = s.post("/builds/424242/cancel", json!(null)).await;
    assert_eq!(st, 404);
    s.stop().await;
}

#[tokio::test]
async fn retry_delete_and_failed_builds() {
    let s = common::start(|_| {}).await;
    let id = s.build(&["fake_step_ms=5", "fake_fail=wait_for_ssh"]).await;
    let j = s.wait_state(id, &["failed", "succeeded"], T).await;
    assert_eq!(j["state"], "failed");
    assert_eq!(j["error"]["kind"], "guest_timeout");
    assert_eq!(j["error"]["step"], "wait_for_ssh");
    let (_, shots) = s.get(&format!("/builds/{id}/screenshots")).await;
    assert_eq!(
        shots["items"].as_array().unwrap().last().unwrap()["name"],
        "failure"
    );
    let (st, r) = s.post(&format!("/builds/{id}/retry"), json!(null)).await;
    assert_eq!(st, 201);
    assert_eq!(r["retry_of"], id);
    assert_eq!(
        r["request"]["defines"],
        json!(["fake_step_ms=5", "fake_fail=wait_for_ssh"])
    );
    let hang = s.build(&["fake_hang=launch"]).await;
    s.wait_state(hang, &["running"], T).await;
    let r = s
        .http
        .delete(s.url(&format!("/builds/{hang}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let (st, _) = s.post(&format!("/builds/{hang}/retry"), json!(null)).await;
    assert_eq!(st, 409);
    s.post(&format!("/builds/{hang}/cancel"), json!(null)).await;
    s.wait_state(hang, &["cancelled"], T).await;
    let r = s
        .http
        .delete(s.url(&format!("/builds/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (st, e) = s.get(&format!("/builds/{id}")).await;
    assert_eq!(st, 404);
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("GET /api/v1/builds"));
    let (st, _) = s.get(&format!("/builds/{id}/events")).await;
    assert_eq!(st, 404);
    assert!(!s.cfg.state_dir.join("builds").join(id.to_string()).exists());
}

#[tokio::test]
async fn priority_then_fifo_and_list_filters() {
    let s = common::start(|c| c.jobs = Some(1)).await;
    let blocker = s.build(&["fake_hang=validate"]).await;
    s.wait_state(blocker, &["running"], T).await;
    let mk = |p: i32| json!({"target": "qemu/hermetic/testos-1-x86_64", "defines": ["fake_step_ms=1"], "priority": p, "dry_run": true});
    let (_, a) = s.post("/builds", mk(0)).await;
    let (_, b) = s.post("/builds", mk(10)).await;
    let (_, c) = s.post("/builds", mk(0)).await;
    let (_, q) = s.get("/builds?state=queued").await;
    assert_eq!(q["total"], 3);
    s.post(&format!("/builds/{blocker}/cancel"), json!(null))
        .await;
    let ids: Vec<i64> = [&a, &b, &c]
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    for id in &ids {
        s.wait_state(*id, &["succeeded"], T).await;
    }
    let mut started: Vec<(String, i64)> = Vec::new();
    for id in &ids {
        let (_, j) = s.get(&format!("/builds/{id}")).await;
        started.push((j["started_at"].as_str().unwrap().to_string(), *id));
    }
    started.sort();
    assert_eq!(
        started.iter().map(|s| s.1).collect::<Vec<_>>(),
        vec![ids[1], ids[0], ids[2]]
    );
    let (_, page) = s.get("/builds?limit=2&offset=1").await;
    assert_eq!(page["total"], 4);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][0]["id"], ids[1]);
    let (_, f) = s.get("/builds?state=cancelled&target=TESTOS").await;
    assert_eq!(f["total"], 1);
    let (_, f) = s.get("/builds?since=2999-01-01T00:00:00Z").await;
    assert_eq!(f["total"], 0);
}

//! `osimager serve` with the real engine, no guest: the catalog from a real configuration,
//! unknown names with the closest ones, a dry-run build through the queue and its stream,
//! the location editor on real files (atomic, user layer only), tokens made by the CLI, and a
//! secret canary (a password read from the secrets file) that never appears in any answer,
//! event, log, file of the server's state dir, or argv/environment of the server or its
//! children (tests/support/canary).

mod serve_support;
mod support;

use futures_util::StreamExt;
use serde_json::{json, Value};
use serve_support::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_dry_run_and_the_secret_canary() {
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(dir.path(), 0, &[]);
    // The server and everything under it, sampled from /proc (tests/support/canary).
    let canary = support::canary::Canary::with_value(CANARY);
    let sampler = support::canary::Sampler::start(&canary, s.child.id(), true);
    let c = http();
    let b = &s.base;
    let mut seen: Vec<String> = Vec::new();
    let mut keep = |t: String| {
        seen.push(t.clone());
        t
    };

    let (st, t) = get(&c, format!("{b}/targets?dist=testos&arch=x86_64")).await;
    let t: Value = serde_json::from_str(&keep(t)).unwrap();
    assert_eq!(st, 200);
    assert_eq!(t["items"][0]["name"], "testos-1-x86_64");
    // The platforms the test OS spec declares (qemu, and the VirtualBox and VMware of issues
    // 13 and 14), as the spec file lists them.
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo().join("tests/testos/config/osimager/specs/testos/spec.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(spec["platforms"]
        .as_array()
        .unwrap()
        .contains(&json!("qemu")));
    assert_eq!(t["items"][0]["platforms"], spec["platforms"]);
    let (_, p) = get(&c, format!("{b}/platforms")).await;
    let p: Value = serde_json::from_str(&keep(p)).unwrap();
    let qemu = p["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "qemu")
        .unwrap();
    assert_eq!(qemu["native"], true);
    let (_, l) = get(&c, format!("{b}/locations")).await;
    let l: Value = serde_json::from_str(&keep(l)).unwrap();
    let names: Vec<&str> = l["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["canary", "hermetic"]);

    // Defs and template: the secret is read, and shown as ***.
    let (st, r) = get(&c, format!("{b}/targets/{TARGET}?name=web1")).await;
    let r: Value = serde_json::from_str(&keep(r)).unwrap();
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["defs"]["testos_password"], "***");
    assert_eq!(r["template"]["builders"][0]["ssh_password"], "***");
    let (st, e) = get(&c, format!("{b}/targets/qemu/canary/testos-2-x86_64")).await;
    let e: Value = serde_json::from_str(&keep(e)).unwrap();
    assert_eq!(st, 404);
    assert_eq!(e["suggestions"][0], "testos-1-x86_64", "{e}");
    let (st, e) = get(&c, format!("{b}/targets/qemuu/canary/testos-1-x86_64")).await;
    let e: Value = serde_json::from_str(&keep(e)).unwrap();
    assert_eq!(st, 404);
    assert!(
        e["suggestions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "qemu"),
        "{e}"
    );
    let v = c
        .post(format!("{b}/validate"))
        .json(&json!({"target": TARGET}))
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&keep(v.text().await.unwrap())).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["engine"], "native");

    // A dry run through the queue, followed on its stream.
    let r = c
        .post(format!("{b}/builds"))
        .json(&json!({"target": TARGET, "name": "dry1", "dry_run": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let j: Value = serde_json::from_str(&keep(r.text().await.unwrap())).unwrap();
    let id = j["id"].as_i64().unwrap();
    let ws = format!("ws://127.0.0.1:{}/api/v1/builds/{id}/stream", s.port);
    let (mut ws, _) = tokio_tungstenite::connect_async(ws).await.unwrap();
    let mut types = Vec::new();
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(60), ws.next()).await {
        if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
            let v: Value = serde_json::from_str(&keep(t.to_string())).unwrap();
            types.push(v["type"].as_str().unwrap().to_string());
            if v["type"] == "stream.end" {
                break;
            }
        }
    }
    assert_eq!(types.first().map(String::as_str), Some("stream.hello"));
    assert!(
        types.contains(&"build_started".to_string())
            && types.contains(&"build_finished".to_string()),
        "{types:?}"
    );
    let done = wait_state(&c, b, id, &["succeeded", "failed"], Duration::from_secs(60)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    for path in [
        format!("/builds/{id}"),
        format!("/builds/{id}/events"),
        format!("/builds/{id}/log?format=text"),
        "/builds".into(),
    ] {
        keep(get(&c, format!("{b}{path}")).await.1);
    }
    let (_, log) = get(&c, format!("{b}/builds/{id}/log")).await;
    assert!(keep(log).contains("dry run: would build"));
    // An unknown target is refused before it is queued.
    let r = c
        .post(format!("{b}/builds"))
        .json(&json!({"target": "qemu/canary/tetsos-1-x86_64"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    keep(r.text().await.unwrap());

    // Every answer and stream message, the processes, and the build's own files (the build
    // log, the store): no canary.
    let mut scan = support::canary::Scan::new(&canary);
    for (i, t) in seen.iter().enumerate() {
        scan.text("server response", &format!("response {i}: {t}"), t);
    }
    scan.samples(&sampler.finish());
    scan.tree(&s.state);
    scan.assert_clean("secret-canary-serve-api.txt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_location_editor_writes_the_user_layer_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(dir.path(), 0, &[]);
    let c = http();
    let b = &s.base;
    let user = s.config_home.join("osimager/locations");
    let r = c
        .post(format!("{b}/locations"))
        .json(&json!({"name": "edge", "format": "toml", "content": "platforms = [\"qemu\"]\narches = [\"x86_64\"]\n"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    assert!(user.join("edge.toml").is_file());
    let bad = json!({"format": "toml", "content": "platforms = [\"qemu\", \"nosuch\"]\n"});
    let v: Value = c
        .post(format!("{b}/locations/edge/validate"))
        .json(&bad)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["problems"][0]["message"]
        .as_str()
        .unwrap()
        .contains("nosuch"));
    let broken = json!({"format": "json", "content": "{\"platforms\": ["});
    let v: Value = c
        .post(format!("{b}/locations/edge/validate"))
        .json(&broken)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        v["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("edge.json:1:"),
        "{v}"
    );
    let r = c
        .put(format!("{b}/locations/edge"))
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(
        std::fs::read_to_string(user.join("edge.toml")).unwrap(),
        "platforms = [\"qemu\"]\narches = [\"x86_64\"]\n",
        "unchanged"
    );
    // Saved as JSON: the TOML file goes (it would linger).
    let r = c
        .put(format!("{b}/locations/edge"))
        .json(&json!({"format": "json", "content": "{\"platforms\": [\"qemu\"]}"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(user.join("edge.json").is_file() && !user.join("edge.toml").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&user)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "no temp files left");
    let t: Value = c
        .get(format!("{b}/targets?location=edge"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(t["total"].as_u64().unwrap() > 0);
    let r = c
        .delete(format!("{b}/locations/edge"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert!(!user.join("edge.json").exists());
    for evil in ["..%2Fspecs", "..", "a%2F..%2F..%2Fx"] {
        let r = c
            .put(format!("{b}/locations/{evil}"))
            .json(&json!({"format": "json", "content": "{}"}))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().as_u16() == 400 || r.status().as_u16() == 404,
            "{evil}"
        );
    }
    assert!(!repo().join("locations").exists(), "bundled data untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_made_by_the_cli_open_the_api_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_osimager"))
            .args(["serve", "token"])
            .args(args)
            .arg("--state-dir")
            .arg(&state)
            .output()
            .unwrap()
    };
    let out = cli(&["create", "ci"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("osi_"));
    let list = String::from_utf8(cli(&["list"]).stdout).unwrap();
    assert!(list.contains("ci") && !list.contains(&token), "{list}");
    assert!(!cli(&["create", "ci"]).status.success(), "names are unique");
    let mut s = Serve::start(dir.path(), 0, &["--require-auth"]);
    let c = http();
    let r = c.get(format!("{}/builds", s.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = c
        .get(format!("{}/builds", s.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(cli(&["revoke", "ci"]).status.success());
    let r = c
        .get(format!("{}/builds", s.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "revoked while the server runs");
    let db = std::fs::read(state.join("osimager.db")).unwrap();
    assert!(
        !String::from_utf8_lossy(&db).contains(&token),
        "only the hash is stored"
    );
    s.stop();
}

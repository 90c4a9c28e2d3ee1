//! API: the OpenAPI document against the router, health, host, targets, platforms,
//! locations, validation, and bad input (404 with suggestions, 400 naming the field, 413, 415).

mod common;

use serde_json::{json, Value};
use std::collections::BTreeSet;

/// (METHOD, /path) of every route the router registers, read from its source.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let src = include_str!("../src/api/mod.rs");
    let mut out = BTreeSet::new();
    let mut rest = src;
    while let Some(i) = rest.find(".route(") {
        rest = &rest[i + 7..];
        let path = rest.split('"').nth(1).unwrap().to_string();
        // The handler expression runs to the matching close paren.
        let mut depth = 1;
        let mut end = 0;
        for (j, c) in rest.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = j;
                        break;
                    }
                }
                _ => {}
            }
        }
        let handlers = &rest[..end];
        for m in ["get", "post", "put", "delete"] {
            if handlers.contains(&format!("{m}(")) || handlers.contains(&format!(".{m}(")) {
                out.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

fn routes_in_document(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for m in ops.as_object().unwrap().keys() {
            out.insert((m.to_uppercase(), path.clone()));
        }
    }
    out
}

#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_exists() {
    let s = common::start(|_| {}).await;
    let (st, doc) = s.get("/openapi.json").await;
    assert_eq!(st, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let documented = routes_in_document(&doc);
    let routed = routes_in_source();
    assert!(routed.len() >= 25, "parsed the router: {routed:?}");
    assert_eq!(
        routed, documented,
        "router (left) and openapi.json (right) differ"
    );
    // Every documented operation reaches a handler (placeholders fill the path).
    for (m, path) in &documented {
        let p = path
            .replace("{platform}", "qemu")
            .replace("{location}", "hermetic")
            .replace("{spec}", "testos-1-x86_64")
            .replace("{id}", "999")
            .replace("{name}", "lab")
            .replace("{index}", "0");
        let req = s.http.request(m.parse().unwrap(), s.url(&p));
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_ne!(status, 405, "{m} {path}");
        assert_ne!(body["kind"], "no_route", "{m} {path}: {body}");
        assert_ne!(body["kind"], "method_not_allowed", "{m} {path}: {body}");
    }
    let (st, j) = s.get("/no/such/route").await;
    assert_eq!((st, j["kind"].as_str()), (404, Some("no_route")));
    assert!(j["message"].as_str().unwrap().contains("openapi.json"));
    let r = s.http.patch(s.url("/builds")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let j: Value = r.json().await.unwrap();
    assert_eq!(j["kind"], "method_not_allowed");
}

#[tokio::test]
async fn health_and_host() {
    let s = common::start(|_| {}).await;
    let (st, h) = s.get("/health").await;
    assert_eq!(st, 200);
    assert_eq!(h["status"], "ok");
    let (st, h) = s.get("/host").await;
    assert_eq!(st, 200, "{h}");
    assert!(h["cpu"]["count"].as_u64().unwrap() >= 1);
    assert!(h["memory"]["total"].as_u64().unwrap() > 0);
    assert!(h["disk"]["available"].as_u64().is_some());
    assert_eq!(h["accelerator"]["name"], "tcg");
    assert_eq!(h["queue"]["concurrency"], 2);
    let tools: Vec<&str> = h["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for t in [
        "qemu-system-x86_64",
        "qemu-img",
        "packer",
        "ansible-playbook",
        "VBoxManage",
        "vmrun",
    ] {
        assert!(tools.contains(&t), "{t} in {tools:?}");
    }
}

#[tokio::test]
async fn targets_filters() {
    let s = common::start(|_| {}).await;
    let (st, all) = s.get("/targets").await;
    assert_eq!(st, 200);
    assert_eq!(all["total"], 10);
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, r) = s.get("/targets?dist=rhel&arch=x86_64&latest=true").await;
    assert_eq!(names(&r), vec!["rhel-9.6-x86_64"]);
    let (_, r) = s.get("/targets?dist=rhel&version=9").await;
    assert_eq!(
        names(&r),
        vec!["rhel-9.4-x86_64", "rhel-9.6-x86_64", "rhel-9.6-aarch64"]
    );
    let (_, r) = s.get("/targets?platform=vmware").await;
    assert_eq!(r["total"], 3);
    let (_, r) = s.get("/targets?location=hermetic&q=debian").await;
    assert_eq!(
        names(&r),
        vec!["debian-11.11-x86_64", "debian-12.12-x86_64"]
    );
    let (st, e) = s.get("/targets?arhc=x86_64").await;
    assert_eq!((st, e["field"].as_str()), (400, Some("arhc")));
    let (st, e) = s.get("/targets?latest=perhaps").await;
    assert_eq!((st, e["field"].as_str()), (400, Some("latest")));
    let (st, p) = s.get("/platforms").await;
    assert_eq!(st, 200);
    assert_eq!(p["items"][0]["name"], "qemu");
    assert_eq!(p["items"][0]["native"], true);
}

#[tokio::test]
async fn resolve_and_validate_with_suggestions_for_unknown_names() {
    let s = common::start(|_| {}).await;
    let (st, r) = s
        .get("/targets/qemu/lab/debian-12.12-x86_64?name=web1&define=memory=4096")
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["defs"]["name"], "web1");
    assert_eq!(r["defs"]["memory"], "4096");
    assert_eq!(r["defs"]["root_password"], "***");
    assert!(r["template"]["builders"].is_array());
    let (st, r) = s.get("/targets/qemu/lab/rhel-latest-x86_64").await;
    assert_eq!(
        (st, r["target"].as_str()),
        (200, Some("qemu/lab/rhel-9.6-x86_64"))
    );
    let (st, e) = s.get("/targets/qemu/lab/debain-12.12-x86_64").await;
    assert_eq!(st, 404, "{e}");
    assert_eq!(e["kind"], "not_found");
    assert_eq!(e["suggestions"][0], "debian-12.12-x86_64");
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("debian-12.12-x86_64"));
    let (st, e) = s.get("/targets/qemu/labb/debian-12.12-x86_64").await;
    assert_eq!((st, e["suggestions"][0].as_str()), (404, Some("lab")));
    let (st, e) = s
        .get("/targets/qemu/lab/debian-12.12-x86_64?ip=10.0.0.300&name=a")
        .await;
    assert_eq!((st, e["field"].as_str()), (400, Some("ip")));

    let (st, v) = s
        .post(
            "/validate",
            json!({"target": "qemu/hermetic/testos-1-x86_64"}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["ok"], true);
    assert_eq!(v["engine"], "native");
    let (st, v) = s
        .post(
            "/validate",
            json!({"target": "vmware/hermetic/testos-1-x86_64"}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["ok"], false);
    assert!(v["problems"][0]["message"]
        .as_str()
        .unwrap()
        .contains("does not support"));
    let (st, e) = s
        .post(
            "/validate",
            json!({"target": "qemu/hermetic/tetsos-1-x86_64"}),
        )
        .await;
    assert_eq!(
        (st, e["suggestions"][0].as_str()),
        (404, Some("testos-1-x86_64"))
    );
    let (st, e) = s
        .post("/validate", json!({"target": "qemu/hermetic"}))
        .await;
    assert_eq!((st, e["field"].as_str()), (400, Some("target")));
    let (st, e) = s
        .post(
            "/validate",
            json!({"target": "qemu/hermetic/testos-1-x86_64", "defines": ["a=1", "oops"]}),
        )
        .await;
    assert_eq!((st, e["field"].as_str()), (400, Some("defines[1]")));
}

#[tokio::test]
async fn malformed_oversized_and_non_json_bodies() {
    let s = common::start(|_| {}).await;
    let post_raw = |body: &'static str, ct: &'static str| {
        s.http
            .post(s.url("/builds"))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let r = post_raw(
        r#"{"target": "qemu/hermetic/testos-1-x86_64", "priority": "high"}"#,
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["field"], "priority");
    assert!(e["message"].as_str().unwrap().contains("priority"), "{e}");
    let r = post_raw(r#"{"name": "x"}"#, "application/json")
        .await
        .unwrap();
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["field"], "target", "{e}");
    let r = post_raw(
        r#"{"target": "qemu/hermetic/testos-1-x86_64", "engnie": "native"}"#,
        "application/json",
    )
    .await
    .unwrap();
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["field"], "engnie", "{e}");
    let r = post_raw(
        r#"{"target": "qemu/hermetic/testos-1-x86_64", "engine": "warp"}"#,
        "application/json",
    )
    .await
    .unwrap();
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["field"], "engine", "{e}");
    let r = post_raw("{not json", "application/json").await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = post_raw(r#"{"target": "x"}"#, "text/plain").await.unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let big = format!(r#"{{"target": "{}"}}"#, "a".repeat(2 << 20));
    let r = s
        .http
        .post(s.url("/builds"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["kind"], "payload_too_large");
    let (st, e) = s
        .post(
            "/builds",
            json!({"target": "qemu/hermetic/testos-1-x86_64", "priority": 5000}),
        )
        .await;
    assert_eq!((st, e["field"].as_str()), (400, Some("priority")));
    let (st, e) = s
        .post(
            "/builds",
            json!({"target": "qemu/hermetic/testos-1-x86_64", "ip": "10.0.0.5"}),
        )
        .await;
    assert_eq!((st, e["field"].as_str()), (400, Some("name")));
    let (st, e) = s
        .post(
            "/builds",
            json!({"target": "qemu/hermetic/testos-9-x86_64"}),
        )
        .await;
    assert_eq!(st, 404);
    assert_eq!(e["suggestions"][0], "testos-1-x86_64");
    let (st, e) = s
        .post(
            "/builds",
            json!({"target": "vmware/hermetic/testos-1-x86_64"}),
        )
        .await;
    assert_eq!((st, e["kind"].as_str()), (422, Some("invalid_target")));
    let (st, e) = s.get("/builds/abc").await;
    assert_eq!((st, e["field"].as_str()), (400, Some("id")));
    let (st, e) = s.get("/builds?state=done").await;
    assert_eq!((st, e["field"].as_str()), (400, Some("state")));
    let (st, e) = s.get("/builds?limit=0").await;
    assert_eq!((st, e["field"].as_str()), (400, Some("limit")));
    let (st, e) = s.get("/builds?since=yesterday").await;
    assert_eq!((st, e["field"].as_str()), (400, Some("since")));
}

#[tokio::test]
async fn locations_are_created_checked_edited_and_removed() {
    let s = common::start(|_| {}).await;
    let (st, l) = s.get("/locations").await;
    assert_eq!(st, 200);
    assert_eq!(l["total"], 2);
    let (st, doc) = s.get("/locations/lab").await;
    assert_eq!(st, 200);
    assert_eq!(doc["format"], "toml");
    let new = json!({"name": "edge", "format": "json", "content": "{\"platforms\": [\"qemu\"], \"arches\": [\"x86_64\"]}"});
    let (st, c) = s.post("/locations", new.clone()).await;
    assert_eq!(st, 201, "{c}");
    assert_eq!(c["platforms"][0], "qemu");
    let (st, e) = s.post("/locations", new).await;
    assert_eq!((st, e["kind"].as_str()), (409, Some("conflict")));
    let bad = json!({"format": "json", "content": "{\"platforms\": [\"qemu\""});
    let (st, v) = s.post("/locations/edge/validate", bad.clone()).await;
    assert_eq!(st, 200);
    assert_eq!(v["ok"], false);
    let r = s
        .http
        .put(s.url("/locations/edge"))
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["field"], "content");
    let good = json!({"format": "json", "content": "{\"platforms\": [\"qemu\", \"vsphere\"]}"});
    let r = s
        .http
        .put(s.url("/locations/edge"))
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (_, d) = s.get("/locations/edge").await;
    assert!(d["content"].as_str().unwrap().contains("vsphere"));
    let r = s
        .http
        .put(s.url("/locations/edge"))
        .json(&json!({"format": "yaml", "content": ""}))
        .send()
        .await
        .unwrap();
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["field"], "format");
    for name in ["..", ".hidden", "a%2Fb", "a%20b"] {
        let (st, e) = s.get(&format!("/locations/{name}")).await;
        assert!(st == 400 || st == 404, "{name}: {st} {e}");
        if st == 400 {
            assert_eq!(e["field"], "name");
        }
    }
    let r = s
        .http
        .delete(s.url("/locations/edge"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (st, e) = s.get("/locations/edge").await;
    assert_eq!(st, 404);
    assert!(e["suggestions"].as_array().is_some(), "{e}");
}

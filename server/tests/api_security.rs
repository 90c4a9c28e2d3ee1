//! API security: tokens off loopback (bearer and the web UI's cookie), revocation,
//! cross-site requests, TLS with a given certificate, CORS only when configured, security
//! headers, and a secret canary (a token) that never appears in any answer.

mod common;
#[path = "api_security/worker_tokens.rs"]
mod worker_tokens;

use osimager_server::auth::{hash_token, new_token};
use osimager_server::store::{JobStore, RecordStore};
use serde_json::{json, Value};

#[tokio::test]
async fn off_loopback_every_route_but_health_needs_a_token() {
    let s = common::start(|c| c.listen = "0.0.0.0:0".parse().unwrap()).await;
    let (st, _) = s.get("/health").await;
    assert_eq!(st, 200, "health stays open (service checks)");
    let (st, _) = s.get("/openapi.json").await;
    assert_eq!(st, 200);
    let (st, sess) = s.get("/session").await;
    assert_eq!(st, 200);
    assert_eq!(sess, json!({"auth_required": true, "authenticated": false}));
    for path in [
        "/host",
        "/targets",
        "/builds",
        "/builds/1",
        "/locations",
        "/platforms",
    ] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["kind"], "unauthorized");
        assert!(e["message"]
            .as_str()
            .unwrap()
            .contains("osimager serve token create"));
    }
    let r = s
        .http
        .post(s.url("/builds"))
        .json(&json!({"target": "qemu/hermetic/testos-1-x86_64"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        s.store.list(&Default::default()).await.unwrap().total,
        0,
        "nothing was queued"
    );

    let token = new_token();
    s.store
        .create_token("ci", &hash_token(&token))
        .await
        .unwrap();
    let r = s
        .http
        .get(s.url("/builds"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = s
        .http
        .get(s.url("/builds"))
        .bearer_auth(new_token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // WebSocket upgrades need it too.
    let url = format!("{}/stream", s.ws);
    let e = tokio_tungstenite::connect_async(&url)
        .await
        .map(|_| ())
        .expect_err("refused");
    assert!(e.to_string().contains("401"), "{e}");
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        url.as_str(),
    )
    .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_ok());
    s.store.revoke_token("ci").await.unwrap();
    let r = s
        .http
        .get(s.url("/builds"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "revoked at once");
}

#[tokio::test]
async fn the_web_ui_session_cookie_works_from_its_own_pages_only() {
    let s = common::start(|c| c.require_auth = true).await;
    let token = new_token();
    s.store
        .create_token("alice", &hash_token(&token))
        .await
        .unwrap();
    let (st, e) = s.post("/session", json!({"token": "osi_wrong"})).await;
    assert_eq!((st, e["field"].as_str()), (401, Some("token")));
    let r = s
        .http
        .post(s.url("/session"))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let r = s
        .http
        .get(s.url("/builds"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let host = s
        .base
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let body = json!({"target": "qemu/hermetic/testos-1-x86_64", "dry_run": true});
    let r = s
        .http
        .post(s.url("/builds"))
        .header("cookie", &pair)
        .header("origin", "https://evil.example")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "cross-site POST with the cookie");
    let r = s
        .http
        .post(s.url("/builds"))
        .header("cookie", &pair)
        .header("origin", format!("http://{host}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "same-origin POST with the cookie");
    assert!(
        !cookie.contains(&token),
        "the cookie holds a session id, not the token"
    );
    let r = s
        .http
        .delete(s.url("/session"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let r = s
        .http
        .get(s.url("/builds"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "the session is closed");
}

#[tokio::test]
async fn tls_with_a_given_certificate() {
    common::crypto();
    let dir = tempfile::tempdir().unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let (c2, k2) = (cert.clone(), key.clone());
    let s = common::start(move |c| {
        c.tls = Some(osimager_server::config::TlsConfig { cert: c2, key: k2 })
    })
    .await;
    assert!(s.base.starts_with("https://"));
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = client.get(s.url("/health")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let plain = s.url("/health").replace("https://", "http://");
    let r = reqwest::Client::new().get(plain).send().await;
    assert!(
        r.is_err() || !r.unwrap().status().is_success(),
        "no plain HTTP on the TLS port"
    );
    // A certificate file that is not one is refused with its name.
    std::fs::write(&cert, "not a certificate").unwrap();
    let cfg = osimager_server::ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        state_dir: dir.path().join("state2"),
        tls: Some(osimager_server::config::TlsConfig {
            cert: cert.clone(),
            key,
        }),
        ..Default::default()
    };
    let backend = std::sync::Arc::new(osimager_server::fake::FakeBackend::new(
        dir.path().join("img"),
    ));
    let e = osimager_server::start(cfg, backend)
        .await
        .map(|_| ())
        .expect_err("refused")
        .to_string();
    assert!(e.contains("cert.pem"), "{e}");
}

#[tokio::test]
async fn cors_only_when_configured_and_security_headers() {
    let s = common::start(|_| {}).await;
    let r = s
        .http
        .get(s.url("/health"))
        .header("origin", "https://ui.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    let s = common::start(|c| c.cors_origins = vec!["https://ui.example".into()]).await;
    let r = s
        .http
        .get(s.url("/health"))
        .header("origin", "https://ui.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://ui.example"
    );
    let r = s
        .http
        .get(s.url("/health"))
        .header("origin", "https://other.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_token_never_appears_in_any_answer() {
    // The canary: a valid token, used on every request. Nothing may echo it back.
    let s = common::start(|c| c.require_auth = true).await;
    let canary = new_token();
    s.store
        .create_token("canary", &hash_token(&canary))
        .await
        .unwrap();
    let get = |p: String| s.http.get(s.url(&p)).bearer_auth(&canary).send();
    let mut bodies = Vec::new();
    let r = s
        .http
        .post(s.url("/builds"))
        .bearer_auth(&canary)
        .json(&json!({"target": "qemu/hermetic/testos-1-x86_64", "name": "vm1", "defines": ["fake_step_ms=5"]}))
        .send()
        .await
        .unwrap();
    let headers = format!("{:?}", r.headers());
    let j: Value = r.json().await.unwrap();
    bodies.push(headers + &j.to_string());
    let id = j["id"].as_i64().unwrap();
    for _ in 0..200 {
        let b: Value = get(format!("/builds/{id}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if b["state"] == "succeeded" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for p in [
        "/health".to_string(),
        "/session".into(),
        "/host".into(),
        "/targets".into(),
        "/platforms".into(),
        "/locations".into(),
        "/locations/lab".into(),
        "/targets/qemu/lab/debian-12.12-x86_64".into(),
        "/builds".into(),
        format!("/builds/{id}"),
        format!("/builds/{id}/events"),
        format!("/builds/{id}/log"),
        format!("/builds/{id}/artifacts"),
        format!("/builds/{id}/checksums"),
        format!("/builds/{id}/screenshots"),
        "/nope".into(),
        "/builds/x".into(),
    ] {
        let r = get(p).await.unwrap();
        let h = format!("{:?}", r.headers());
        bodies.push(h + &r.text().await.unwrap());
    }
    let r = s
        .http
        .post(s.url("/session"))
        .json(&json!({"token": canary}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    bodies.push(format!("{:?}", r.headers()));
    let r = s
        .http
        .post(s.url("/session"))
        .json(&json!({"token": format!("{canary}x")}))
        .send()
        .await
        .unwrap();
    bodies.push(r.text().await.unwrap());
    bodies.push(serde_json::to_string(&s.store.tokens().await.unwrap()).unwrap());
    for b in &bodies {
        assert!(!b.contains(&canary), "the token leaked: {b}");
        assert!(!b.contains(&hash_token(&canary)), "its hash leaked: {b}");
    }
}

#[tokio::test]
async fn without_a_built_ui_every_page_says_how_to_build_it() {
    let s = common::start(|_| {}).await;
    let root = s.base.trim_end_matches("/api/v1");
    let r = reqwest::get(format!("{root}/builds/3")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let html = r.text().await.unwrap();
    if osimager_server::ui::built() {
        assert!(
            html.contains("<div id=\"root\">"),
            "the SPA's index.html: {html}"
        );
        let r = reqwest::get(format!("{root}/assets/nope.js"))
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404);
    } else {
        assert!(
            html.contains("The web UI was not built") && html.contains("npm run build"),
            "{html}"
        );
    }
}

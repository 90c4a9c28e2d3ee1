//! Worker tokens (part of tests/api_security.rs): a worker token opens only the worker routes,
//! and only for that worker's own jobs under its current lease.

use super::common;
use osimager_server::auth::{hash_token, new_token};
use osimager_server::store::RecordStore;
use serde_json::{json, Value};

/// A worker token opens only the worker routes, and only for that worker's own jobs under
/// its current lease; an API token does not open the worker routes.
#[tokio::test]
async fn worker_tokens_open_only_the_worker_routes_and_their_own_jobs() {
    use osimager_server::store::TokenRole;
    let s = common::start(|c| {
        c.require_auth = true;
        c.local_worker = false;
    })
    .await;
    let api = new_token();
    s.store.create_token("ci", &hash_token(&api)).await.unwrap();
    let (w1, w2) = (new_token(), new_token());
    for (n, t) in [("w1", &w1), ("w2", &w2)] {
        s.store
            .create_token_as(n, &hash_token(t), TokenRole::Worker)
            .await
            .unwrap();
    }
    let status = |r: reqwest::Response| r.status().as_u16();
    let r = s
        .http
        .get(s.url("/builds"))
        .bearer_auth(&w1)
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 403, "a worker token cannot list builds");
    let r = s
        .http
        .post(s.url("/builds"))
        .bearer_auth(&w1)
        .json(&json!({"target": "qemu/hermetic/testos-1-x86_64"}))
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 403, "nor queue one");
    let caps = json!({"native": ["qemu"], "arch": "x86_64"});
    let r = s
        .http
        .post(s.url("/worker/register"))
        .bearer_auth(&api)
        .json(&caps)
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 403, "an API token is not a worker token");
    for t in [&w1, &w2] {
        let r = s
            .http
            .post(s.url("/worker/register"))
            .bearer_auth(t)
            .json(&caps)
            .send()
            .await
            .unwrap();
        assert_eq!(status(r), 200);
    }
    let r = s
        .http
        .post(s.url("/builds"))
        .bearer_auth(&api)
        .json(&json!({"target": "qemu/hermetic/testos-1-x86_64", "defines": ["fake_hang=launch"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 201);
    let r = s
        .http
        .post(s.url("/worker/claim?wait=5"))
        .bearer_auth(&w1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let claim: Value = r.json().await.unwrap();
    let id = claim["job"]["id"].as_i64().unwrap();
    let lease = claim["lease"].as_u64().unwrap();
    // w2 cannot report into w1's job; w1 cannot under an old lease.
    for (t, l) in [(&w2, lease), (&w1, lease + 1)] {
        let r = s
            .http
            .post(s.url(&format!("/worker/jobs/{id}/result")))
            .bearer_auth(t)
            .json(&json!({"lease": l, "state": "succeeded"}))
            .send()
            .await
            .unwrap();
        assert_eq!(status(r), 409);
        let r = s
            .http
            .put(s.url(&format!("/worker/jobs/{id}/artifacts/x.img?lease={l}")))
            .bearer_auth(t)
            .body("bytes")
            .send()
            .await
            .unwrap();
        assert_eq!(status(r), 409);
    }
    // A cancel reaches w1 in its heartbeat reply.
    let r = s
        .http
        .post(s.url(&format!("/builds/{id}/cancel")))
        .bearer_auth(&api)
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 202);
    let hb: Value = s
        .http
        .post(s.url(&format!("/worker/jobs/{id}/heartbeat")))
        .bearer_auth(&w1)
        .json(&json!({"lease": lease}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hb["cancel"], true);
    // Uploads: resumable by offset, refused at the wrong offset, checked by SHA-256.
    let up = |off: u64, body: &'static str| {
        s.http
            .put(s.url(&format!(
                "/worker/jobs/{id}/artifacts/disk.img?lease={lease}&offset={off}"
            )))
            .bearer_auth(&w1)
            .body(body)
            .send()
    };
    assert_eq!(status(up(0, "hello ").await.unwrap()), 200);
    assert_eq!(status(up(0, "hello ").await.unwrap()), 409, "wrong offset");
    assert_eq!(status(up(6, "world").await.unwrap()), 200);
    let complete = |sum: String| {
        s.http
            .post(s.url(&format!("/worker/jobs/{id}/artifacts/disk.img/complete")))
            .bearer_auth(&w1)
            .json(&json!({"lease": lease, "size": 11, "sha256": sum}))
            .send()
    };
    use sha2::Digest;
    let good = hex::encode(sha2::Sha256::digest(b"hello world"));
    assert_eq!(status(complete("00".repeat(32)).await.unwrap()), 422);
    assert_eq!(
        status(up(0, "hello world").await.unwrap()),
        200,
        "again from 0"
    );
    assert_eq!(status(complete(good.clone()).await.unwrap()), 200);
    let r = s
        .http
        .post(s.url(&format!("/worker/jobs/{id}/result")))
        .bearer_auth(&w1)
        .json(&json!({"lease": lease, "state": "cancelled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 200);
    let bytes = s
        .http
        .get(s.url(&format!("/builds/{id}/artifacts/disk.img")))
        .bearer_auth(&api)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"hello world");
}

//! Shared by the server's integration tests: a server on a loopback port with the fake
//! backend, its state and image directories in a temp dir, and an HTTP client.
#![allow(dead_code)]

use osimager_server::fake::FakeBackend;
use osimager_server::store::SqliteStore;
use osimager_server::{Running, ServerConfig};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct TestServer {
    pub base: String,
    pub ws: String,
    pub running: Option<Running>,
    pub store: Arc<SqliteStore>,
    pub cfg: ServerConfig,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

pub fn crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub async fn start(tune: impl FnOnce(&mut ServerConfig)) -> TestServer {
    crypto();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        state_dir: dir.path().join("state"),
        jobs: Some(2),
        heartbeat_secs: 15,
        shutdown_grace_secs: 10,
        ..Default::default()
    };
    tune(&mut cfg);
    let store = Arc::new(SqliteStore::open(&cfg.database()).unwrap());
    let backend = Arc::new(FakeBackend::new(dir.path().join("images")));
    let running = osimager_server::start_with_store(cfg.clone(), store.clone(), backend)
        .await
        .unwrap();
    let port = running.addr().port();
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    TestServer {
        base: format!("{scheme}://127.0.0.1:{port}/api/v1"),
        ws: format!("ws://127.0.0.1:{port}/api/v1"),
        running: Some(running),
        store,
        cfg,
        dir,
        http: reqwest::Client::new(),
    }
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Queue a build of the fake catalog's test OS with extra defines.
    pub async fn build(&self, defines: &[&str]) -> i64 {
        let (s, j) = self
            .post(
                "/builds",
                serde_json::json!({"target": "qemu/hermetic/testos-1-x86_64", "name": "vm1", "defines": defines}),
            )
            .await;
        assert_eq!(s, 201, "{j}");
        j["id"].as_i64().unwrap()
    }

    /// Wait until the build is in one of `states`.
    pub async fn wait_state(&self, id: i64, states: &[&str], within: Duration) -> Value {
        let end = Instant::now() + within;
        loop {
            let (_, j) = self.get(&format!("/builds/{id}")).await;
            if states.contains(&j["state"].as_str().unwrap_or("")) {
                return j;
            }
            assert!(
                Instant::now() < end,
                "build {id} never reached {states:?}: {j}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }
}

/// Processes whose working directory is under `dir`.
pub fn processes_in(dir: &std::path::Path) -> Vec<i32> {
    osimager_server::reaper::processes_using(dir)
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

//! Remote workers, as separate processes on loopback: one server (`osimager-fake-serve
//! --no-local-worker`) and three workers (`osimager-fake-serve worker`, builds through the
//! fake backend). 30 builds; one worker is killed with SIGKILL while it builds (its jobs are
//! requeued and finished by the others); the server is killed and restarted while jobs are
//! still queued (nothing is lost, nothing runs twice: every job's claim history and records
//! are checked). A labelled build runs only on the worker with that label; an artifact built
//! remotely is downloaded from the server and checked against its SHA-256.

mod common;

use osimager_server::store::{JobStore, RecordStore, SqliteStore, TokenRole, WorkerStore};
use osimager_server::ServerConfig;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process, killed when the test ends (also when it fails).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str], log: &Path) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_osimager-fake-serve"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (Proc(child), line.trim().to_string())
}

fn server(state: &Path, port: u16) -> Proc {
    let (p, line) = spawn(
        &[
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--state-dir",
            state.to_str().unwrap(),
            "--no-local-worker",
            "--worker-timeout-secs",
            "3",
            "--worker-max-claims",
            "3",
        ],
        &state.with_extension(format!("{port}.{}.log", rand_suffix())),
    );
    assert!(line.starts_with("listening on "), "{line}");
    p
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn worker(dir: &Path, name: &str, root: &str, token: &str, labels: &str) -> Proc {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let (p, line) = spawn(
        &[
            "worker",
            "--server",
            root,
            "--token",
            token,
            "--images",
            d.join("images").to_str().unwrap(),
            "--work-dir",
            d.join("work").to_str().unwrap(),
            "--concurrency",
            "2",
            "--heartbeat-ms",
            "300",
            "--labels",
            labels,
        ],
        &d.join("worker.log"),
    );
    assert_eq!(line, "worker running");
    p
}

async fn get(http: &reqwest::Client, url: String) -> Value {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        // The server may be restarting.
        if let Ok(r) = http.get(&url).send().await {
            if let Ok(v) = r.json().await {
                return v;
            }
        }
        assert!(Instant::now() < end, "GET {url}: no answer in 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_thirty_builds_a_worker_killed_and_the_server_restarted() {
    common::crypto();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cfg = ServerConfig {
        state_dir: state.clone(),
        ..Default::default()
    };
    let mut tokens = Vec::new();
    {
        let store = SqliteStore::open(&cfg.database()).unwrap();
        for w in ["w1", "w2", "w3"] {
            let t = osimager_server::auth::new_token();
            store
                .create_token_as(w, &osimager_server::auth::hash_token(&t), TokenRole::Worker)
                .await
                .unwrap();
            tokens.push(t);
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut srv = server(&state, port);
    let root = format!("http://127.0.0.1:{port}");
    let base = format!("{root}/api/v1");
    let http = reqwest::Client::new();

    let r = http
        .post(format!("{base}/worker/claim"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the worker routes need a worker token");

    let mut w1 = worker(dir.path(), "w1", &root, &tokens[0], "");
    let _w2 = worker(dir.path(), "w2", &root, &tokens[1], "site=b");
    let _w3 = worker(dir.path(), "w3", &root, &tokens[2], "");
    let mut ids = Vec::new();
    for i in 0..30 {
        let mut b = json!({
            "target": "qemu/hermetic/testos-1-x86_64",
            "name": format!("job{i}"),
            "defines": ["fake_step_ms=60", "fake_log_lines=5"],
        });
        if i == 29 {
            b["labels"] = json!({"site": "b"});
        }
        let v: Value = http
            .post(format!("{base}/builds"))
            .json(&b)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(v["id"].as_i64().unwrap_or_else(|| panic!("{v}")));
    }

    // Kill w1 while it builds.
    let end = Instant::now() + Duration::from_secs(60);
    let killed_with: Vec<i64> = loop {
        let running = get(&http, format!("{base}/builds?state=running&limit=100")).await;
        let mine: Vec<i64> = running["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["worker"] == "w1")
            .map(|j| j["id"].as_i64().unwrap())
            .collect();
        if !mine.is_empty() {
            break mine;
        }
        assert!(Instant::now() < end, "w1 never ran a build");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    w1.kill9();

    // Restart the server while jobs are still queued.
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let done = get(&http, format!("{base}/builds?state=succeeded&limit=1")).await;
        if done["total"].as_u64().unwrap() >= 8 {
            break;
        }
        assert!(Instant::now() < end, "builds do not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let queued = get(&http, format!("{base}/builds?state=queued&limit=1")).await;
    assert!(
        queued["total"].as_u64().unwrap() > 0,
        "the restart comes mid-queue"
    );
    srv.kill9();
    srv = server(&state, port);

    let end = Instant::now() + Duration::from_secs(240);
    loop {
        let all = get(&http, format!("{base}/builds?limit=100")).await;
        let over = all["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| !matches!(j["state"].as_str(), Some("queued" | "running")))
            .count();
        if over == 30 {
            break;
        }
        assert!(Instant::now() < end, "not all builds ended: {all}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    srv.kill9();

    let store = SqliteStore::open(&cfg.database()).unwrap();
    let mut requeued = 0;
    for &id in &ids {
        let j = store.get(id).await.unwrap().unwrap();
        assert_eq!(
            j.state,
            osimager_server::store::JobState::Succeeded,
            "build {id}: {j:?}"
        );
        assert_ne!(j.worker.as_deref(), Some("w1"), "w1 is dead: build {id}");
        let hist = store.claims(id).await.unwrap();
        match hist.len() {
            1 => {}
            2 => {
                requeued += 1;
                assert_eq!(
                    hist[0].worker, "w1",
                    "only w1's jobs were requeued: {hist:?}"
                );
                assert!(killed_with.contains(&id) || hist[0].worker == "w1");
                assert_eq!(Some(hist[1].worker.as_str()), j.worker.as_deref());
            }
            _ => panic!("build {id} claimed {} times: {hist:?}", hist.len()),
        }
        let ends = store
            .events(id, 0, 100_000, &["build_finished"])
            .await
            .unwrap();
        assert_eq!(ends.len(), 1, "build {id} ended once: {ends:?}");
    }
    assert!(requeued >= 1, "w1's build was requeued: {killed_with:?}");
    for id in &killed_with {
        assert_eq!(store.claims(*id).await.unwrap().len(), 2, "build {id}");
    }
    let labelled = store.get(ids[29]).await.unwrap().unwrap();
    assert_eq!(labelled.worker.as_deref(), Some("w2"), "only w2 has site=b");

    // An artifact built remotely, downloaded from the server, checked.
    let _srv = server(&state, port);
    let arts = get(&http, format!("{base}/builds/{}/artifacts", ids[0])).await;
    let items = arts["items"].as_array().unwrap();
    assert!(!items.is_empty(), "artifacts uploaded: {arts}");
    for a in items {
        let bytes = http
            .get(format!("{root}{}", a["url"].as_str().unwrap()))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            bytes.len() as u64,
            a["size"].as_u64().unwrap(),
            "{a}: {}",
            String::from_utf8_lossy(&bytes)
        );
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            a["sha256"].as_str().unwrap()
        );
    }
}

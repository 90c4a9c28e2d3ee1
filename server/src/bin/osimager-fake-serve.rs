//! `osimager-fake-serve`: the build service with the **fake** backend
//! ([`osimager_server::fake::FakeBackend`]) — no hypervisor, builds that emit a native build's
//! event sequence. For the server's own process-level tests (kill -9 and restart) and the load
//! benchmark (bench/serve.sh); not a product binary.
//!
//! ```text
//! osimager-fake-serve --state-dir DIR --images DIR [--listen 127.0.0.1:0] [--jobs N] [--heartbeat-secs N]
//!     [--no-local-worker] [--worker-timeout-secs N] [--worker-max-claims N] [--postgres URL]
//! osimager-fake-serve worker --server URL --token T --images DIR --work-dir DIR
//!     [--concurrency N] [--labels k=v,…] [--heartbeat-ms N] [--platforms qemu,…]
//! ```

use osimager_server::fake::FakeBackend;
use osimager_server::ServerConfig;
use std::path::PathBuf;
use std::sync::Arc;

fn main() -> std::process::ExitCode {
    if std::env::args().nth(1).as_deref() == Some("worker") {
        return worker();
    }
    let mut cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    let mut images = None;
    let mut postgres = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_default();
        match a.as_str() {
            "--listen" => cfg.listen = val().parse().expect("--listen ADDR:PORT"),
            "--state-dir" => cfg.state_dir = PathBuf::from(val()),
            "--images" => images = Some(PathBuf::from(val())),
            "--jobs" => cfg.jobs = Some(val().parse().expect("--jobs N")),
            "--heartbeat-secs" => cfg.heartbeat_secs = val().parse().expect("--heartbeat-secs N"),
            "--no-local-worker" => cfg.local_worker = false,
            "--worker-timeout-secs" => {
                cfg.worker_timeout_secs = val().parse().expect("--worker-timeout-secs N")
            }
            "--worker-max-claims" => {
                cfg.worker_max_claims = val().parse().expect("--worker-max-claims N")
            }
            "--postgres" => postgres = Some(val()),
            other => {
                eprintln!("osimager-fake-serve: unknown argument {other}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let images = images.unwrap_or_else(|| cfg.state_dir.join("images"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let backend = Arc::new(FakeBackend::new(images));
        let started = match postgres {
            Some(url) => match osimager_server::store::PgStore::connect(&url).await {
                Ok(s) => osimager_server::start_with_store(cfg, Arc::new(s), backend).await,
                Err(e) => Err(e.into()),
            },
            None => osimager_server::start(cfg, backend).await,
        };
        let running = match started {
            Ok(r) => r,
            Err(e) => {
                eprintln!("osimager-fake-serve: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        println!("listening on {}", running.addr());
        let stop = running.stop_token();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            stop.cancel();
        });
        running.wait().await;
        std::process::ExitCode::SUCCESS
    })
}

/// `osimager-fake-serve worker …`: a remote worker whose builds are the fake backend's.
fn worker() -> std::process::ExitCode {
    use osimager_server::store::Capabilities;
    use osimager_server::worker::{run, WorkerConfig};
    let mut server = String::new();
    let mut token = String::new();
    let mut images = PathBuf::from("images");
    let mut work = PathBuf::from("work");
    let mut caps = Capabilities {
        native: vec!["qemu".into()],
        arch: std::env::consts::ARCH.into(),
        concurrency: 1,
        ..Default::default()
    };
    let mut heartbeat_ms = 1000;
    let mut args = std::env::args().skip(2);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_default();
        match a.as_str() {
            "--server" => server = val(),
            "--token" => token = val(),
            "--images" => images = PathBuf::from(val()),
            "--work-dir" => work = PathBuf::from(val()),
            "--concurrency" => caps.concurrency = val().parse().expect("--concurrency N"),
            "--heartbeat-ms" => heartbeat_ms = val().parse().expect("--heartbeat-ms N"),
            "--platforms" => caps.native = val().split(',').map(str::to_string).collect(),
            "--labels" => {
                for kv in val().split(',').filter(|s| !s.is_empty()) {
                    let (k, v) = kv.split_once('=').expect("--labels k=v,…");
                    caps.labels.insert(k.into(), v.into());
                }
            }
            other => {
                eprintln!("osimager-fake-serve worker: unknown argument {other}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cfg = WorkerConfig {
        server,
        token,
        concurrency: caps.concurrency as usize,
        capabilities: caps,
        work_dir: work,
        heartbeat: std::time::Duration::from_millis(heartbeat_ms),
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let stop = tokio_util::sync::CancellationToken::new();
        let s2 = stop.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            s2.cancel();
        });
        println!("worker running");
        match run(cfg, Arc::new(FakeBackend::new(images)), stop).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("osimager-fake-serve worker: {e}");
                std::process::ExitCode::FAILURE
            }
        }
    })
}

//! `osimager-fake-serve`: the build service with the **fake** backend
//! ([`osimager_server::fake::FakeBackend`]) — no hypervisor, builds that emit a native build's
//! event sequence. For the server's own process-level tests (kill -9 and restart) and the load
//! benchmark (bench/serve.sh); not a product binary.
//!
//! ```text
//! osimager-fake-serve --state-dir DIR --images DIR [--listen 127.0.0.1:0] [--jobs N] [--heartbeat-secs N]
//! ```

use osimager_server::fake::FakeBackend;
use osimager_server::ServerConfig;
use std::path::PathBuf;
use std::sync::Arc;

fn main() -> std::process::ExitCode {
    let mut cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    let mut images = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_default();
        match a.as_str() {
            "--listen" => cfg.listen = val().parse().expect("--listen ADDR:PORT"),
            "--state-dir" => cfg.state_dir = PathBuf::from(val()),
            "--images" => images = Some(PathBuf::from(val())),
            "--jobs" => cfg.jobs = Some(val().parse().expect("--jobs N")),
            "--heartbeat-secs" => cfg.heartbeat_secs = val().parse().expect("--heartbeat-secs N"),
            other => {
                eprintln!("osimager-fake-serve: unknown argument {other}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let images = images.unwrap_or_else(|| cfg.state_dir.join("images"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let running = match osimager_server::start(cfg, Arc::new(FakeBackend::new(images))).await {
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

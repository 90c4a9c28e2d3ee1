//! `osimager worker`: a build host of a remote `osimager serve`. It registers what it can
//! build (native drivers whose hypervisor is here, Packer, tools, accelerator, arch, free
//! disk, labels), then claims and runs jobs with the same engine door as the server's own
//! runner ([`super::OsimagerBackend`]: each build is an `osimager serve run-job` child).

use super::OsimagerBackend;
use clap::Args;
use osimager_server::backend::Backend;
use osimager_server::store::Capabilities;
use osimager_server::worker::{run, WorkerConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// `osimager worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The server's URL (https://build.example.org:8443)
    #[arg(long, value_name = "URL", env = "OSIMAGER_SERVER")]
    pub server: String,
    /// The worker token (`osimager serve token create --worker NAME` on the server). Prefer
    /// the environment variable: a command line is visible to every user of the host
    #[arg(
        long,
        value_name = "TOKEN",
        env = "OSIMAGER_WORKER_TOKEN",
        hide_env_values = true
    )]
    pub token: String,
    /// Labels builds can ask for (k=v,…)
    #[arg(
        long,
        value_name = "K=V,…",
        value_delimiter = ',',
        env = "OSIMAGER_WORKER_LABELS"
    )]
    pub labels: Vec<String>,
    /// Builds at once
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        env = "OSIMAGER_WORKER_CONCURRENCY"
    )]
    pub concurrency: usize,
    /// Where builds keep their temp files (default: $XDG_STATE_HOME/osimager/worker)
    #[arg(long, value_name = "DIR", env = "OSIMAGER_WORKER_DIR")]
    pub work_dir: Option<PathBuf>,
    /// Seconds between heartbeats (the server requeues a job after its worker_timeout_secs)
    #[arg(long, value_name = "SECS", default_value_t = 15)]
    pub heartbeat_secs: u64,
}

fn free_disk(dir: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return 0;
    };
    // SAFETY: a valid C string and a zeroed out-struct.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return 0;
    }
    s.f_bavail as u64 * s.f_frsize as u64
}

/// What this host can build.
async fn capabilities(
    backend: &OsimagerBackend,
    labels: BTreeMap<String, String>,
    concurrency: usize,
    work_dir: &Path,
) -> Capabilities {
    let facts = super::host::facts().await;
    let found = |n: &str| facts.tools.iter().any(|t| t.name == n && t.path.is_some());
    let platforms = backend.platforms().await.unwrap_or_default();
    let hypervisor = |builder: &str| -> bool {
        let family = builder.split('-').next().unwrap_or(builder);
        facts.hypervisors.iter().any(|h| h == family)
    };
    Capabilities {
        native: platforms
            .iter()
            .filter(|p| p.native && hypervisor(&p.builder_type))
            .map(|p| p.name.clone())
            .collect(),
        packer: if found("packer") {
            platforms.iter().map(|p| p.name.clone()).collect()
        } else {
            Vec::new()
        },
        tools: facts
            .tools
            .iter()
            .filter(|t| t.path.is_some())
            .map(|t| t.name.clone())
            .collect(),
        accelerator: facts
            .accelerator
            .hardware
            .then(|| facts.accelerator.name.clone()),
        arch: std::env::consts::ARCH.into(),
        free_disk: free_disk(work_dir),
        labels,
        concurrency: concurrency as u32,
    }
}

/// Run `osimager worker`.
pub fn main(args: WorkerArgs, data_dir: Option<PathBuf>) -> ExitCode {
    super::init_logging("info");
    match worker(args, data_dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn worker(args: WorkerArgs, data_dir: Option<PathBuf>) -> Result<(), String> {
    let mut labels = BTreeMap::new();
    for kv in args.labels.iter().filter(|s| !s.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--labels {kv}: a label is KEY=VALUE"))?;
        labels.insert(k.trim().to_string(), v.trim().to_string());
    }
    let work_dir = args
        .work_dir
        .unwrap_or_else(|| osimager_server::config::default_state_dir().join("worker"));
    std::fs::create_dir_all(&work_dir)
        .map_err(|e| format!("creating the work dir {}: {e}", work_dir.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
    let backend = OsimagerBackend { data_dir, exe };
    super::runtime()?.block_on(async move {
        let caps = capabilities(&backend, labels, args.concurrency, &work_dir).await;
        tracing::info!(
            "worker for {}: native {:?}, packer {:?}, {} builds at once",
            args.server,
            caps.native,
            caps.packer,
            args.concurrency
        );
        let cfg = WorkerConfig {
            server: args.server,
            token: args.token,
            capabilities: caps,
            concurrency: args.concurrency.max(1),
            work_dir,
            heartbeat: Duration::from_secs(args.heartbeat_secs.max(1)),
        };
        let stop = tokio_util::sync::CancellationToken::new();
        let s2 = stop.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            tracing::info!("stopping: running builds are stopped and reported");
            s2.cancel();
        });
        run(cfg, Arc::new(backend), stop)
            .await
            .map_err(|e| e.to_string())
    })
}

//! What the store keeps of build workers: their capabilities, which jobs they may claim,
//! the claims they made, and the roles of tokens.

use super::{Job, JobId};
use crate::backend::EngineChoice;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The name servers' own runners claimed jobs under before each had its own
/// ([`local_worker_name`]), and the prefix of those names.
pub const LOCAL_WORKER: &str = "local";

/// Whether `worker` is a server's own runner (of this or of another server sharing the store):
/// it sends no heartbeats, and its jobs are interrupted when that server restarts.
pub fn is_local_worker(worker: &str) -> bool {
    worker == LOCAL_WORKER
        || worker
            .strip_prefix(LOCAL_WORKER)
            .is_some_and(|r| r.starts_with(':'))
}

/// The name this server's own runner claims jobs under: `local:<host name>:<8 hex digits of
/// the state dir's path>`. Unique per server (several servers share one PostgreSQL store, two
/// servers on one host have two state dirs) and the same across restarts, so a restarted
/// server finds its own interrupted jobs and no other server's.
pub fn local_worker_name(state_dir: &std::path::Path) -> String {
    use sha2::Digest;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let dir = state_dir
        .canonicalize()
        .unwrap_or_else(|_| state_dir.to_path_buf());
    let digest = sha2::Sha256::digest(dir.as_os_str().as_encoded_bytes());
    format!("{LOCAL_WORKER}:{host}:{}", &hex::encode(digest)[..8])
}

/// What a token may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenRole {
    /// The whole API (queue, cancel, delete builds, read everything).
    #[default]
    Api,
    /// A build worker: register, claim jobs, report its own jobs, upload their artifacts.
    Worker,
}

impl TokenRole {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::Api => "api",
            TokenRole::Worker => "worker",
        }
    }

    /// From the stored spelling (unknown: the least powerful, `worker`).
    pub fn parse(s: &str) -> TokenRole {
        if s == "api" {
            TokenRole::Api
        } else {
            TokenRole::Worker
        }
    }
}

/// What a worker can build, as it registers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    /// Platforms it builds with a native driver (`qemu`, …).
    pub native: Vec<String>,
    /// Platforms it builds through Packer (Packer and its plugin found).
    pub packer: Vec<String>,
    /// Tools found on its PATH (`qemu-system-x86_64`, `packer`, `ansible-playbook`, …).
    pub tools: Vec<String>,
    /// The hardware accelerator it can use (`kvm`, `hvf`, …), if any.
    pub accelerator: Option<String>,
    /// Its CPU architecture (`x86_64`, `aarch64`).
    pub arch: String,
    /// Free bytes where it builds.
    pub free_disk: u64,
    /// Its labels (`site=lab`, `gpu=yes`).
    pub labels: BTreeMap<String, String>,
    /// How many builds it runs at once.
    pub concurrency: u32,
}

/// A registered worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Its unique name (the worker token's name).
    pub name: String,
    /// What it can build.
    pub capabilities: Capabilities,
    /// When it first registered.
    pub registered_at: String,
    /// When it was last heard from.
    pub last_seen: String,
}

/// Which jobs a claimer may take.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimSpec {
    /// Who claims (recorded as the job's worker).
    pub worker: String,
    /// `None`: any job without labels (the server's own runner). Otherwise what the
    /// worker can build.
    pub can: Option<Capabilities>,
}

impl ClaimSpec {
    /// A claimer that runs any job without labels.
    pub fn any(worker: &str) -> ClaimSpec {
        ClaimSpec {
            worker: worker.into(),
            can: None,
        }
    }

    /// Whether it may run a job of this platform, engine and labels: natively, or through
    /// Packer when the request allows it (`auto` or `packer`), and every label of the job
    /// is among the worker's.
    pub fn can_run(
        &self,
        platform: &str,
        engine: EngineChoice,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        let Some(c) = &self.can else {
            return labels.is_empty();
        };
        let has = |l: &[String]| l.iter().any(|p| p == platform);
        let engine_ok = match engine {
            EngineChoice::Native => has(&c.native),
            EngineChoice::Packer => has(&c.packer),
            EngineChoice::Auto => has(&c.native) || has(&c.packer),
        };
        engine_ok
            && labels
                .iter()
                .all(|(k, v)| c.labels.get(k).is_some_and(|w| w == v))
    }

    /// [`ClaimSpec::can_run`] for a job.
    pub fn can_run_job(&self, job: &Job) -> bool {
        self.can_run(
            job.request.platform(),
            job.request.engine,
            &job.request.labels,
        )
    }
}

/// One claim of a job (its history: a requeued job has several).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimRecord {
    /// The job.
    pub job: JobId,
    /// The lease it was given (1, 2, … per job).
    pub lease: u64,
    /// Who claimed it.
    pub worker: String,
    /// When.
    pub claimed_at: String,
}

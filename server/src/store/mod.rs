//! The job store: queue, history, every build's events, artifacts, screenshots and API tokens.
//!
//! One interface ([`JobStore`]), one conformance suite ([`conformance`]) that any
//! implementation must pass (the osbuild-composer pattern: `jobqueue` + `jobqueuetest`).
//! [`SqliteStore`] is the built-in one (a file under the state dir, WAL).

pub mod conformance;
mod postgres;
mod postgres_queue;
mod postgres_records;
mod sqlite;
mod sqlite_records;
mod sqlite_workers;
mod workers;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use workers::*;

use crate::backend::{CacheChoice, EngineChoice, OnErrorChoice, TargetRef};
use async_trait::async_trait;
use osimager_events::ErrorInfo;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A job's number. Also its build id (as a string) in event records.
pub type JobId = i64;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a free slot.
    Queued,
    /// A build runs it.
    Running,
    /// The image was built.
    Succeeded,
    /// The build failed.
    Failed,
    /// Cancelled before or while it ran.
    Cancelled,
    /// It was running when the server stopped without finishing it (crash, kill -9, power).
    Interrupted,
}

impl JobState {
    /// Every state, in life order.
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Interrupted,
    ];

    /// Over: it will not change again.
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Interrupted => "interrupted",
        }
    }

    /// From the stored spelling.
    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// What was asked: the build request as the API received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRequest {
    /// Target, name, IP, defines.
    #[serde(flatten)]
    pub target: TargetRef,
    /// `--engine`.
    #[serde(default)]
    pub engine: EngineChoice,
    /// `--on-error`.
    #[serde(default)]
    pub on_error: OnErrorChoice,
    /// `--force`.
    #[serde(default)]
    pub force: bool,
    /// `--dry-run`.
    #[serde(default)]
    pub dry_run: bool,
    /// `--cache`: the install cache (native builds).
    #[serde(default, skip_serializing_if = "CacheChoice::is_off")]
    pub cache: CacheChoice,
    /// Higher runs first; equal priorities run in the order they were queued.
    #[serde(default)]
    pub priority: i32,
    /// Only a worker with every one of these labels (`key=value`) may run it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl JobRequest {
    /// The platform of the target (`qemu` of `qemu/lab/debian-12-x86_64`).
    pub fn platform(&self) -> &str {
        self.target.target.split('/').next().unwrap_or_default()
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Its number.
    pub id: JobId,
    /// Its state.
    pub state: JobState,
    /// What was asked.
    pub request: JobRequest,
    /// When it was queued (RFC 3339, UTC, ms).
    pub created_at: String,
    /// When it started running.
    pub started_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// The step running now, or the last one that ran.
    pub step: Option<String>,
    /// Why it failed, was cancelled or interrupted.
    pub error: Option<ErrorInfo>,
    /// The output directory of a successful build.
    pub output_dir: Option<String>,
    /// The job this one retries.
    pub retry_of: Option<JobId>,
    /// Someone asked to cancel it while it ran.
    pub cancel_requested: bool,
    /// Who runs it (the server's own runner: `local`).
    pub worker: Option<String>,
    /// How many times it was claimed: the lease of its current (or last) run. A worker's
    /// reports carry it; one for an older lease is refused (the job went to another worker).
    #[serde(default)]
    pub lease: u64,
    /// The last sign of life of the run (its claim or a heartbeat).
    #[serde(default)]
    pub heartbeat_at: Option<String>,
}

/// A new job.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// What to build.
    pub request: JobRequest,
    /// The job it retries.
    pub retry_of: Option<JobId>,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEnd {
    /// A final state.
    pub state: JobState,
    /// Why it did not succeed.
    pub error: Option<ErrorInfo>,
    /// The output directory.
    pub output_dir: Option<String>,
}

/// Which jobs to list. Newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    /// Only these states (empty: all).
    pub states: Vec<JobState>,
    /// Target contains this (case-insensitive).
    pub target: Option<String>,
    /// Queued at or after (RFC 3339).
    pub since: Option<String>,
    /// Queued before (RFC 3339).
    pub until: Option<String>,
    /// At most this many (the store caps it at 1000).
    pub limit: u32,
    /// Skip this many.
    pub offset: u32,
}

/// A page of jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobPage {
    /// The jobs, newest first.
    pub items: Vec<Job>,
    /// How many match the filter in all.
    pub total: u64,
}

/// One stored event record.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Its sequence number in the build.
    pub seq: u64,
    /// Its `type` (`log`, `step_started`, …).
    pub kind: String,
    /// The record as JSON, exactly as it was streamed.
    pub json: String,
}

/// A file of a build's image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    /// Its name in the API (the file name; unique within the build).
    pub name: String,
    /// Where it is on the build host.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: Option<String>,
}

/// A console screenshot of a build, copied into the server's state dir.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Screenshot {
    /// 0, 1, 2, … in the build.
    pub index: u32,
    /// The `screenshot` event's sequence number.
    pub seq: u64,
    /// Its short name (`boot-wait`, `failure`, …).
    pub name: String,
    /// The copy under the state dir.
    pub file: String,
    /// When it was taken.
    pub time: String,
}

/// An API token as listed (never the token itself, which only its creator saw).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// A short id (the first characters of the hash).
    pub id: String,
    /// The name given at creation.
    pub name: String,
    /// When it was made.
    pub created_at: String,
    /// When it was last accepted.
    pub last_used: Option<String>,
    /// What it may do.
    #[serde(default)]
    pub role: TokenRole,
}

/// Errors of a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed; the message says which operation on which file.
    #[error("job store: {0}")]
    Db(String),
    /// The operation does not fit the job's state (deleting a running job, …).
    #[error("{0}")]
    Conflict(String),
    /// No such job or token.
    #[error("{0}")]
    NotFound(String),
}

/// A result of a store.
pub type StoreResult<T> = Result<T, StoreError>;

/// What a build leaves behind besides its state — its event records, artifacts and
/// screenshots — and the API tokens. Part of every [`JobStore`].
#[async_trait]
pub trait RecordStore: Send + Sync {
    /// Append event records (sequence numbers increase; a repeated one is ignored).
    async fn append_events(&self, id: JobId, events: &[StoredEvent]) -> StoreResult<()>;
    /// Records with `seq >= from`, at most `limit`, in order. `kinds` non-empty: only those.
    async fn events(
        &self,
        id: JobId,
        from: u64,
        limit: u32,
        kinds: &[&str],
    ) -> StoreResult<Vec<StoredEvent>>;

    /// Record an artifact (a repeated name replaces the earlier record).
    async fn put_artifact(&self, id: JobId, artifact: &Artifact) -> StoreResult<()>;
    /// A build's artifacts, by name.
    async fn artifacts(&self, id: JobId) -> StoreResult<Vec<Artifact>>;
    /// Record a screenshot.
    async fn put_screenshot(&self, id: JobId, shot: &Screenshot) -> StoreResult<()>;
    /// A build's screenshots, oldest first.
    async fn screenshots(&self, id: JobId) -> StoreResult<Vec<Screenshot>>;

    /// Store an API token's hash under a unique name. `Conflict` when the name is taken.
    async fn create_token(&self, name: &str, hash: &str) -> StoreResult<TokenInfo> {
        self.create_token_as(name, hash, TokenRole::Api).await
    }
    /// Store a token's hash under a unique name, with its role.
    async fn create_token_as(
        &self,
        name: &str,
        hash: &str,
        role: TokenRole,
    ) -> StoreResult<TokenInfo>;
    /// Every token.
    async fn tokens(&self) -> StoreResult<Vec<TokenInfo>>;
    /// Remove a token by name or id. `NotFound` when neither matches.
    async fn revoke_token(&self, name_or_id: &str) -> StoreResult<()>;
    /// The token with this hash, noting that it was used now.
    async fn check_token(&self, hash: &str) -> StoreResult<Option<TokenInfo>>;
}

/// Remote workers: leased claims, heartbeats, the silence check, and the workers' register.
/// Part of every [`JobStore`].
#[async_trait]
pub trait WorkerStore: Send + Sync {
    /// Take the next queued job this worker can run ([`ClaimSpec::can_run`]): the lease
    /// goes up by one, the heartbeat starts now, the claim is added to the job's history.
    async fn claim_for(&self, spec: &ClaimSpec) -> StoreResult<Option<Job>>;
    /// A sign of life of the run holding `lease`. `Conflict` (fenced) when the job is no
    /// longer running under that lease.
    async fn heartbeat(&self, id: JobId, lease: u64) -> StoreResult<Job>;
    /// [`JobStore::finish`] for the run holding `lease` only. `Conflict` (fenced) otherwise.
    async fn finish_leased(&self, id: JobId, lease: u64, end: JobEnd) -> StoreResult<Job>;
    /// Running jobs of remote workers (not `local`) whose heartbeat is older than `cutoff`
    /// (RFC 3339): requeued when claimed fewer than `max_claims` times, else failed with
    /// the reason. Returns them as they are now.
    async fn requeue_silent(&self, cutoff: &str, max_claims: u64) -> StoreResult<Vec<Job>>;
    /// Every claim of a job, oldest first.
    async fn claims(&self, id: JobId) -> StoreResult<Vec<ClaimRecord>>;
    /// Register (or re-register) a worker; it is seen now.
    async fn put_worker(&self, w: &WorkerInfo) -> StoreResult<WorkerInfo>;
    /// A worker was heard from now.
    async fn touch_worker(&self, name: &str) -> StoreResult<()>;
    /// Every registered worker, by name.
    async fn workers(&self) -> StoreResult<Vec<WorkerInfo>>;
    /// Forget workers not heard from since `cutoff` (RFC 3339). Returns their names.
    async fn drop_silent_workers(&self, cutoff: &str) -> StoreResult<Vec<String>>;
}

/// The queue and history of builds. Every method is atomic.
#[async_trait]
pub trait JobStore: RecordStore + WorkerStore + Send + Sync + 'static {
    /// Queue a job.
    async fn create(&self, new: NewJob) -> StoreResult<Job>;
    /// One job.
    async fn get(&self, id: JobId) -> StoreResult<Option<Job>>;
    /// Jobs matching `filter`, newest first.
    async fn list(&self, filter: &JobFilter) -> StoreResult<JobPage>;
    /// How many jobs are in each state.
    async fn counts(&self) -> StoreResult<Vec<(JobState, u64)>>;
    /// Take the next queued job without labels (highest priority, then oldest) and mark it
    /// running for `worker`. Two callers never get the same job.
    async fn claim(&self, worker: &str) -> StoreResult<Option<Job>> {
        self.claim_for(&ClaimSpec::any(worker)).await
    }
    /// Changes whenever a job is queued or requeued (in any server sharing the store):
    /// a waiting claimer marks it seen, tries to claim, and waits for the next change.
    fn queue_changes(&self) -> tokio::sync::watch::Receiver<u64>;
    /// Remember the step a running job is in.
    async fn set_step(&self, id: JobId, step: &str) -> StoreResult<()>;
    /// End a queued or running job. `None` when it had already ended (the end is not changed).
    async fn finish(&self, id: JobId, end: JobEnd) -> StoreResult<Option<Job>>;
    /// Cancel: a queued job becomes `cancelled` at once; a running one is flagged
    /// `cancel_requested` (its runner stops it and finishes it). `NotFound` when unknown.
    async fn cancel(&self, id: JobId) -> StoreResult<Job>;
    /// After a restart: every `running` job of `worker` becomes `interrupted`. Returns them.
    async fn interrupt_running_of(&self, worker: &str) -> StoreResult<Vec<Job>>;
    /// After a restart: every `running` job claimed under the name all servers' own runners
    /// had before each got its own ([`crate::store::LOCAL_WORKER`]) becomes
    /// `interrupted` (remote workers' jobs go on; the silence check requeues them if they
    /// are gone). A server's runner now interrupts its own with [`JobStore::interrupt_running_of`].
    async fn interrupt_running(&self) -> StoreResult<Vec<Job>> {
        self.interrupt_running_of(crate::store::LOCAL_WORKER).await
    }
    /// Forget an ended job with its events, artifacts and screenshots. `Conflict` while it
    /// is queued or running, `NotFound` when unknown.
    async fn delete(&self, id: JobId) -> StoreResult<()>;
}

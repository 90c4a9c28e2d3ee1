//! A build worker (`osimager worker`): registers with a server, long-polls for jobs it can
//! run, runs each through a [`Backend`] (the same door the server's own runner uses),
//! streams the records, heartbeats (a cancel comes back in the reply), uploads the
//! artifacts (streamed, resumable by offset, SHA-256 checked by the server) and reports the
//! end. A job the server gave to another worker (this one was cut off too long) is dropped:
//! the server answers 409 to anything under the old lease, and the build is stopped.

use crate::api::worker::{EventsBody, LeaseBody, ResultBody};
use crate::backend::{Backend, BuildSpec};
use crate::recorder::ChannelSink;
use crate::store::{Capabilities, Job, JobState};
use osimager_events::{BuildEvent, BuildResult, EventRecord};
use reqwest::StatusCode;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

/// What a worker is told.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The server's root URL (`https://build.example.org:8000`).
    pub server: String,
    /// Its worker token.
    pub token: String,
    /// What it can build (labels included).
    pub capabilities: Capabilities,
    /// Builds at once.
    pub concurrency: usize,
    /// Where builds keep their temp files (a dir per job).
    pub work_dir: PathBuf,
    /// Seconds between heartbeats.
    pub heartbeat: Duration,
}

/// An error of the worker (which call, what the server said).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WorkerError(String);

/// The HTTP side.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base.trim_end_matches('/'))
    }

    async fn post<B: serde::Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(StatusCode, Value), WorkerError> {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(|e| WorkerError(format!("POST {path}: {e}")))?;
        let st = r.status();
        let v = r.json().await.unwrap_or(Value::Null);
        Ok((st, v))
    }
}

fn refused(path: &str, st: StatusCode, v: &Value) -> WorkerError {
    WorkerError(format!(
        "{path}: the server answered {st}: {}",
        v["message"].as_str().unwrap_or("(no message)")
    ))
}

/// Register, then claim and run jobs until `stop`.
pub async fn run(
    cfg: WorkerConfig,
    backend: Arc<dyn Backend>,
    stop: CancellationToken,
) -> Result<(), WorkerError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| WorkerError(format!("making the HTTP client: {e}")))?;
    let c = Client {
        http,
        base: cfg.server.clone(),
        token: cfg.token.clone(),
    };
    register(&c, &cfg.capabilities).await?;
    let slots = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
    let tasks = tokio_util::task::TaskTracker::new();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.map_err(|e| WorkerError(e.to_string()))?,
            _ = stop.cancelled() => break,
        };
        let empty = serde_json::json!({});
        let claimed = tokio::select! {
            r = c.post("/worker/claim?wait=30", &empty) => r,
            _ = stop.cancelled() => break,
        };
        match claimed {
            Ok((StatusCode::OK, v)) => {
                let job: Job = serde_json::from_value(v["job"].clone())
                    .map_err(|e| WorkerError(format!("a claimed job: {e}")))?;
                let lease = v["lease"].as_u64().unwrap_or(job.lease);
                let (c, b, cfg, stop) = (c.clone(), backend.clone(), cfg.clone(), stop.clone());
                tasks.spawn(async move {
                    let id = job.id;
                    if let Err(e) = run_job(&c, b, &cfg, job, lease, stop).await {
                        tracing::error!(build = id, "{e}");
                    }
                    drop(permit);
                });
            }
            Ok((StatusCode::NO_CONTENT, _)) => {}
            Ok((StatusCode::CONFLICT, _)) => {
                // Dropped from the list after a long silence: register again.
                register(&c, &cfg.capabilities).await?;
            }
            Ok((st, v)) if st == StatusCode::UNAUTHORIZED || st == StatusCode::FORBIDDEN => {
                return Err(refused("claiming a job", st, &v));
            }
            Ok((st, v)) => {
                tracing::warn!("{}", refused("claiming a job", st, &v));
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => {
                tracing::warn!("{e}; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    tasks.close();
    tasks.wait().await;
    Ok(())
}

async fn register(c: &Client, caps: &Capabilities) -> Result<(), WorkerError> {
    let mut wait = Duration::from_millis(200);
    loop {
        match c.post("/worker/register", caps).await {
            Ok((StatusCode::OK, _)) => return Ok(()),
            Ok((st, v)) => return Err(refused("registering", st, &v)),
            Err(e) => {
                tracing::warn!("{e}; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Run one job to its end (or until the server says it is no longer ours).
async fn run_job(
    c: &Client,
    backend: Arc<dyn Backend>,
    cfg: &WorkerConfig,
    job: Job,
    lease: u64,
    stop: CancellationToken,
) -> Result<(), WorkerError> {
    let id = job.id;
    let work_dir = cfg.work_dir.join(id.to_string());
    let _ = std::fs::create_dir_all(&work_dir);
    let spec = BuildSpec {
        id: id.to_string(),
        target: job.request.target.clone(),
        engine: job.request.engine,
        on_error: job.request.on_error,
        force: job.request.force,
        dry_run: job.request.dry_run,
        cache: job.request.cache,
        work_dir: work_dir.clone(),
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<EventRecord>();
    let handle = backend.start(spec, Arc::new(ChannelSink(tx)));
    let cancel = handle.cancel.clone();
    let fenced = CancellationToken::new();
    // Heartbeats: a cancel in the reply stops the build; a 409 means the job went elsewhere.
    let beat = {
        let (c, cancel, fenced) = (c.clone(), cancel.clone(), fenced.clone());
        let every = cfg.heartbeat;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let path = format!("/worker/jobs/{id}/heartbeat");
                match c.post(&path, &LeaseBody { lease }).await {
                    Ok((StatusCode::OK, v)) if v["cancel"] == true => cancel.cancel(),
                    Ok((StatusCode::CONFLICT | StatusCode::NOT_FOUND, _)) => {
                        fenced.cancel();
                        cancel.cancel();
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(build = id, "heartbeat: {e}"),
                }
            }
        })
    };
    let stopping = stop.clone();
    let cancel2 = cancel.clone();
    let stop_watch = tokio::spawn(async move {
        stopping.cancelled().await;
        cancel2.cancel();
    });
    let mut sent: u64 = 0;
    let mut ending = None;
    let mut artifacts = Vec::new();
    let mut done = handle.done;
    let mut finished = false;
    loop {
        let first = tokio::select! {
            r = rx.recv() => r,
            r = &mut done, if !finished => {
                finished = true;
                if let Err(e) = r {
                    tracing::warn!(build = id, "the build did not report its end: {}", e.message);
                }
                continue;
            }
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        for r in &batch {
            match &r.event {
                BuildEvent::Artifact { path, .. } => artifacts.push(PathBuf::from(path)),
                BuildEvent::BuildFinished {
                    result,
                    error,
                    output_dir,
                    ..
                } => ending = Some((*result, error.clone(), output_dir.clone())),
                _ => {}
            }
        }
        if fenced.is_cancelled() {
            continue;
        }
        let n = batch.len() as u64;
        send_events(c, id, lease, sent, batch, &fenced).await;
        sent += n;
    }
    beat.abort();
    stop_watch.abort();
    if fenced.is_cancelled() {
        let _ = std::fs::remove_dir_all(&work_dir);
        return Err(WorkerError(format!(
            "build {id}: the server gave it to another worker (lease {lease} no longer valid); \
             stopped it"
        )));
    }
    let (result, error, output_dir) = ending.unwrap_or((
        BuildResult::Failed,
        Some(osimager_events::ErrorInfo {
            kind: osimager_events::ErrorKind::Internal,
            message: "the build ended without reporting its result".into(),
            step: None,
        }),
        None,
    ));
    let mut state = match result {
        BuildResult::Succeeded => JobState::Succeeded,
        BuildResult::Failed => JobState::Failed,
        BuildResult::Cancelled => JobState::Cancelled,
    };
    let mut error = error;
    if state == JobState::Succeeded {
        for a in &artifacts {
            if let Err(e) = crate::worker_upload::upload(c.clone_parts(), id, lease, a).await {
                state = JobState::Failed;
                error = Some(osimager_events::ErrorInfo {
                    kind: osimager_events::ErrorKind::Internal,
                    message: format!("uploading {}: {e}", a.display()),
                    step: None,
                });
                break;
            }
        }
    } else if stop.is_cancelled() {
        state = JobState::Interrupted;
    }
    let body = ResultBody {
        lease,
        state,
        error,
        output_dir,
    };
    let path = format!("/worker/jobs/{id}/result");
    let mut wait = Duration::from_millis(200);
    let r = loop {
        match c.post(&path, &body).await {
            Ok(r) => break r,
            Err(e) if wait < Duration::from_secs(60) => {
                tracing::warn!(build = id, "{e}; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => {
                break (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Value::String(e.to_string()),
                )
            }
        }
    };
    let _ = std::fs::remove_dir_all(&work_dir);
    match r {
        (StatusCode::OK, _) => Ok(()),
        (st, v) => Err(refused(&path, st, &v)),
    }
}

/// Send a batch of records, retrying through dropped connections (the server skips the
/// records it already has).
async fn send_events(
    c: &Client,
    id: i64,
    lease: u64,
    first: u64,
    records: Vec<EventRecord>,
    fenced: &CancellationToken,
) {
    let body = EventsBody {
        lease,
        first,
        records,
    };
    let path = format!("/worker/jobs/{id}/events");
    let mut wait = Duration::from_millis(100);
    loop {
        match c.post(&path, &body).await {
            Ok((StatusCode::OK, _)) => return,
            Ok((StatusCode::CONFLICT | StatusCode::NOT_FOUND, _)) => {
                fenced.cancel();
                return;
            }
            Ok((st, v)) => {
                tracing::warn!(build = id, "{}", refused(&path, st, &v));
                return;
            }
            Err(e) if wait < Duration::from_secs(30) => {
                tracing::warn!(build = id, "{e}; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => {
                tracing::error!(build = id, "{e}; records lost");
                return;
            }
        }
    }
}

impl Client {
    fn clone_parts(&self) -> crate::worker_upload::Conn {
        crate::worker_upload::Conn {
            http: self.http.clone(),
            base: self.base.clone(),
            token: self.token.clone(),
        }
    }
}

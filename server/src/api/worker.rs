//! The worker routes (`/api/v1/worker/…`): remote build hosts register, long-poll for a job
//! they can run, heartbeat (and learn of a cancel in the reply), stream the build's records,
//! upload its artifacts (streamed, resumable by offset, SHA-256 checked) and report the end.
//! Every route needs a worker token; a job route needs the job to be that worker's under
//! the lease it names, so a worker cut off and back cannot touch a job given to another.

use super::guard::worker_of;
use super::{ApiError, AppState};
use crate::recorder::Recorder;
use crate::store::{Capabilities, ClaimSpec, Job, JobEnd, JobId, JobState, WorkerInfo};
use crate::view::{job_json, JobView};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use osimager_events::{ErrorInfo, EventRecord};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The records of remote runs being received, by job.
#[derive(Default)]
pub struct RemoteRuns(tokio::sync::Mutex<HashMap<JobId, RemoteRun>>);

struct RemoteRun {
    lease: u64,
    /// The worker's next record number (records below it were taken already).
    accepted: u64,
    rec: Recorder,
}

impl RemoteRuns {
    /// Forget a job's run (it ended or was requeued).
    pub async fn forget(&self, id: JobId) {
        self.0.lock().await.remove(&id);
    }
}

/// `POST /worker/register`.
pub async fn register(
    State(app): State<AppState>,
    headers: HeaderMap,
    Json(caps): Json<Capabilities>,
) -> Result<Json<WorkerInfo>, ApiError> {
    let name = worker_of(&app, &headers).await?;
    let w = WorkerInfo {
        name,
        capabilities: caps,
        registered_at: String::new(),
        last_seen: String::new(),
    };
    Ok(Json(app.store.put_worker(&w).await?))
}

/// Query of `POST /worker/claim`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimQuery {
    /// Seconds to wait for a job (at most 60).
    /// Seconds to wait for a job (at most 60).
    #[serde(default)]
    pub wait: u64,
}

/// `POST /worker/claim?wait=SECS`: a job (200 `{job, lease}`) or none in time (204).
pub async fn claim(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ClaimQuery>,
) -> Result<Response, ApiError> {
    let name = worker_of(&app, &headers).await?;
    let me = app
        .store
        .workers()
        .await?
        .into_iter()
        .find(|w| w.name == name)
        .ok_or_else(|| {
            ApiError::conflict(format!(
                "worker '{name}' is not registered (or was dropped after a long silence): \
                 POST /api/v1/worker/register first"
            ))
        })?;
    app.store.touch_worker(&name).await?;
    let spec = ClaimSpec {
        worker: name,
        can: Some(me.capabilities),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(q.wait.min(60));
    let mut changes = app.store.queue_changes();
    loop {
        changes.borrow_and_update();
        if let Some(job) = app.store.claim_for(&spec).await? {
            let id = job.id;
            let next = app
                .store
                .events(id, 0, u32::MAX, &[])
                .await?
                .last()
                .map_or(0, |e| e.seq + 1);
            let rec = Recorder::new(
                id,
                app.store.clone(),
                app.hub.clone(),
                app.state_dir.join("builds").join(id.to_string()),
            )
            .starting_at(next);
            app.remote.0.lock().await.insert(
                id,
                RemoteRun {
                    lease: job.lease,
                    accepted: 0,
                    rec,
                },
            );
            app.hub.open(id);
            app.hub.publish_job(id, &job_json(&job));
            let lease = job.lease;
            return Ok(Json(json!({"job": JobView::from(job), "lease": lease})).into_response());
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep_until(deadline) => return Ok(StatusCode::NO_CONTENT.into_response()),
            // A job queued by another server whose announcement was missed.
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = app.shutdown.cancelled() => return Ok(StatusCode::NO_CONTENT.into_response()),
        }
    }
}

/// The job, when it runs on `worker` under `lease`.
async fn owned(app: &AppState, worker: &str, id: JobId, lease: u64) -> Result<Job, ApiError> {
    let job = app
        .store
        .get(id)
        .await?
        .ok_or_else(|| ApiError::no_build(id))?;
    if job.worker.as_deref() != Some(worker) || job.lease != lease || job.state != JobState::Running
    {
        return Err(ApiError::conflict(format!(
            "build {id} under lease {lease} is not yours to report (it is {} under lease {} \
             on worker {}): stop working on it",
            job.state.as_str(),
            job.lease,
            job.worker.as_deref().unwrap_or("-")
        )));
    }
    Ok(job)
}

/// Body of a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseBody {
    /// The lease the claim gave.
    pub lease: u64,
}

/// `POST /worker/jobs/{id}/heartbeat {lease}` → `{cancel}`.
pub async fn heartbeat(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<JobId>,
    Json(b): Json<LeaseBody>,
) -> Result<Json<Value>, ApiError> {
    let name = worker_of(&app, &headers).await?;
    owned(&app, &name, id, b.lease).await?;
    let job = app.store.heartbeat(id, b.lease).await?;
    app.store.touch_worker(&name).await?;
    Ok(Json(json!({"cancel": job.cancel_requested})))
}

/// Body of `POST /worker/jobs/{id}/events`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventsBody {
    /// The lease the claim gave.
    pub lease: u64,
    /// The worker's number of the first record (its own count from 0).
    pub first: u64,
    /// The records, in order.
    pub records: Vec<EventRecord>,
}

/// `POST /worker/jobs/{id}/events {lease, first, records}` → `{accepted}` (the worker's
/// next record number; records sent again are skipped).
pub async fn events(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<JobId>,
    Json(b): Json<EventsBody>,
) -> Result<Json<Value>, ApiError> {
    let name = worker_of(&app, &headers).await?;
    let job = owned(&app, &name, id, b.lease).await?;
    let mut runs = app.remote.0.lock().await;
    let run = match runs.get_mut(&id) {
        Some(r) if r.lease == b.lease => r,
        _ => {
            // The server restarted during the run: go on after what is stored.
            let next = app
                .store
                .events(id, 0, u32::MAX, &[])
                .await?
                .last()
                .map_or(0, |e| e.seq + 1);
            let rec = Recorder::new(
                id,
                app.store.clone(),
                app.hub.clone(),
                app.state_dir.join("builds").join(id.to_string()),
            )
            .starting_at(next);
            app.hub.open(id);
            runs.insert(
                id,
                RemoteRun {
                    lease: job.lease,
                    accepted: b.first,
                    rec,
                },
            );
            runs.get_mut(&id).expect("just inserted")
        }
    };
    for (i, r) in b.records.into_iter().enumerate() {
        let n = b.first + i as u64;
        if n < run.accepted {
            continue;
        }
        run.rec.take(r).await;
        run.accepted = n + 1;
    }
    run.rec.flush().await;
    Ok(Json(json!({"accepted": run.accepted})))
}

/// Body of `POST /worker/jobs/{id}/result`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultBody {
    /// The lease the claim gave.
    pub lease: u64,
    /// A final state.
    pub state: JobState,
    /// Why it did not succeed.
    #[serde(default)]
    pub error: Option<ErrorInfo>,
    /// Where the image is on the worker.
    #[serde(default)]
    pub output_dir: Option<String>,
}

/// `POST /worker/jobs/{id}/result {lease, state, error?, output_dir?}` → the job.
pub async fn result(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<JobId>,
    Json(b): Json<ResultBody>,
) -> Result<Json<JobView>, ApiError> {
    let name = worker_of(&app, &headers).await?;
    owned(&app, &name, id, b.lease).await?;
    if let Some(mut run) = app.remote.0.lock().await.remove(&id) {
        if run.rec.ending.is_none() {
            run.rec
                .synthesize_end(format!(
                    "worker '{name}' reported {} without a build_finished record",
                    b.state.as_str()
                ))
                .await;
        }
        run.rec.flush().await;
    }
    let job = app
        .store
        .finish_leased(
            id,
            b.lease,
            JobEnd {
                state: b.state,
                error: b.error,
                output_dir: b.output_dir,
            },
        )
        .await?;
    app.hub.publish_job(id, &job_json(&job));
    app.hub.remove(id);
    Ok(Json(JobView::from(job)))
}

/// Query of an artifact upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadQuery {
    /// The lease the claim gave.
    pub lease: u64,
    /// Where these bytes go (what arrived so far).
    #[serde(default)]
    pub offset: u64,
}

fn upload_paths(app: &AppState, id: JobId, name: &str) -> Result<(PathBuf, PathBuf), ApiError> {
    if name.is_empty()
        || name.starts_with('.')
        || name.contains(['/', '\\', '\0'])
        || name.len() > 200
    {
        return Err(ApiError::invalid(
            "name",
            "an artifact name is a plain file name (no '/', not starting with '.')",
        ));
    }
    let dir = app.state_dir.join("builds").join(id.to_string());
    Ok((
        dir.join("uploads").join(format!("{name}.part")),
        dir.join("artifacts").join(name),
    ))
}

/// `GET /worker/jobs/{id}/artifacts/{name}?lease=L` → `{size}` received so far (resume there).
pub async fn upload_status(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((id, name)): Path<(JobId, String)>,
    Query(q): Query<UploadQuery>,
) -> Result<Json<Value>, ApiError> {
    let worker = worker_of(&app, &headers).await?;
    owned(&app, &worker, id, q.lease).await?;
    let (part, _) = upload_paths(&app, id, &name)?;
    let size = tokio::fs::metadata(&part).await.map_or(0, |m| m.len());
    Ok(Json(json!({"size": size})))
}

/// `PUT /worker/jobs/{id}/artifacts/{name}?lease=L&offset=O`: bytes from `O` (which must be
/// what was received so far) → `{size}`.
pub async fn upload(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((id, name)): Path<(JobId, String)>,
    Query(q): Query<UploadQuery>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let worker = worker_of(&app, &headers).await?;
    owned(&app, &worker, id, q.lease).await?;
    let (part, _) = upload_paths(&app, id, &name)?;
    let io = |what: &str, e: std::io::Error| {
        ApiError::internal(format!("{what} {}: {e}", part.display()))
    };
    if let Some(dir) = part.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| io("creating the directory of", e))?;
    }
    let have = tokio::fs::metadata(&part).await.map_or(0, |m| m.len());
    if q.offset != have {
        return Err(ApiError::conflict(format!(
            "the upload of {name} is at byte {have}, not {}: resume from {have}",
            q.offset
        )));
    }
    let mut f = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&part)
        .await
        .map_err(|e| io("opening", e))?;
    let mut stream = body.into_data_stream();
    let mut size = have;
    while let Some(chunk) = stream.next().await {
        // A dropped connection: what arrived is kept; the worker resumes from there.
        let Ok(chunk) = chunk else { break };
        f.write_all(&chunk).await.map_err(|e| io("writing", e))?;
        size += chunk.len() as u64;
    }
    f.flush().await.map_err(|e| io("writing", e))?;
    Ok(Json(json!({"size": size})))
}

/// Body of `POST /worker/jobs/{id}/artifacts/{name}/complete`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompleteBody {
    /// The lease the claim gave.
    pub lease: u64,
    /// Bytes in all.
    pub size: u64,
    /// SHA-256 of the whole file, hex.
    pub sha256: String,
}

/// `POST /worker/jobs/{id}/artifacts/{name}/complete {lease, size, sha256}`: check the
/// upload and make it the build's artifact.
pub async fn complete(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((id, name)): Path<(JobId, String)>,
    Json(b): Json<CompleteBody>,
) -> Result<Json<Value>, ApiError> {
    let worker = worker_of(&app, &headers).await?;
    owned(&app, &worker, id, b.lease).await?;
    let (part, dest) = upload_paths(&app, id, &name)?;
    let p = part.clone();
    let (size, sum) = tokio::task::spawn_blocking(move || -> std::io::Result<(u64, String)> {
        let mut f = std::fs::File::open(&p)?;
        let mut h = Sha256::new();
        let n = std::io::copy(&mut f, &mut h)?;
        Ok((n, hex::encode(h.finalize())))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::conflict(format!("no upload of {name} to complete: {e}")))?;
    if size != b.size || !sum.eq_ignore_ascii_case(&b.sha256) {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "checksum_mismatch",
            format!(
                "{name}: received {size} bytes with SHA-256 {sum}, the worker sent {} bytes \
                 with {}; the upload was discarded: upload it again from offset 0",
                b.size, b.sha256
            ),
        ));
    }
    if let Some(dir) = dest.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| ApiError::internal(format!("creating {}: {e}", dir.display())))?;
    }
    tokio::fs::rename(&part, &dest)
        .await
        .map_err(|e| ApiError::internal(format!("moving {}: {e}", part.display())))?;
    app.store
        .put_artifact(
            id,
            &crate::store::Artifact {
                name: name.clone(),
                path: dest.to_string_lossy().into_owned(),
                size,
                sha256: Some(sum.clone()),
            },
        )
        .await?;
    Ok(Json(json!({"name": name, "size": size, "sha256": sum})))
}

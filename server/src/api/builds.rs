//! Builds: queue, list, look at, cancel, retry, delete; their events and log by offset.

use super::catalog::check_target_ref;
use super::{ApiError, AppState, JsonBody, Params};
use crate::backend::{CacheChoice, EngineChoice, OnErrorChoice, TargetRef};
use crate::store::{JobFilter, JobId, JobRequest, JobState, NewJob};
use crate::view::{job_json, JobView};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// `POST /builds`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBuild {
    target: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    ip: Option<String>,
    #[serde(default)]
    defines: Vec<String>,
    #[serde(default)]
    engine: EngineChoice,
    #[serde(default)]
    on_error: OnErrorChoice,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    cache: CacheChoice,
    /// Only a worker with these labels may run it.
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
}

pub type IdPath = Result<Path<JobId>, PathRejection>;

pub fn id_of(path: IdPath) -> Result<JobId, ApiError> {
    match path {
        Ok(Path(id)) => Ok(id),
        Err(_) => Err(ApiError::invalid(
            "id",
            "a build id is a number (as in /api/v1/builds/42)",
        )),
    }
}

pub async fn create(
    State(app): State<AppState>,
    JsonBody(b): JsonBody<CreateBuild>,
) -> Result<Response, ApiError> {
    let target = TargetRef {
        target: b.target.trim().to_string(),
        name: b.name.filter(|n| !n.is_empty()),
        ip: b.ip.filter(|i| !i.is_empty()),
        defines: b.defines,
    };
    check_target_ref(&target)?;
    if !(-1000..=1000).contains(&b.priority) {
        return Err(ApiError::invalid(
            "priority",
            "priority must be between -1000 and 1000",
        ));
    }
    let v = app.backend.validate(&target).await?;
    if !v.ok {
        let problems: Vec<String> = v
            .problems
            .iter()
            .map(|p| match &p.key {
                Some(k) => format!("{k}: {}", p.message),
                None => p.message.clone(),
            })
            .collect();
        return Err(ApiError {
            field: Some("target".into()),
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_target",
                format!("the target cannot be built: {}", problems.join("; ")),
            )
        });
    }
    let request = JobRequest {
        target,
        engine: b.engine,
        on_error: b.on_error,
        force: b.force,
        dry_run: b.dry_run,
        cache: b.cache,
        priority: b.priority,
        labels: b.labels,
    };
    queue(
        &app,
        NewJob {
            request,
            retry_of: None,
        },
    )
    .await
}

async fn queue(app: &AppState, new: NewJob) -> Result<Response, ApiError> {
    let job = app.store.create(new).await?;
    app.hub.open(job.id);
    app.hub.publish_job(job.id, &job_json(&job));
    app.sched.wake();
    let loc = format!("/api/v1/builds/{}", job.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, loc)],
        Json(JobView::from(job)),
    )
        .into_response())
}

pub async fn list(State(app): State<AppState>, p: Params) -> Result<Json<Value>, ApiError> {
    p.only(&["state", "target", "since", "until", "limit", "offset"])?;
    let mut states = Vec::new();
    for s in p.all("state").iter().flat_map(|s| s.split(',')) {
        states.push(JobState::parse(s.trim()).ok_or_else(|| {
            ApiError::invalid(
                "state",
                format!(
                    "unknown state '{s}'; states: queued, running, succeeded, failed, cancelled, interrupted"
                ),
            )
        })?);
    }
    for k in ["since", "until"] {
        if let Some(t) = p.str(k) {
            humantime::parse_rfc3339_weak(t).map_err(|_| {
                ApiError::invalid(
                    k,
                    format!("{k} must be an RFC 3339 time (2026-12-07T10:00:00Z), not '{t}'"),
                )
            })?;
        }
    }
    let limit = p.u64("limit")?.unwrap_or(50);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::invalid(
            "limit",
            "limit must be between 1 and 1000",
        ));
    }
    let offset = p.u64("offset")?.unwrap_or(0).min(u64::from(u32::MAX)) as u32;
    let f = JobFilter {
        states,
        target: p.str("target").map(str::to_string),
        since: p.str("since").map(normalize_time),
        until: p.str("until").map(normalize_time),
        limit: limit as u32,
        offset,
    };
    let page = app.store.list(&f).await?;
    let items: Vec<JobView> = page.items.into_iter().map(JobView::from).collect();
    Ok(Json(
        json!({"items": items, "total": page.total, "limit": limit, "offset": offset}),
    ))
}

/// The store compares times as text: write them like it does (UTC, milliseconds).
fn normalize_time(t: &str) -> String {
    humantime::parse_rfc3339_weak(t)
        .map(|t| humantime::format_rfc3339_millis(t).to_string())
        .unwrap_or_else(|_| t.to_string())
}

pub async fn get(State(app): State<AppState>, path: IdPath) -> Result<Json<JobView>, ApiError> {
    let id = id_of(path)?;
    let job = app
        .store
        .get(id)
        .await?
        .ok_or_else(|| ApiError::no_build(id))?;
    Ok(Json(JobView::from(job)))
}

pub async fn cancel(State(app): State<AppState>, path: IdPath) -> Result<Response, ApiError> {
    let id = id_of(path)?;
    let before = app
        .store
        .get(id)
        .await?
        .ok_or_else(|| ApiError::no_build(id))?;
    if before.state.is_final() && before.state != JobState::Cancelled {
        return Err(ApiError::conflict(format!(
            "build {id} already {}: nothing to cancel",
            before.state.as_str()
        )));
    }
    let job = app.sched.cancel(id).await?;
    Ok((StatusCode::ACCEPTED, Json(JobView::from(job))).into_response())
}

pub async fn retry(State(app): State<AppState>, path: IdPath) -> Result<Response, ApiError> {
    let id = id_of(path)?;
    let job = app
        .store
        .get(id)
        .await?
        .ok_or_else(|| ApiError::no_build(id))?;
    if !job.state.is_final() {
        return Err(ApiError::conflict(format!(
            "build {id} is {}: retry it once it has ended (or cancel it first)",
            job.state.as_str()
        )));
    }
    queue(
        &app,
        NewJob {
            request: job.request,
            retry_of: Some(id),
        },
    )
    .await
}

pub async fn delete(State(app): State<AppState>, path: IdPath) -> Result<StatusCode, ApiError> {
    let id = id_of(path)?;
    app.store.delete(id).await?;
    let files = app.state_dir.join("builds").join(id.to_string());
    let work = app.sched.work_dir(id);
    let _ = tokio::task::spawn_blocking(move || {
        let _ = std::fs::remove_dir_all(files);
        crate::reaper::sweep(&work, std::time::Duration::from_secs(10));
    })
    .await;
    Ok(StatusCode::NO_CONTENT)
}

async fn known(app: &AppState, id: JobId) -> Result<(), ApiError> {
    match app.store.get(id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::no_build(id)),
    }
}

pub async fn events(
    State(app): State<AppState>,
    path: IdPath,
    p: Params,
) -> Result<Response, ApiError> {
    let id = id_of(path)?;
    p.only(&["from", "limit", "type"])?;
    known(&app, id).await?;
    let from = p.u64("from")?.unwrap_or(0);
    let limit = p.u64("limit")?.unwrap_or(1000).clamp(1, 10_000) as u32;
    let kinds: Vec<&str> = p
        .all("type")
        .into_iter()
        .flat_map(|t| t.split(','))
        .collect();
    let evs = app.store.events(id, from, limit, &kinds).await?;
    let next = evs.last().map_or(from, |e| e.seq + 1);
    // The records go out exactly as stored: no re-encoding.
    let mut body = String::with_capacity(evs.iter().map(|e| e.json.len() + 1).sum::<usize>() + 40);
    body.push_str(r#"{"items":["#);
    for (i, e) in evs.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&e.json);
    }
    body.push_str(&format!(r#"],"next":{next}}}"#));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

pub async fn log(
    State(app): State<AppState>,
    path: IdPath,
    p: Params,
) -> Result<Response, ApiError> {
    let id = id_of(path)?;
    p.only(&["from", "limit", "format"])?;
    known(&app, id).await?;
    let from = p.u64("from")?.unwrap_or(0);
    let limit = p.u64("limit")?.unwrap_or(1000).clamp(1, 10_000) as u32;
    let text = match p.str("format") {
        None | Some("json") => false,
        Some("text") => true,
        Some(f) => {
            return Err(ApiError::invalid(
                "format",
                format!("format is json or text, not '{f}'"),
            ))
        }
    };
    let evs = app.store.events(id, from, limit, &["log"]).await?;
    let next = evs.last().map_or(from, |e| e.seq + 1);
    let lines: Vec<Value> = evs
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(&e.json).ok())
        .map(|v| {
            json!({
                "seq": v["seq"], "time": v["time"], "source": v["source"],
                "line": v["line"], "detail": v.get("detail").cloned().unwrap_or(Value::Bool(false)),
            })
        })
        .collect();
    if text {
        let mut out = String::new();
        for l in &lines {
            out.push_str(l["line"].as_str().unwrap_or(""));
            out.push('\n');
        }
        return Ok((
            [
                (
                    header::CONTENT_TYPE,
                    "text/plain; charset=utf-8".to_string(),
                ),
                (
                    header::HeaderName::from_static("x-next-offset"),
                    next.to_string(),
                ),
            ],
            out,
        )
            .into_response());
    }
    Ok(Json(json!({"items": lines, "next": next})).into_response())
}

//! A build's files: artifacts (download with Range, checksums) and console screenshots.
//! Only what the build recorded is served, looked up by name or index — a request never
//! names a path — and never through a symlink.

use super::builds::{id_of, IdPath};
use super::{ApiError, AppState};
use crate::files::{open_confined, respond, FileError};
use crate::store::{Job, JobId, Screenshot};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::path::PathBuf;

async fn job(app: &AppState, id: JobId) -> Result<Job, ApiError> {
    app.store
        .get(id)
        .await?
        .ok_or_else(|| ApiError::no_build(id))
}

fn file_error(e: FileError) -> ApiError {
    match e {
        FileError::Refused(m) => ApiError::not_found(format!("not served: {m}")),
        FileError::Io(m) => ApiError::internal(m),
    }
}

pub async fn list(State(app): State<AppState>, path: IdPath) -> Result<Json<Value>, ApiError> {
    let id = id_of(path)?;
    job(&app, id).await?;
    let items: Vec<Value> = app
        .store
        .artifacts(id)
        .await?
        .into_iter()
        .map(|a| {
            json!({
                "name": a.name,
                "size": a.size,
                "sha256": a.sha256,
                "url": format!("/api/v1/builds/{id}/artifacts/{}", pct(&a.name)),
            })
        })
        .collect();
    Ok(Json(json!({"items": items})))
}

fn pct(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub async fn download(
    State(app): State<AppState>,
    path: Result<Path<(JobId, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Ok(Path((id, name))) = path else {
        return Err(ApiError::invalid(
            "id",
            "a build id is a number (as in /api/v1/builds/42/artifacts/NAME)",
        ));
    };
    let j = job(&app, id).await?;
    let arts = app.store.artifacts(id).await?;
    let Some(a) = arts.into_iter().find(|a| a.name == name) else {
        return Err(ApiError::not_found(format!(
            "build {id} has no artifact '{name}'; GET /api/v1/builds/{id}/artifacts lists them"
        )));
    };
    // A remote worker's artifacts were uploaded into the state dir; a local build's stay in
    // its output directory.
    let uploaded = app
        .state_dir
        .join("builds")
        .join(id.to_string())
        .join("artifacts");
    let p = PathBuf::from(&a.path);
    let within = if p.parent() == Some(uploaded.as_path()) {
        Some(uploaded)
    } else {
        j.output_dir.as_ref().map(PathBuf::from)
    };
    let f = tokio::task::spawn_blocking(move || open_confined(&p, within.as_deref()))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(file_error)?;
    respond(f, &headers, "application/octet-stream", Some(&a.name))
        .await
        .map_err(file_error)
}

pub async fn checksums(State(app): State<AppState>, path: IdPath) -> Result<Response, ApiError> {
    let id = id_of(path)?;
    job(&app, id).await?;
    let mut out = String::new();
    for a in app.store.artifacts(id).await? {
        if let Some(s) = a.sha256 {
            out.push_str(&format!("{s}  {}\n", a.name));
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], out).into_response())
}

fn shot_json(id: JobId, s: &Screenshot) -> Value {
    json!({
        "index": s.index, "seq": s.seq, "name": s.name, "time": s.time,
        "url": format!("/api/v1/builds/{id}/screenshots/{}", s.index),
    })
}

pub async fn screenshots(
    State(app): State<AppState>,
    path: IdPath,
) -> Result<Json<Value>, ApiError> {
    let id = id_of(path)?;
    job(&app, id).await?;
    let items: Vec<Value> = app
        .store
        .screenshots(id)
        .await?
        .iter()
        .map(|s| shot_json(id, s))
        .collect();
    Ok(Json(json!({"items": items})))
}

async fn serve_shot(
    app: &AppState,
    id: JobId,
    s: Screenshot,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let dir = app.state_dir.join("builds").join(id.to_string());
    let p = PathBuf::from(&s.file);
    let f = tokio::task::spawn_blocking(move || open_confined(&p, Some(&dir)))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(file_error)?;
    let mut r = respond(f, headers, "image/png", None)
        .await
        .map_err(file_error)?;
    if let Ok(v) = header::HeaderValue::from_str(&s.index.to_string()) {
        r.headers_mut().insert("x-screenshot-index", v);
    }
    Ok(r)
}

pub async fn latest_screenshot(
    State(app): State<AppState>,
    path: IdPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = id_of(path)?;
    job(&app, id).await?;
    match app.store.screenshots(id).await?.pop() {
        Some(s) => serve_shot(&app, id, s, &headers).await,
        None => Err(ApiError::not_found(format!(
            "build {id} has no console screenshot yet (they come while the VM runs)"
        ))),
    }
}

pub async fn screenshot(
    State(app): State<AppState>,
    path: Result<Path<(JobId, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Ok(Path((id, index))) = path else {
        return Err(ApiError::invalid("id", "a build id is a number"));
    };
    let Ok(index) = index.parse::<u32>() else {
        return Err(ApiError::invalid(
            "index",
            format!("a screenshot is named by its index (0, 1, …) or 'latest', not '{index}'"),
        ));
    };
    job(&app, id).await?;
    let shots = app.store.screenshots(id).await?;
    match shots.into_iter().find(|s| s.index == index) {
        Some(s) => serve_shot(&app, id, s, &headers).await,
        None => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            ..ApiError::not_found(format!(
                "build {id} has no screenshot {index}; GET /api/v1/builds/{id}/screenshots lists them"
            ))
        }),
    }
}

//! Targets, platforms, locations: what can be built, and the user layer's location files.

use super::{ApiError, AppState, JsonBody, Params};
use crate::backend::{LocationDoc, TargetFilter, TargetRef};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

pub async fn targets(State(app): State<AppState>, p: Params) -> Result<Json<Value>, ApiError> {
    p.only(&[
        "platform", "location", "dist", "version", "arch", "latest", "q",
    ])?;
    let f = TargetFilter {
        platform: p.str("platform").map(str::to_string),
        location: p.str("location").map(str::to_string),
        dist: p.str("dist").map(str::to_string),
        version: p.str("version").map(str::to_string),
        arch: p.str("arch").map(str::to_string),
        latest: p.bool("latest")?,
        q: p.str("q").map(str::to_string),
    };
    let items = app.backend.targets(&f).await?;
    Ok(Json(json!({"total": items.len(), "items": items})))
}

/// A `-D` item must be `key=value[,key=value…]`.
pub fn check_defines(defines: &[String], field: &str) -> Result<(), ApiError> {
    for (i, d) in defines.iter().enumerate() {
        for part in d.split(',') {
            let ok = part
                .split_once('=')
                .is_some_and(|(k, _)| !k.trim().is_empty());
            if !ok {
                return Err(ApiError::invalid(
                    &format!("{field}[{i}]"),
                    format!("{field}[{i}]: '{part}' is not key=value (as in -D memory=4096)"),
                ));
            }
        }
    }
    Ok(())
}

/// `platform/location/spec`, a name without spaces, an IP address.
pub fn check_target_ref(t: &TargetRef) -> Result<(), ApiError> {
    let parts: Vec<&str> = t.target.split('/').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.trim().is_empty()) {
        return Err(ApiError::invalid(
            "target",
            format!(
                "target must be PLATFORM/LOCATION/SPEC (e.g. qemu/lab/debian-12-x86_64), not '{}'",
                t.target
            ),
        ));
    }
    if let Some(n) = &t.name {
        if n.is_empty()
            || n.chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '/')
        {
            return Err(ApiError::invalid(
                "name",
                "name must be a host name or FQDN (no spaces, slashes or control characters)",
            ));
        }
    }
    if let Some(ip) = &t.ip {
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(ApiError::invalid(
                "ip",
                format!("ip: '{ip}' is not an IP address"),
            ));
        }
        if t.name.is_none() {
            return Err(ApiError::invalid(
                "name",
                "an ip needs a name too (osimager build TARGET NAME IP)",
            ));
        }
    }
    check_defines(&t.defines, "defines")
}

pub async fn target(
    State(app): State<AppState>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    let Path((platform, location, spec)) = path?;
    p.only(&["name", "ip", "define"])?;
    let t = TargetRef {
        target: format!("{platform}/{location}/{spec}"),
        name: p.str("name").map(str::to_string),
        ip: p.str("ip").map(str::to_string),
        defines: p.all("define").into_iter().map(str::to_string).collect(),
    };
    check_target_ref(&t)?;
    let r = app.backend.resolve(&t).await?;
    Ok(Json(serde_json::to_value(r).unwrap_or(Value::Null)))
}

pub async fn validate(
    State(app): State<AppState>,
    JsonBody(t): JsonBody<TargetRef>,
) -> Result<Json<Value>, ApiError> {
    check_target_ref(&t)?;
    let v = app.backend.validate(&t).await?;
    Ok(Json(serde_json::to_value(v).unwrap_or(Value::Null)))
}

pub async fn platforms(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let items = app.backend.platforms().await?;
    Ok(Json(json!({"total": items.len(), "items": items})))
}

pub async fn locations(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let items = app.backend.locations().await?;
    Ok(Json(json!({"total": items.len(), "items": items})))
}

/// A location name is a file name: letters, digits, `-`, `_`, `.` (not leading).
fn check_location_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "name",
            format!(
                "location name '{name}' must be letters, digits, '-', '_' or '.' (not first), \
                 at most 100 characters: it becomes the file name"
            ),
        ))
    }
}

fn check_doc(doc: &LocationDoc) -> Result<(), ApiError> {
    if doc.format != "json" && doc.format != "toml" {
        return Err(ApiError::invalid(
            "format",
            format!("format must be json or toml, not '{}'", doc.format),
        ));
    }
    Ok(())
}

type NamePath = Result<Path<String>, PathRejection>;

pub async fn location(
    State(app): State<AppState>,
    path: NamePath,
) -> Result<Json<Value>, ApiError> {
    let Path(name) = path?;
    check_location_name(&name)?;
    let doc = app.backend.location(&name).await?;
    Ok(Json(
        json!({"name": name, "format": doc.format, "content": doc.content}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLocation {
    name: String,
    format: String,
    content: String,
}

pub async fn create_location(
    State(app): State<AppState>,
    JsonBody(n): JsonBody<NewLocation>,
) -> Result<Response, ApiError> {
    check_location_name(&n.name)?;
    let doc = LocationDoc {
        format: n.format,
        content: n.content,
    };
    check_doc(&doc)?;
    let info = app.backend.save_location(&n.name, &doc, true).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v1/locations/{}", n.name))],
        Json(info),
    )
        .into_response())
}

pub async fn put_location(
    State(app): State<AppState>,
    path: NamePath,
    JsonBody(doc): JsonBody<LocationDoc>,
) -> Result<Json<Value>, ApiError> {
    let Path(name) = path?;
    check_location_name(&name)?;
    check_doc(&doc)?;
    let info = app.backend.save_location(&name, &doc, false).await?;
    Ok(Json(serde_json::to_value(info).unwrap_or(Value::Null)))
}

pub async fn delete_location(
    State(app): State<AppState>,
    path: NamePath,
) -> Result<StatusCode, ApiError> {
    let Path(name) = path?;
    check_location_name(&name)?;
    app.backend.delete_location(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn validate_location(
    State(app): State<AppState>,
    path: NamePath,
    JsonBody(doc): JsonBody<LocationDoc>,
) -> Result<Json<Value>, ApiError> {
    let Path(name) = path?;
    check_location_name(&name)?;
    check_doc(&doc)?;
    let v = app.backend.check_location(&name, &doc).await?;
    Ok(Json(serde_json::to_value(v).unwrap_or(Value::Null)))
}

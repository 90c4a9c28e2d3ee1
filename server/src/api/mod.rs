//! The REST API under `/api/v1`, its WebSocket streams, and the routes around it (web UI,
//! security headers, CORS when configured). `openapi.json` documents every route; a test
//! checks that each documented route exists and each route is documented.

mod artifacts;
mod builds;
mod catalog;
mod error;
mod extract;
mod guard;
pub mod worker;
mod workers;
mod ws;

pub use error::ApiError;
pub use extract::{parse_json, JsonBody, Params};

use crate::backend::{Backend, HostFacts};
use crate::config::ServerConfig;
use crate::live::Hub;
use crate::scheduler::Scheduler;
use crate::store::JobStore;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tower_http::set_header::SetResponseHeaderLayer;

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The job store.
    pub store: Arc<dyn JobStore>,
    /// The engine.
    pub backend: Arc<dyn Backend>,
    /// Live streams.
    pub hub: Arc<Hub>,
    /// The local runner.
    pub sched: Arc<Scheduler>,
    /// Tokens are required.
    pub auth_required: bool,
    /// Served over TLS (the session cookie is then `Secure`).
    pub tls: bool,
    /// WebSocket heartbeat.
    pub heartbeat: Duration,
    /// The state dir.
    pub state_dir: PathBuf,
    /// When the server started.
    pub started: Instant,
    /// Cancelled when the server stops (streams close).
    pub shutdown: CancellationToken,
    /// Web UI sessions.
    pub sessions: Arc<crate::auth::Sessions>,
    /// Records of remote workers' runs being received.
    pub remote: Arc<worker::RemoteRuns>,
    /// This server runs builds itself (`local_worker`).
    pub local_worker: bool,
    /// A remote job without a heartbeat this long is requeued (`worker_timeout_secs`).
    pub worker_timeout: Duration,
    host_cache: Arc<Mutex<Option<(Instant, HostFacts)>>>,
}

impl AppState {
    /// The state every handler gets.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: &ServerConfig,
        store: Arc<dyn JobStore>,
        backend: Arc<dyn Backend>,
        hub: Arc<Hub>,
        sched: Arc<Scheduler>,
        shutdown: CancellationToken,
    ) -> AppState {
        AppState {
            store,
            backend,
            hub,
            sched,
            auth_required: cfg.auth_required(),
            tls: cfg.tls.is_some(),
            heartbeat: Duration::from_secs(cfg.heartbeat_secs.max(1)),
            state_dir: cfg.state_dir.clone(),
            started: Instant::now(),
            shutdown,
            sessions: Arc::default(),
            remote: Arc::default(),
            local_worker: cfg.local_worker,
            worker_timeout: Duration::from_secs(cfg.worker_timeout_secs.max(1)),
            host_cache: Arc::new(Mutex::new(None)),
        }
    }
}

/// The whole HTTP application.
pub fn router(app: AppState, cfg: &ServerConfig) -> Router {
    let protected = Router::new()
        .route("/host", get(host))
        .route("/targets", get(catalog::targets))
        .route(
            "/targets/{platform}/{location}/{spec}",
            get(catalog::target),
        )
        .route("/validate", post(catalog::validate))
        .route("/platforms", get(catalog::platforms))
        .route(
            "/locations",
            get(catalog::locations).post(catalog::create_location),
        )
        .route(
            "/locations/{name}",
            get(catalog::location)
                .put(catalog::put_location)
                .delete(catalog::delete_location),
        )
        .route(
            "/locations/{name}/validate",
            post(catalog::validate_location),
        )
        .route("/builds", get(builds::list).post(builds::create))
        .route("/builds/{id}", get(builds::get).delete(builds::delete))
        .route("/builds/{id}/cancel", post(builds::cancel))
        .route("/builds/{id}/retry", post(builds::retry))
        .route("/builds/{id}/events", get(builds::events))
        .route("/builds/{id}/log", get(builds::log))
        .route("/builds/{id}/artifacts", get(artifacts::list))
        .route("/builds/{id}/artifacts/{name}", get(artifacts::download))
        .route("/builds/{id}/checksums", get(artifacts::checksums))
        .route("/builds/{id}/screenshots", get(artifacts::screenshots))
        .route(
            "/builds/{id}/screenshots/latest",
            get(artifacts::latest_screenshot),
        )
        .route(
            "/builds/{id}/screenshots/{index}",
            get(artifacts::screenshot),
        )
        .route("/builds/{id}/stream", get(ws::build_stream))
        .route("/stream", get(ws::global_stream))
        .route("/workers", get(workers::list))
        .route_layer(middleware::from_fn_with_state(app.clone(), guard::require));
    let api = Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi))
        .route("/session", get(session).post(login).delete(logout))
        .route("/worker/register", post(worker::register))
        .route("/worker/claim", post(worker::claim))
        .route("/worker/jobs/{id}/heartbeat", post(worker::heartbeat))
        .route("/worker/jobs/{id}/events", post(worker::events))
        .route("/worker/jobs/{id}/result", post(worker::result))
        .route(
            "/worker/jobs/{id}/artifacts/{name}",
            get(worker::upload_status)
                .put(worker::upload)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/worker/jobs/{id}/artifacts/{name}/complete",
            post(worker::complete),
        )
        .merge(protected)
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed);
    let mut r = Router::new()
        .nest("/api/v1", api)
        .fallback(crate::ui::serve)
        .layer(DefaultBodyLimit::max(cfg.body_limit))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; \
                 connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            ),
        ));
    if !cfg.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> = cfg
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        r = r.layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([
                    axum::http::Method::GET,
                    axum::http::Method::POST,
                    axum::http::Method::PUT,
                    axum::http::Method::DELETE,
                ])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::RANGE]),
        );
    }
    r.with_state(app)
}

async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        format!(
            "no API route {}; the routes are listed in /api/v1/openapi.json",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{method} is not allowed on {}; /api/v1/openapi.json lists the methods of each route",
            uri.path()
        ),
    )
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn health(State(app): State<AppState>) -> Response {
    let uptime = app.started.elapsed().as_secs();
    match app.store.counts().await {
        Ok(_) => Json(json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_secs": uptime,
        }))
        .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "degraded", "message": e.to_string(), "uptime_secs": uptime})),
        )
            .into_response(),
    }
}

/// Host facts change slowly and the KVM probe costs a guest start: asked once a minute.
const HOST_FACTS_TTL: Duration = Duration::from_secs(60);

async fn host(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let cached = app
        .host_cache
        .lock()
        .ok()
        .and_then(|c| c.clone())
        .filter(|(t, _)| t.elapsed() < HOST_FACTS_TTL)
        .map(|(_, f)| f);
    let facts = match cached {
        Some(f) => f,
        None => {
            let f = app.backend.host().await;
            if let Ok(mut c) = app.host_cache.lock() {
                *c = Some((Instant::now(), f.clone()));
            }
            f
        }
    };
    let counts = app.store.counts().await?;
    let count =
        |s: crate::store::JobState| counts.iter().find(|(st, _)| *st == s).map_or(0, |c| c.1);
    let builds: serde_json::Map<String, serde_json::Value> = counts
        .iter()
        .map(|(s, n)| (s.as_str().to_string(), json!(n)))
        .collect();
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": app.started.elapsed().as_secs(),
        "cpu": crate::host::cpu(),
        "memory": crate::host::memory(),
        "disk": crate::host::disk(&app.state_dir),
        "accelerator": facts.accelerator,
        "hypervisors": facts.hypervisors,
        "tools": facts.tools,
        "queue": {
            "queued": count(crate::store::JobState::Queued),
            "running": count(crate::store::JobState::Running),
            "concurrency": app.sched.concurrency(),
        },
        "builds": builds,
    })))
}

async fn session(State(app): State<AppState>, headers: HeaderMap) -> Json<serde_json::Value> {
    let authenticated = !app.auth_required
        || guard::check(&app, &headers, &axum::http::Method::GET)
            .await
            .is_ok();
    Json(json!({"auth_required": app.auth_required, "authenticated": authenticated}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    token: String,
}

async fn login(
    State(app): State<AppState>,
    JsonBody(l): JsonBody<Login>,
) -> Result<Response, ApiError> {
    let hash = crate::auth::hash_token(l.token.trim());
    if app.store.check_token(&hash).await?.is_none() {
        return Err(ApiError {
            field: Some("token".into()),
            ..ApiError::unauthorized(
                "unknown or revoked token: `osimager serve token list` on the server shows the valid ones",
            )
        });
    }
    let session = app.sessions.open(hash);
    let secure = if app.tls { "; Secure" } else { "" };
    let cookie = format!(
        "{}={session}; Path=/api/v1; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        crate::auth::COOKIE,
        crate::auth::SESSION_TTL.as_secs()
    );
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

async fn logout(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some((id, true)) = crate::auth::presented(&headers) {
        app.sessions.close(&id);
    }
    let cookie = format!(
        "{}=; Path=/api/v1; HttpOnly; SameSite=Strict; Max-Age=0",
        crate::auth::COOKIE
    );
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
}

//! The request guards of the API: the middleware that lets only requests with a valid token
//! through when the server requires tokens, and the worker routes' check that the token is a
//! worker's. Tokens and sessions themselves are `crate::auth`.

use super::{ApiError, AppState};
use crate::auth::{hash_token, presented, same_origin};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;

/// Middleware: when the server requires tokens, let only requests with a valid one through.
pub async fn require(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if !app.auth_required {
        return next.run(req).await;
    }
    match check(&app, req.headers(), req.method()).await {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response_with_auth_header(),
    }
}

/// Whether the request's token is valid (and, for a cookie, comes from our own pages).
pub async fn check(app: &AppState, headers: &HeaderMap, method: &Method) -> Result<(), ApiError> {
    let Some((token, cookie)) = presented(headers) else {
        return Err(ApiError::unauthorized(
            "this server requires a token: create one on the server with \
             `osimager serve token create NAME` and send it as `Authorization: Bearer TOKEN` \
             (the web UI asks for it)",
        ));
    };
    let upgrade = headers.contains_key(header::UPGRADE);
    if cookie
        && (upgrade || !matches!(*method, Method::GET | Method::HEAD))
        && !same_origin(headers)
    {
        return Err(ApiError::forbidden(
            "cross-site request refused: the session cookie only works from this server's own pages",
        ));
    }
    let hash =
        if cookie {
            match app.sessions.token_hash(&token) {
                Some(h) => h,
                None => return Err(ApiError::unauthorized(
                    "the web UI session expired or the server restarted: log in again with a token",
                )),
            }
        } else {
            hash_token(&token)
        };
    match app.store.check_token(&hash).await {
        Ok(Some(t)) if t.role == crate::store::TokenRole::Api => Ok(()),
        Ok(Some(_)) => Err(ApiError::forbidden(
            "a worker token only opens the worker routes (/api/v1/worker/…); \
             use an API token (`osimager serve token create NAME`)",
        )),
        Ok(None) => Err(ApiError::unauthorized(
            "unknown or revoked token: `osimager serve token list` on the server shows the valid ones",
        )),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

/// The worker a request comes from: a bearer token of role `worker` (always required on the
/// worker routes, whatever `require_auth` says: the token names the worker).
pub async fn worker_of(app: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let token = match presented(headers) {
        Some((t, false)) => t,
        _ => {
            return Err(ApiError::unauthorized(
                "the worker routes need a worker token as `Authorization: Bearer TOKEN`: \
                 `osimager serve token create --worker NAME` on the server makes one",
            ))
        }
    };
    match app.store.check_token(&hash_token(&token)).await {
        Ok(Some(t)) if t.role == crate::store::TokenRole::Worker => {
            if crate::store::is_local_worker(&t.name) {
                // Its jobs would never be requeued (a server's own runner sends no heartbeats).
                return Err(ApiError::forbidden(format!(
                    "the worker token '{}' has a name reserved for the servers' own runners \
                     ('local', 'local:…'): make one with another name",
                    t.name
                )));
            }
            Ok(t.name)
        }
        Ok(Some(_)) => Err(ApiError::forbidden(
            "an API token is not a worker token: `osimager serve token create --worker NAME`",
        )),
        Ok(None) => Err(ApiError::unauthorized(
            "unknown or revoked worker token: `osimager serve token list` on the server shows the valid ones",
        )),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

//! The request handler: content map, generated files, then `http_directory` via `ServeDir`.

use crate::guard::{clean_path, resolve_under, Refused};
use crate::respond::{bytes_response, Validators};
use crate::Site;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, Response, StatusCode};
use axum::middleware::{self, Next};
use axum::Router;
use std::sync::Arc;
use tower::ServiceExt;
use tower_http::services::ServeDir;

pub(crate) fn router(site: Arc<Site>) -> Router {
    Router::new()
        .fallback(serve)
        .with_state(site.clone())
        .layer(middleware::from_fn_with_state(site, log_request))
}

/// One log line per request: method, path, status, bytes.
async fn log_request(State(site): State<Arc<Site>>, req: Request, next: Next) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let bytes = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .or_else(|| {
            use axum::body::HttpBody;
            resp.body().size_hint().exact().map(|n| n.to_string())
        })
        .unwrap_or_else(|| "-".into());
    let line = format!("{method} {path} {} {bytes}", resp.status().as_u16());
    tracing::info!(target: "osimager_http", "{line}");
    if let Some(cb) = &site.on_request {
        (cb.0)(&line);
    }
    resp
}

fn status(code: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn content_type_for(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "json" | "ign" => "application/json",
        "xml" => "application/xml",
        "html" | "htm" => "text/html; charset=utf-8",
        "iso" | "img" | "gz" | "xz" | "tar" | "bin" | "qcow2" => "application/octet-stream",
        _ => "text/plain; charset=utf-8",
    }
}

async fn serve(State(site): State<Arc<Site>>, req: Request) -> Response<Body> {
    let method = req.method().clone();
    if method != Method::GET && method != Method::HEAD {
        let mut r = status(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let rel = match clean_path(req.uri().path()) {
        Ok(p) => p,
        Err(Refused::BadEncoding) => return status(StatusCode::BAD_REQUEST, "bad path\n"),
        Err(Refused::Traversal) => {
            tracing::warn!(target: "osimager_http", "refused path traversal: {}", req.uri().path());
            return status(StatusCode::FORBIDDEN, "forbidden\n");
        }
    };
    let headers = req.headers().clone();

    if let Some(body) = site.content.get(&rel) {
        let v = Validators::for_bytes(body, None);
        return bytes_response(&method, &headers, body, &v, content_type_for(&rel));
    }
    if let Some(file) = site.files.get(&rel) {
        return match tokio::fs::read(file).await {
            Ok(body) => {
                let mtime = std::fs::metadata(file).ok().and_then(|m| m.modified().ok());
                let v = Validators::for_bytes(&body, mtime);
                bytes_response(&method, &headers, &body, &v, content_type_for(&rel))
            }
            Err(e) => {
                tracing::warn!(target: "osimager_http", "cannot read {}: {e}", file.display());
                status(StatusCode::NOT_FOUND, "not found\n")
            }
        };
    }
    let Some(root) = &site.root else {
        return status(StatusCode::NOT_FOUND, "not found\n");
    };
    let real = match resolve_under(root, &rel) {
        Ok(Some(p)) => p,
        Ok(None) => return status(StatusCode::NOT_FOUND, "not found\n"),
        Err(()) => {
            tracing::warn!(
                target: "osimager_http",
                "refused {}: resolves outside http_directory",
                req.uri().path()
            );
            return status(StatusCode::FORBIDDEN, "forbidden\n");
        }
    };
    let validators = std::fs::metadata(&real)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| Validators::for_file(&m));
    let mut req = req;
    if let Some(v) = &validators {
        if v.not_modified(&headers) {
            let mut r = status(StatusCode::NOT_MODIFIED, "");
            *r.body_mut() = Body::empty();
            r.headers_mut().remove(header::CONTENT_TYPE);
            v.apply(r.headers_mut());
            return r;
        }
        if !v.range_allowed(&headers) {
            // The client's partial copy is stale: send the whole representation.
            req.headers_mut().remove(header::RANGE);
        }
    }
    match ServeDir::new(root).oneshot(req).await {
        Ok(resp) => {
            let mut resp = resp.map(Body::new);
            if let Some(v) = &validators {
                if resp.status().is_success() {
                    v.apply(resp.headers_mut());
                }
            }
            resp
        }
        Err(e) => {
            tracing::warn!(target: "osimager_http", "serving {rel}: {e}");
            status(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
        }
    }
}

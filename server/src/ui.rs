//! The web UI, embedded at compile time from `web/dist` (`npm ci && npm run build` in
//! `web/`). Built without it, the server still works and answers every page with one that
//! says how to build the UI.

use axum::http::{header, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};

#[derive(rust_embed::Embed)]
#[folder = "../web/dist"]
#[allow_missing = true]
struct Assets;

const NOT_BUILT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>osimager — web UI not built</title>
<style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:4rem auto;padding:0 1rem;color:#1e293b}
code{background:#f1f5f9;padding:.1rem .3rem;border-radius:.2rem}</style></head>
<body><h1>The web UI was not built</h1>
<p>This osimager binary was compiled without its web UI. The build service and its API work:
the API is under <a href="/api/v1/health"><code>/api/v1</code></a> and documented in
<a href="/api/v1/openapi.json"><code>/api/v1/openapi.json</code></a>.</p>
<p>To get the UI, build it (Node.js 20 and npm) and compile osimager again:</p>
<pre><code>cd web &amp;&amp; npm ci &amp;&amp; npm run build &amp;&amp; cd .. &amp;&amp; cargo build --release</code></pre>
</body></html>
"#;

/// Whether this binary carries the UI.
pub fn built() -> bool {
    Assets::get("index.html").is_some()
}

/// Serve a UI file; any other path that is not a file is a page of the app (index.html).
pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if let Some(f) = (!path.is_empty()).then(|| Assets::get(path)).flatten() {
        let immutable = path.starts_with("assets/");
        let cache = if immutable {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        return (
            [
                (header::CONTENT_TYPE, f.metadata.mimetype().to_string()),
                (header::CACHE_CONTROL, cache.to_string()),
            ],
            f.data,
        )
            .into_response();
    }
    if path.starts_with("assets/") || path.starts_with("api/") {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    match Assets::get("index.html") {
        Some(index) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            index.data,
        )
            .into_response(),
        None => Html(NOT_BUILT).into_response(),
    }
}

//! Conditional and range responses for in-memory bodies, and the ETag/If-Range rules shared
//! with files served from `http_directory`.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use std::time::SystemTime;

/// Validators of one representation.
pub(crate) struct Validators {
    pub etag: String,
    pub last_modified: Option<SystemTime>,
}

impl Validators {
    /// ETag from size and modification time (what nginx does for static files).
    pub fn for_file(meta: &std::fs::Metadata) -> Validators {
        let mtime = meta.modified().ok();
        let nanos = mtime
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Validators {
            etag: format!("\"{:x}-{:x}\"", meta.len(), nanos),
            last_modified: mtime,
        }
    }

    /// ETag from the content itself (FNV-1a 64; collision resistance is not needed here).
    pub fn for_bytes(body: &[u8], last_modified: Option<SystemTime>) -> Validators {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in body {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Validators {
            etag: format!("\"{:x}-{:016x}\"", body.len(), h),
            last_modified,
        }
    }

    fn last_modified_str(&self) -> Option<String> {
        self.last_modified.map(httpdate::fmt_http_date)
    }

    /// `If-None-Match` (or, without it, `If-Modified-Since`) says the client's copy is current.
    pub fn not_modified(&self, headers: &HeaderMap) -> bool {
        if let Some(inm) = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
        {
            return inm.split(',').map(str::trim).any(|t| {
                t == "*" || t == self.etag || t.strip_prefix("W/") == Some(self.etag.as_str())
            });
        }
        if let (Some(ims), Some(lm)) = (
            headers
                .get(header::IF_MODIFIED_SINCE)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| httpdate::parse_http_date(s).ok()),
            self.last_modified,
        ) {
            return truncate_secs(lm) <= ims;
        }
        false
    }

    /// `If-Range` is absent or still matches: a `Range` header may be honoured.
    pub fn range_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(ir) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) else {
            return true;
        };
        let ir = ir.trim();
        if ir.starts_with('"') || ir.starts_with("W/") {
            // Strong comparison only (RFC 9110 §13.1.5).
            return ir == self.etag;
        }
        match (httpdate::parse_http_date(ir).ok(), self.last_modified) {
            (Some(d), Some(lm)) => truncate_secs(lm) == d,
            _ => false,
        }
    }

    pub fn apply(&self, headers: &mut HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&self.etag) {
            headers.insert(header::ETAG, v);
        }
        if let Some(lm) = self
            .last_modified_str()
            .and_then(|s| HeaderValue::from_str(&s).ok())
        {
            headers.insert(header::LAST_MODIFIED, lm);
        }
    }
}

fn truncate_secs(t: SystemTime) -> SystemTime {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

/// Parse a single `bytes=` range against a body of `len` bytes.
/// `None` = no usable range (absent, multi-range, or malformed: serve the whole body);
/// `Some(Err(()))` = unsatisfiable (416); `Some(Ok((start, end)))` inclusive.
pub(crate) fn parse_range(value: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(Err(()));
        }
        return Some(Ok((len.saturating_sub(n), len - 1)));
    }
    let start: u64 = a.parse().ok()?;
    let end: u64 = if b.is_empty() {
        len.saturating_sub(1)
    } else {
        b.parse().ok()?
    };
    if start >= len {
        return Some(Err(()));
    }
    if end < start {
        return None;
    }
    Some(Ok((start, end.min(len - 1))))
}

/// Build the response for an in-memory body.
pub(crate) fn bytes_response(
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
    v: &Validators,
    content_type: &str,
) -> Response<Body> {
    let len = body.len() as u64;
    let mut resp = Response::new(Body::empty());
    v.apply(resp.headers_mut());
    resp.headers_mut()
        .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(ct) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    if v.not_modified(headers) {
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        return resp;
    }
    let range = headers
        .get(header::RANGE)
        .and_then(|r| r.to_str().ok())
        .filter(|_| v.range_allowed(headers))
        .and_then(|r| parse_range(r, len));
    let slice = match range {
        None => body,
        Some(Err(())) => {
            *resp.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            if let Ok(cr) = HeaderValue::from_str(&format!("bytes */{len}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, cr);
            }
            return resp;
        }
        Some(Ok((s, e))) => {
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Ok(cr) = HeaderValue::from_str(&format!("bytes {s}-{e}/{len}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, cr);
            }
            &body[s as usize..=e as usize]
        }
    };
    resp.headers_mut().insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(slice.len() as u64),
    );
    if method != Method::HEAD {
        *resp.body_mut() = Body::from(slice.to_vec());
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Some(Ok((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=9-2", 100), None);
    }
}

//! API tokens: random, shown once, stored as SHA-256 (a 256-bit random token needs no slow
//! hash: nothing can be guessed from its digest). Sent as `Authorization: Bearer TOKEN`, or,
//! from the web UI, through a session: `POST /api/v1/session` checks the token and sets an
//! HttpOnly `SameSite=Strict` cookie holding a random session id (never the token), valid for
//! [`SESSION_TTL`] and only while its token is not revoked.

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};

/// The cookie the web UI's session uses.
pub const COOKIE: &str = "osimager_session";

/// How long a web UI session lasts.
pub const SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// Web UI sessions: session id → (hash of the token it was opened with, opened at). In
/// memory: a server restart asks for the token again.
#[derive(Default)]
pub struct Sessions(
    std::sync::Mutex<std::collections::HashMap<String, (String, std::time::Instant)>>,
);

impl Sessions {
    /// Open a session for a (checked) token hash; returns its id.
    pub fn open(&self, token_hash: String) -> String {
        let id = hex::encode(rand::random::<[u8; 32]>());
        if let Ok(mut m) = self.0.lock() {
            m.retain(|_, (_, t)| t.elapsed() < SESSION_TTL);
            m.insert(id.clone(), (token_hash, std::time::Instant::now()));
        }
        id
    }

    /// The token hash of a live session.
    pub fn token_hash(&self, id: &str) -> Option<String> {
        let m = self.0.lock().ok()?;
        m.get(id)
            .filter(|(_, t)| t.elapsed() < SESSION_TTL)
            .map(|(h, _)| h.clone())
    }

    /// Close a session.
    pub fn close(&self, id: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(id);
        }
    }
}

/// A new token: `osi_` and 64 hex digits (256 random bits).
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("osi_{}", hex::encode(bytes))
}

/// What the store keeps of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The token a request carries (or, from the cookie, its session id), and whether it came
/// from the cookie.
pub fn presented(headers: &HeaderMap) -> Option<(String, bool)> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let t = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))?;
        return Some((t.trim().to_string(), false));
    }
    for v in headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(';') {
            if let Some(t) = part.trim().strip_prefix(&format!("{COOKIE}=")) {
                if !t.is_empty() {
                    return Some((t.to_string(), true));
                }
            }
        }
    }
    None
}

/// A cookie-carried request that changes something must come from our own pages: when the
/// browser says where it comes from (`Origin`), it must be this host.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let o = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or(origin);
    !host.is_empty() && o.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 68);
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), a);
    }

    #[test]
    fn token_from_header_or_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; osimager_session=abc"),
        );
        assert_eq!(presented(&h), Some(("abc".into(), true)));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer osi_y"),
        );
        assert_eq!(presented(&h), Some(("osi_y".into(), false)));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic eDp5"),
        );
        assert_eq!(presented(&h), None);
    }

    #[test]
    fn origin_must_match_host() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h));
        h.insert(header::HOST, HeaderValue::from_static("build.lab:8000"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://build.lab:8000"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
    }
}

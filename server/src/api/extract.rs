//! Request parsing that answers in the API's error format and names the field at fault.

use super::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

/// A JSON body. Malformed → 400 naming the field; too large → 413; not JSON → 415.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("");
            let mime = ct.split(';').next().unwrap_or("").trim();
            if !mime.eq_ignore_ascii_case("application/json") {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!("the body must be JSON (Content-Type: application/json), not {mime}"),
                ));
            }
        }
        let bytes = Bytes::from_request(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parse JSON, naming the field of the first error (`defines[2]`, `priority`, …).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid("body", "the request needs a JSON body"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        // A missing field is reported on the enclosing object: name it.
        let named = inner.split('`').nth(1).map(str::to_string);
        let field = if path == "." || path == "?" || path.is_empty() {
            named.unwrap_or_else(|| "body".into())
        } else if inner.starts_with("missing field") {
            format!("{path}.{}", named.unwrap_or_default())
        } else {
            path
        };
        ApiError::invalid(&field, format!("{field}: {inner}"))
    })?;
    de.end()
        .map_err(|e| ApiError::invalid("body", format!("after the JSON value: {e}")))?;
    Ok(v)
}

/// Query parameters, read one by one so an error names the parameter.
#[derive(Debug, Default)]
pub struct Params(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        Ok(Params(
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}

impl Params {
    /// Refuse parameters this endpoint does not know (a typo would silently do nothing).
    pub fn only(&self, known: &[&str]) -> Result<&Self, ApiError> {
        if let Some((k, _)) = self.0.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            return Err(ApiError::invalid(
                k,
                format!(
                    "unknown query parameter '{k}'; this endpoint takes: {}",
                    known.join(", ")
                ),
            ));
        }
        Ok(self)
    }

    /// The last value of `k`, when not empty.
    pub fn str(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, v)| n == k && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `k`.
    pub fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, v)| n == k && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// An unsigned integer.
    pub fn u64(&self, k: &str) -> Result<Option<u64>, ApiError> {
        self.str(k)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::invalid(k, format!("{k} must be a non-negative integer, not '{v}'"))
                })
            })
            .transpose()
    }

    /// `true`/`false`/`1`/`0`; a bare `k` is true.
    pub fn bool(&self, k: &str) -> Result<bool, ApiError> {
        match self
            .0
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
        {
            None => Ok(false),
            Some("" | "true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(v) => Err(ApiError::invalid(
                k,
                format!("{k} must be true or false, not '{v}'"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct B {
        target: String,
        #[serde(default)]
        priority: i32,
        #[serde(default)]
        defines: Vec<String>,
    }

    fn field(json: &str) -> String {
        parse_json::<B>(json.as_bytes()).unwrap_err().field.unwrap()
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field(r#"{"priority": 1}"#), "target");
        assert_eq!(field(r#"{"target": "a", "priority": "high"}"#), "priority");
        assert_eq!(
            field(r#"{"target": "a", "defines": ["a=b", 3]}"#),
            "defines[1]"
        );
        assert_eq!(field(r#"{"target": "a", "tagret": 1}"#), "tagret");
        assert_eq!(field(r#"{"target": "a""#), "body");
        assert_eq!(field(""), "body");
        assert!(parse_json::<B>(br#"{"target": "a"}"#).is_ok());
    }
}

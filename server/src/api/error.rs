//! Errors as the API answers them: `{"kind": …, "message": …}` (+ `field`, `suggestions`),
//! the message saying what to do.

use crate::backend::{BackendError, BackendErrorKind};
use crate::store::StoreError;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answer.
#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    /// HTTP status.
    #[serde(skip)]
    pub status: StatusCode,
    /// For machines: `not_found`, `invalid_request`, `conflict`, `payload_too_large`,
    /// `unauthorized`, `forbidden`, `no_route`, `method_not_allowed`, `unsupported_media_type`,
    /// `range_not_satisfiable`, `internal`.
    pub kind: &'static str,
    /// For people: what is wrong and what to do.
    pub message: String,
    /// The request field involved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Close names (an unknown target → the closest targets).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suggestions: Vec<String>,
}

impl ApiError {
    /// An error with a status, kind and message.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
            field: None,
            suggestions: Vec::new(),
        }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 400 naming a field.
    pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field.to_string()),
            ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
        }
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The 401 answer with its `WWW-Authenticate` header.
    pub fn into_response_with_auth_header(self) -> Response {
        let mut r = self.into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        r
    }

    /// A build that does not exist.
    pub fn no_build(id: i64) -> ApiError {
        ApiError::not_found(format!(
            "no build {id}: GET /api/v1/builds lists them (deleted builds are gone)"
        ))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(&self)).into_response()
    }
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> ApiError {
        let (status, kind) = match e.kind {
            BackendErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            BackendErrorKind::Invalid => (StatusCode::BAD_REQUEST, "invalid_request"),
            BackendErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            BackendErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError {
            status,
            kind,
            message: e.message,
            field: e.field,
            suggestions: e.suggestions,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Conflict(m) => ApiError::conflict(m),
            StoreError::NotFound(m) => ApiError::not_found(m),
            StoreError::Db(m) => ApiError::internal(m),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> ApiError {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than this server accepts (body_limit in the server \
                 settings; 1 MiB by default)",
            )
        } else {
            ApiError::new(r.status(), "invalid_request", r.body_text())
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        let text = r.body_text();
        let field = text
            .split('`')
            .nth(1)
            .filter(|f| !f.is_empty())
            .unwrap_or("path")
            .to_string();
        ApiError {
            field: Some(field),
            ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", text)
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        let text = r.body_text();
        let field = text
            .split(':')
            .nth(1)
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty() && !f.contains(' '))
            .unwrap_or_else(|| "query".into());
        ApiError {
            field: Some(field),
            ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", text)
        }
    }
}

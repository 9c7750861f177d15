//! The one error type that crosses the server boundary, to the browser (server
//! functions) and to scripts (the JSON API).
//!
//! Constructors used on the server log the underlying cause and keep only a
//! message that is safe to show: no paths, no SQL, no secrets.

use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request itself is wrong; the message says how.
    BadRequest,
    /// Not logged in, or the session expired.
    Unauthorized,
    /// A state-changing request from another site (cross-site request forgery).
    Forbidden,
    NotFound,
    /// The thing already exists (a server name, a username).
    Conflict,
    /// Login throttled; `retry_after` says when to try again.
    TooManyRequests,
    /// A JSON endpoint was sent something other than JSON.
    UnsupportedMediaType,
    /// A VPN host could not be reached or refused us; the message says why.
    HostUnavailable,
    /// Something broke on the panel; the cause is in its log only.
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    pub kind: ErrorKind,
    pub message: String,
    /// Seconds until a throttled request may be retried. Always written,
    /// even when absent: page data is postcard, which reads every field in
    /// order and cannot tell a skipped one.
    #[serde(default)]
    pub retry_after: Option<u64>,
}

impl AppError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), retry_after: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(ErrorKind::Unauthorized, "Please log in.")
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorKind::NotFound, format!("{what} not found."))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        Self {
            kind: ErrorKind::TooManyRequests,
            message: format!("Too many failed attempts. Try again in {retry_after_secs} s."),
            retry_after: Some(retry_after_secs),
        }
    }

    pub fn host_unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::HostUnavailable, message)
    }

    /// Logs `cause` on the server under a new reference and returns an
    /// error that shows only the reference.
    #[cfg(feature = "ssr")]
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let reference = error_reference();
        tracing::error!(error = %cause, %reference, "internal error");
        Self::new(ErrorKind::Internal, format!("Internal error (ref {reference}); the cause is in the panel's log."))
    }
}

/// A short random reference that ties a message shown to a user to the log
/// line holding its cause.
#[cfg(feature = "ssr")]
pub fn error_reference() -> String {
    use rand::Rng;
    format!("{:08x}", rand::thread_rng().gen::<u32>())
}

impl FromServerFnError for AppError {
    /// Postcard, like the server functions' replies ([`crate::api::wire`]):
    /// the browser then links no JSON decoder at all.
    type Encoder = crate::api::wire::PostcardEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(m) | ServerFnErrorErr::MissingArg(m) => {
                Self::bad_request(format!("Bad form input: {m}"))
            }
            ServerFnErrorErr::Request(m) => {
                Self::new(ErrorKind::HostUnavailable, format!("Could not reach the panel: {m}"))
            }
            other => Self::new(ErrorKind::Internal, other.to_string()),
        }
    }
}

#[cfg(feature = "ssr")]
mod http {
    use super::{AppError, ErrorKind};
    use axum::http::{header, HeaderValue, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::Json;

    impl ErrorKind {
        pub fn status(self) -> StatusCode {
            match self {
                ErrorKind::BadRequest => StatusCode::UNPROCESSABLE_ENTITY,
                ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
                ErrorKind::Forbidden => StatusCode::FORBIDDEN,
                ErrorKind::NotFound => StatusCode::NOT_FOUND,
                ErrorKind::Conflict => StatusCode::CONFLICT,
                ErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
                ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorKind::HostUnavailable => StatusCode::BAD_GATEWAY,
                ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            }
        }
    }

    /// `{"success": false, "error": "...", "kind": "..."}` with a matching status.
    impl IntoResponse for AppError {
        fn into_response(self) -> Response {
            let body = serde_json::json!({
                "success": false,
                "error": self.message,
                "kind": self.kind,
            });
            let mut response = (self.kind.status(), Json(body)).into_response();
            if let Some(secs) = self.retry_after {
                if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
            }
            response
        }
    }
}

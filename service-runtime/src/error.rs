//! The error body every tasktrail API returns (DESIGN.md, "HTTP APIs"):
//!
//! ```json
//! { "error": { "code": "not_found", "message": "task 0190… does not exist", "details": null } }
//! ```
//!
//! `code` is a stable snake_case word for programs; `message` is for people; `details` carries
//! structured extras (e.g. the invalid field, the current version). A 5xx body never carries
//! internals: log them, answer a generic message.

use axum::Json;
use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

/// One API error, ready to become a response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorBody {
    #[serde(skip)]
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub details: Value,
}

impl ErrorBody {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            details: Value::Null,
        }
    }

    #[must_use]
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

impl IntoResponse for ErrorBody {
    fn into_response(self) -> Response {
        let status = self.status;
        (status, Json(serde_json::json!({ "error": self }))).into_response()
    }
}

/// An error an API answers with: the [`ErrorBody`] and, when the client should retry, a
/// `Retry-After`. Each is logged once, when it becomes the response (inside the request span):
/// a 4xx at `info`, a 5xx where it is made ([`HttpError::unavailable`], [`HttpError::internal`]),
/// with the cause that the body never carries.
///
/// Every rejection of the shared extractors ([`crate::extract`]) and of axum's own is one, so a
/// bad request always gets the JSON body. A service adds the conversions of its own errors.
#[derive(Debug)]
pub struct HttpError {
    /// The status and the JSON body (boxed: errors travel in every `Result`).
    pub body: Box<ErrorBody>,
    /// `Retry-After` in seconds, if the client should retry.
    pub retry_after: Option<u64>,
}

impl HttpError {
    /// An error with `status`, a stable `code` and a message for people.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            body: Box::new(ErrorBody::new(status, code, message)),
            retry_after: None,
        }
    }

    /// 401: no valid credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: the caller may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: the resource does not exist, or the caller may not see it (the same answer, so
    /// existence does not leak).
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} {id} does not exist"),
        )
    }

    /// 422: a parameter or a field is invalid.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }

    /// 503 naming the dependency that is down, with `Retry-After: 1`; the cause is logged, not
    /// answered.
    pub fn unavailable(dependency: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(dependency, %cause, "dependency unavailable");
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{dependency} is unavailable; try again shortly"),
        )
        .with_details(json!({ "dependency": dependency }));
        error.retry_after = Some(1);
        error
    }

    /// A bug: logged with its cause, answered without it.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; it has been logged",
        )
    }

    /// The same error with structured `details`.
    #[must_use]
    pub fn with_details(mut self, details: Value) -> Self {
        self.body = Box::new(self.body.with_details(details));
        self
    }

    /// The same error with `Retry-After: <seconds>`.
    #[must_use]
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        if self.body.status.is_client_error() {
            tracing::info!(status = self.body.status.as_u16(), code = %self.body.code, "request refused");
        }
        let mut response = (*self.body).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A body that is not JSON is 400 `malformed_json`, JSON of the wrong shape 422 `invalid`, a
/// missing `Content-Type: application/json` 415, a body over the limit 413.
impl From<JsonRejection> for HttpError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let (status, code) = match rejection {
            JsonRejection::JsonDataError(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            JsonRejection::MissingJsonContentType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            _ if status == StatusCode::PAYLOAD_TOO_LARGE => (status, "payload_too_large"),
            _ => (StatusCode::BAD_REQUEST, "malformed_json"),
        };
        Self::new(status, code, rejection.body_text())
    }
}

/// A form that cannot be read is 422 `invalid` (413 and 415 as they come).
impl From<FormRejection> for HttpError {
    fn from(rejection: FormRejection) -> Self {
        let status = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, "invalid", rejection.body_text())
    }
}

/// A malformed path parameter (an id that is not a UUID) is 400 `invalid_id`.
impl From<PathRejection> for HttpError {
    fn from(rejection: PathRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_id", rejection.body_text())
    }
}

/// An unknown or malformed query parameter is 422 `invalid`.
impl From<QueryRejection> for HttpError {
    fn from(rejection: QueryRejection) -> Self {
        Self::invalid(rejection.body_text())
    }
}

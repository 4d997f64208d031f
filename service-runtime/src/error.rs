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
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

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

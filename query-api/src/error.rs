//! `ApiError`: every way a query can fail, as the JSON error body of DESIGN.md
//! (`{"error": {"code", "message", "details"}}`).
//!
//! Each error is logged once, here, at the boundary (inside the request span); a 5xx body never
//! carries internals.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use service_runtime::error::ErrorBody;

/// An error the query API answers with.
#[derive(Debug)]
pub struct ApiError {
    /// The status and the JSON body (boxed: errors travel in every `Result`).
    pub body: Box<ErrorBody>,
    /// `Retry-After` in seconds, if the client should retry.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `status`, a stable `code` and a message for people.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            body: Box::new(ErrorBody::new(status, code, message)),
            retry_after: None,
        }
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

    /// 422: a query parameter is invalid.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }

    /// 409 `read_model_behind`: the read model did not reach `wanted` within the wait bound.
    pub fn read_model_behind(aggregate_id: &str, wanted: u64, current: Option<i64>) -> Self {
        let mut error = Self::new(
            StatusCode::CONFLICT,
            "read_model_behind",
            format!(
                "the read model of {aggregate_id} has not reached version {wanted} yet; retry shortly"
            ),
        )
        .with_details(json!({ "aggregate_id": aggregate_id, "wanted": wanted, "current": current }));
        error.retry_after = Some(1);
        error
    }

    /// 503 naming the dependency that is down; the cause is logged, not answered.
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
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.body = Box::new(self.body.with_details(details));
        self
    }
}

impl IntoResponse for ApiError {
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

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_id", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::invalid(rejection.body_text())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match error {
            StoreError::MongoUnavailable(cause) => Self::unavailable("mongodb", &cause),
            StoreError::PostgresUnavailable(cause) => Self::unavailable("postgres", &cause),
            StoreError::Internal(cause) => Self::internal(&cause),
        }
    }
}

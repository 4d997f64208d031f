//! The query API's errors: the shared [`ApiError`] (`service_runtime::error::HttpError`,
//! the JSON error body of DESIGN.md, `{"error": {"code", "message", "details"}}`), what the read
//! store's errors become, and [`read_model_behind`].
//!
//! Each error is logged once, at the boundary (inside the request span); a 5xx body never
//! carries internals.

use axum::http::StatusCode;
use serde_json::json;
pub use service_runtime::error::HttpError as ApiError;

/// 409 `read_model_behind` with `Retry-After: 1`: the read model did not reach `wanted` within
/// the wait bound.
pub fn read_model_behind(aggregate_id: &str, wanted: u64, current: Option<i64>) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "read_model_behind",
        format!(
            "the read model of {aggregate_id} has not reached version {wanted} yet; retry shortly"
        ),
    )
    .with_details(json!({ "aggregate_id": aggregate_id, "wanted": wanted, "current": current }))
    .retry_after(1)
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

//! `ApiError`: every way a command request can fail, as the JSON error body of DESIGN.md. It
//! wraps the shared [`HttpError`] (which every shared extractor rejects with, and which converts
//! into it) and adds what the domain and the event store refuse with.
//!
//! Each error is logged once, at the boundary (inside the request span); a 5xx body never
//! carries internals.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::{DomainError, ValidationError};
use event_store::{CommandError, UniqueViolation};
use serde_json::json;
pub use service_runtime::error::HttpError;

/// An error the command API answers with.
#[derive(Debug)]
pub struct ApiError(pub HttpError);

impl From<HttpError> for ApiError {
    fn from(error: HttpError) -> Self {
        Self(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        Self(HttpError::invalid(error.to_string()).with_details(json!({ "field": error.field })))
    }
}

/// Refusals of the aggregates carry their own kind (→ status) and code.
pub fn domain_error(error: &impl DomainError) -> ApiError {
    let status = StatusCode::from_u16(error.kind().http_status())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        return ApiError(HttpError::unavailable("postgres", &error.to_string()));
    }
    ApiError(HttpError::new(status, error.code(), error.to_string()))
}

impl<E: DomainError> From<CommandError<E>> for ApiError {
    fn from(error: CommandError<E>) -> Self {
        let error = match error {
            CommandError::Domain(error) => return domain_error(&error),
            CommandError::VersionConflict { expected, actual } => HttpError::new(
                StatusCode::CONFLICT,
                "version_conflict",
                format!("expected version {expected}, but the resource is at version {actual}"),
            )
            .with_details(json!({ "expected_version": expected, "current_version": actual })),
            CommandError::Concurrency => HttpError::new(
                StatusCode::CONFLICT,
                "concurrent_modification",
                "the resource was changed by another request at the same time; reload and retry",
            ),
            CommandError::Unique(UniqueViolation::Username) => HttpError::new(
                StatusCode::CONFLICT,
                "username_taken",
                "username is already taken",
            ),
            CommandError::Unique(UniqueViolation::Email) => HttpError::new(
                StatusCode::CONFLICT,
                "email_taken",
                "email is already registered",
            ),
            CommandError::Unavailable(cause) => HttpError::unavailable("postgres", &cause),
            CommandError::Internal(cause) => HttpError::internal(&cause),
        };
        Self(error)
    }
}

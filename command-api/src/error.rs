//! `ApiError`: every way a command request can fail, as the JSON error body of DESIGN.md.
//!
//! Each error is logged once, here, at the boundary (inside the request span); a 5xx body never
//! carries internals.

use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::{DomainError, ValidationError};
use event_store::{CommandError, UniqueViolation};
use serde_json::json;
use service_runtime::error::ErrorBody;

/// An error the command API answers with.
#[derive(Debug)]
pub struct ApiError(pub ErrorBody);

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self(ErrorBody::new(status, code, message))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn unavailable(dependency: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(dependency, %cause, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{dependency} is unavailable; try again shortly"),
        )
        .with_details(json!({ "dependency": dependency }))
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

    #[must_use]
    pub fn with_details(self, details: serde_json::Value) -> Self {
        Self(self.0.with_details(details))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.0.status.is_client_error() {
            tracing::info!(status = self.0.status.as_u16(), code = %self.0.code, "request refused");
        }
        self.0.into_response()
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            error.to_string(),
        )
        .with_details(json!({ "field": error.field }))
    }
}

/// Refusals of the aggregates carry their own kind (→ status) and code.
pub fn domain_error(error: &impl DomainError) -> ApiError {
    let status = StatusCode::from_u16(error.kind().http_status())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        return ApiError::unavailable("postgres", &error.to_string());
    }
    ApiError::new(status, error.code(), error.to_string())
}

impl<E: DomainError> From<CommandError<E>> for ApiError {
    fn from(error: CommandError<E>) -> Self {
        match error {
            CommandError::Domain(error) => domain_error(&error),
            CommandError::VersionConflict { expected, actual } => Self::new(
                StatusCode::CONFLICT,
                "version_conflict",
                format!("expected version {expected}, but the resource is at version {actual}"),
            )
            .with_details(json!({ "expected_version": expected, "current_version": actual })),
            CommandError::Concurrency => Self::new(
                StatusCode::CONFLICT,
                "concurrent_modification",
                "the resource was changed by another request at the same time; reload and retry",
            ),
            CommandError::Unique(UniqueViolation::Username) => Self::new(
                StatusCode::CONFLICT,
                "username_taken",
                "username is already taken",
            ),
            CommandError::Unique(UniqueViolation::Email) => Self::new(
                StatusCode::CONFLICT,
                "email_taken",
                "email is already registered",
            ),
            CommandError::Unavailable(cause) => Self::unavailable("postgres", &cause),
            CommandError::Internal(cause) => Self::internal(&cause),
        }
    }
}

impl From<JsonRejection> for ApiError {
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

impl From<FormRejection> for ApiError {
    fn from(rejection: FormRejection) -> Self {
        let status = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, "invalid", rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        // The same answer as the query API's for a malformed id.
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            format!("{} (expected a UUID)", rejection.body_text()),
        )
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            rejection.body_text(),
        )
    }
}

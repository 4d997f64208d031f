//! [`AuthError`]: why a request is not authenticated, and the answer it gets (401 with
//! `WWW-Authenticate`, or 503).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use service_runtime::error::ErrorBody;

use crate::revocation::RevocationError;

/// Why a request is not authenticated. The messages say which of missing / invalid / expired /
/// revoked, and nothing more.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    MissingToken,
    #[error("invalid bearer token")]
    InvalidToken,
    #[error("the token has expired")]
    ExpiredToken,
    #[error("the token has been revoked")]
    RevokedToken,
    /// The token's user is deactivated (or never existed: the same answer).
    #[error("the account is not active")]
    InactiveAccount,
    /// Neither Redis nor PostgreSQL answered: 503, not 401 (the token may well be fine).
    #[error("cannot check whether the token was revoked: {0}")]
    Unavailable(#[source] RevocationError),
}

impl AuthError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The JSON error body (without the `WWW-Authenticate` header; see `IntoResponse`).
    pub fn error_body(&self) -> ErrorBody {
        match self {
            Self::Unavailable(_) => ErrorBody::new(
                self.status(),
                "unavailable",
                "authentication is temporarily unavailable; try again shortly",
            ),
            _ => ErrorBody::new(self.status(), "unauthorized", self.to_string()),
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        // Logged once, here at the boundary; never the token.
        match &self {
            Self::Unavailable(error) => {
                tracing::error!(%error, "revocation store unavailable");
            }
            other => tracing::info!(reason = %other, "request not authenticated"),
        }
        let challenge = match self {
            Self::MissingToken => Some(HeaderValue::from_static("Bearer")),
            Self::Unavailable(_) => None,
            _ => Some(HeaderValue::from_static(r#"Bearer error="invalid_token""#)),
        };
        let mut response = self.error_body().into_response();
        if let Some(challenge) = challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_401_unauthorized_except_an_unavailable_store() {
        for error in [
            AuthError::MissingToken,
            AuthError::InvalidToken,
            AuthError::ExpiredToken,
            AuthError::RevokedToken,
            AuthError::InactiveAccount,
        ] {
            let body = error.error_body();
            assert_eq!(
                (body.status, body.code.as_str()),
                (StatusCode::UNAUTHORIZED, "unauthorized")
            );
            let response = error.into_response();
            assert!(
                response
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("Bearer"))
            );
        }
        let unavailable =
            AuthError::Unavailable(RevocationError::RedisTimeout(std::time::Duration::ZERO));
        let body = unavailable.error_body();
        assert_eq!(
            (body.status, body.code.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        );
        assert!(!body.message.contains("Redis"), "no internals in a 5xx");
    }
}

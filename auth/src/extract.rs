//! The [`AuthUser`] extractor: `Authorization: Bearer <token>`, verified and not revoked.
//!
//! A handler that takes `user: AuthUser` runs only for an authenticated caller. The app state
//! must provide an [`Authenticator`] through `FromRef`. Refusals are [`AuthError`]s: 401 with
//! `WWW-Authenticate: Bearer` and the JSON error body (code `unauthorized`), or 503 (code
//! `unavailable`) when neither Redis nor PostgreSQL can say whether the token was revoked.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::Actor;
use service_runtime::error::ErrorBody;

use crate::revocation::{RevocationError, Revocations};
use crate::tokens::{Claims, Tokens};

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

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive), if there is one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// Verifies tokens and consults revocations; put one in the app state (`FromRef`).
#[derive(Debug, Clone)]
pub struct Authenticator {
    tokens: Arc<Tokens>,
    revocations: Revocations,
}

impl Authenticator {
    pub fn new(tokens: Arc<Tokens>, revocations: Revocations) -> Self {
        Self {
            tokens,
            revocations,
        }
    }

    pub fn tokens(&self) -> &Arc<Tokens> {
        &self.tokens
    }

    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// The claims of a valid, unexpired, unrevoked token of an active user whose token
    /// generation has not moved on since (no password, role or activity change), with `role`
    /// replaced by the user's current one.
    ///
    /// # Errors
    /// [`AuthError::InvalidToken`], [`AuthError::ExpiredToken`], [`AuthError::RevokedToken`],
    /// [`AuthError::InactiveAccount`] or [`AuthError::Unavailable`].
    pub async fn authenticate_token(&self, token: &str) -> Result<Claims, AuthError> {
        let mut claims = self.tokens.verify(token)?;
        let (revoked, standing) = tokio::join!(
            self.revocations.is_revoked(claims.jti),
            self.revocations.standing(claims.sub)
        );
        match revoked {
            Ok(false) => {}
            Ok(true) => return Err(AuthError::RevokedToken),
            Err(error) => return Err(AuthError::Unavailable(error)),
        }
        let standing = standing
            .map_err(AuthError::Unavailable)?
            .filter(|standing| standing.active)
            .ok_or(AuthError::InactiveAccount)?;
        if standing.generation != claims.generation {
            return Err(AuthError::RevokedToken);
        }
        claims.role = standing.role;
        Ok(claims)
    }

    /// [`Authenticator::authenticate_token`] on the bearer token of `headers`.
    ///
    /// # Errors
    /// [`AuthError::MissingToken`] without a bearer token, otherwise as `authenticate_token`.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Claims, AuthError> {
        let token = bearer_token(headers).ok_or(AuthError::MissingToken)?;
        self.authenticate_token(token).await
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub claims: Claims,
}

impl AuthUser {
    /// The caller as the domain sees it.
    pub fn actor(&self) -> Actor {
        self.claims.actor()
    }
}

impl<S> FromRequestParts<S> for AuthUser
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let authenticator = Authenticator::from_ref(state);
        let claims = authenticator.authenticate(&parts.headers).await?;
        Ok(Self { claims })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(authorization).expect("header"),
        );
        headers
    }

    #[test]
    fn the_bearer_token_is_taken_from_the_authorization_header() {
        assert_eq!(
            bearer_token(&headers("Bearer abc.def.ghi")),
            Some("abc.def.ghi")
        );
        assert_eq!(bearer_token(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(&headers("Basic dXNlcjpwYXNz")), None);
        assert_eq!(bearer_token(&headers("Bearer ")), None);
        assert_eq!(bearer_token(&headers("Bearer")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

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

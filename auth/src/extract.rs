//! The [`AuthUser`] extractor: `Authorization: Bearer <token>`, verified and not revoked.
//!
//! A handler that takes `user: AuthUser` runs only for an authenticated caller. The app state
//! must provide an [`Authenticator`] through `FromRef`. Refusals are [`AuthError`]s: 401 with
//! `WWW-Authenticate: Bearer` and the JSON error body (code `unauthorized`), or 503 (code
//! `unavailable`) when neither Redis nor PostgreSQL can say whether the token was revoked.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use domain::Actor;

pub use crate::error::AuthError;
use crate::revocation::Revocations;
use crate::tokens::{Claims, Tokens};

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
    use axum::http::HeaderValue;

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
}

//! Extractors whose rejections are [`ApiError`]s, so every bad request gets the JSON error body.

use auth::AuthUser;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use domain::Role;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::ApiError;

/// Path parameters; a malformed one is a 400 `invalid_id`.
#[derive(Debug, Clone, Copy)]
pub struct AppPath<T>(pub T);

impl<T, S> FromRequestParts<S> for AppPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// The one `{id}` of a path, which must be a UUID: otherwise 400 `invalid_id` naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let AppPath(raw) = AppPath::<String>::from_request_parts(parts, state).await?;
        Uuid::parse_str(&raw).map(Self).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_id",
                format!("{raw:?} is not a valid id (expected a UUID)"),
            )
        })
    }
}

/// Query parameters; an unknown or malformed one is a 422 `invalid` naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for AppQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// Who is reading: the verified, unrevoked token's user and whether they are an admin (who
/// sees everything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer {
    /// The caller's user id (`sub`).
    pub user_id: Uuid,
    /// The `role` claim is `admin`.
    pub admin: bool,
}

impl Viewer {
    /// The caller's id as stored in the read models.
    pub fn id(&self) -> String {
        self.user_id.to_string()
    }
}

impl<S> FromRequestParts<S> for Viewer
where
    auth::Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = auth::AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        Ok(Self {
            user_id: user.claims.sub,
            admin: user.claims.role == Role::Admin,
        })
    }
}

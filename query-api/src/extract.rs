//! The query API's own extractor, [`Viewer`]; the shared ones (path, id, query) are
//! re-exported from `service_runtime::extract`.

use auth::AuthUser;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use domain::Role;
pub use service_runtime::extract::{AppPath, AppQuery, PathId};
use uuid::Uuid;

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
    /// The viewer of verified claims (their role being the user's current one).
    pub fn of(claims: &auth::Claims) -> Self {
        Self {
            user_id: claims.sub,
            admin: claims.role == Role::Admin,
        }
    }

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
        Ok(Self::of(&user.claims))
    }
}

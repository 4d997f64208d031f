//! The write-side registry: `user_registry`, `project_registry` and `project_members`, kept in
//! step with the events by [`crate::PgEventRepository`] (see `update`), read here by the
//! aggregates' `Services` and by login. Never the read side.

pub(crate) mod access;
pub(crate) mod update;

use std::collections::BTreeSet;
use std::sync::Arc;

use domain::{
    BoxFuture, Email, PasswordHash, ProjectAccess, ProjectServices, ProjectServicesHandle, Role,
    ServiceError, TaskServices, TaskServicesHandle, UserServices, UserServicesHandle, UserStatus,
    Username,
};
use sqlx::PgPool;
use uuid::Uuid;

use self::access::AccessCache;

/// What login needs to know about a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user's id.
    pub user_id: Uuid,
    /// The username as registered.
    pub username: String,
    /// The current password hash (`Debug` prints `***`).
    pub password_hash: PasswordHash,
    /// The current role.
    pub role: Role,
    /// `false` once deactivated: such a user may not log in.
    pub active: bool,
    /// Moves on with every password change, role change and deactivation; a token is issued
    /// with the current one and works only while it is still current.
    pub token_generation: i64,
}

/// Look-ups in the write-side registry. Cheap to clone (a pool handle).
///
/// Implements [`UserServices`], [`ProjectServices`] and [`TaskServices`]; hand it to the command
/// buses with [`Registry::user_services`] etc. A database error is a [`ServiceError`] (the
/// aggregates turn it into their `Unavailable`, HTTP 503); its message is for logs.
///
/// The projects' access that task commands ask for is answered from memory when it can be, and
/// checked by the command's commit (see [`access`]); every other look-up reads PostgreSQL.
#[derive(Debug, Clone)]
pub struct Registry {
    pool: PgPool,
    access: AccessCache,
}

type CredentialsRow = (Uuid, String, String, String, bool, i64);

const SELECT_CREDENTIALS: &str =
    "SELECT user_id, username, password_hash, role, active, token_generation
     FROM user_registry";

impl Registry {
    /// A registry over `pool` (the event store's database).
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            access: AccessCache::new(crate::DEFAULT_CACHE_CAPACITY),
        }
    }

    /// The same registry keeping at most `capacity` projects' access in memory (0: none, every
    /// task command reads it; default [`crate::DEFAULT_CACHE_CAPACITY`]).
    #[must_use]
    pub fn with_access_cache_capacity(self, capacity: usize) -> Self {
        Self {
            access: AccessCache::new(capacity),
            ..self
        }
    }

    /// This registry as the `Services` of the `User` aggregate.
    #[must_use]
    pub fn user_services(&self) -> UserServicesHandle {
        Arc::new(self.clone())
    }

    /// This registry as the `Services` of the `Project` aggregate.
    #[must_use]
    pub fn project_services(&self) -> ProjectServicesHandle {
        Arc::new(self.clone())
    }

    /// This registry as the `Services` of the `Task` aggregate.
    #[must_use]
    pub fn task_services(&self) -> TaskServicesHandle {
        Arc::new(self.clone())
    }

    /// The credentials of the user with this username (a [`Username`] or raw login input:
    /// trimmed and compared case-insensitively), or `None` if there is none.
    ///
    /// # Errors
    /// A [`ServiceError`] if the database cannot be asked.
    pub async fn credentials(
        &self,
        username: &(impl AsRef<str> + ?Sized),
    ) -> Result<Option<Credentials>, ServiceError> {
        let row: Option<CredentialsRow> = sqlx::query_as(&format!(
            "{SELECT_CREDENTIALS} WHERE lower(username) = lower($1)"
        ))
        .bind(username.as_ref().trim())
        .fetch_optional(&self.pool)
        .await
        .map_err(|error| service_error(&error))?;
        row.map(credentials).transpose()
    }

    /// The credentials of the user with this id (e.g. to refresh a token), or `None`.
    ///
    /// # Errors
    /// A [`ServiceError`] if the database cannot be asked.
    pub async fn credentials_by_id(
        &self,
        user_id: Uuid,
    ) -> Result<Option<Credentials>, ServiceError> {
        let row: Option<CredentialsRow> =
            sqlx::query_as(&format!("{SELECT_CREDENTIALS} WHERE user_id = $1"))
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(|error| service_error(&error))?;
        row.map(credentials).transpose()
    }

    /// Whether a user with this id is registered (active or not).
    ///
    /// # Errors
    /// A [`ServiceError`] if the database cannot be asked.
    pub async fn user_exists(&self, user_id: Uuid) -> Result<bool, ServiceError> {
        Ok(self.status_of(user_id).await?.is_some())
    }

    /// Whether a project with this id exists (archived or not).
    ///
    /// # Errors
    /// A [`ServiceError`] if the database cannot be asked.
    pub async fn project_exists(&self, project_id: Uuid) -> Result<bool, ServiceError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM project_registry WHERE project_id = $1)")
            .bind(project_id)
            .fetch_one(&self.pool)
            .await
            .map_err(|error| service_error(&error))
    }

    async fn owner_of(&self, query: &str, key: &str) -> Result<Option<Uuid>, ServiceError> {
        sqlx::query_scalar(query)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(|error| service_error(&error))
    }

    async fn status_of(&self, user_id: Uuid) -> Result<Option<UserStatus>, ServiceError> {
        let active: Option<bool> =
            sqlx::query_scalar("SELECT active FROM user_registry WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(|error| service_error(&error))?;
        Ok(active.map(|active| UserStatus { active }))
    }

    /// The project's access: inside a command, from the cache if it has it (the commit checks
    /// it, see [`access`]); otherwise read from PostgreSQL, and cached.
    async fn access_to(&self, project_id: Uuid) -> Result<Option<ProjectAccess>, ServiceError> {
        if let Some(cached) = access::cached(&self.access, project_id) {
            return Ok(Some(cached));
        }
        let row: Option<(Uuid, bool, i64, Vec<Uuid>)> = sqlx::query_as(
            "SELECT p.owner_id, p.archived, p.access_version,
                    coalesce(array_agg(m.user_id) FILTER (WHERE m.user_id IS NOT NULL), '{}')
               FROM project_registry p
               LEFT JOIN project_members m USING (project_id)
              WHERE p.project_id = $1
              GROUP BY p.project_id",
        )
        .bind(project_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|error| service_error(&error))?;
        Ok(row.map(|(owner_id, archived, version, members)| {
            let found = ProjectAccess {
                owner_id,
                members: members.into_iter().collect::<BTreeSet<_>>(),
                archived,
            };
            access::read(&self.access, project_id, found.clone(), version);
            found
        }))
    }
}

impl UserServices for Registry {
    fn username_owner<'a>(
        &'a self,
        username: &'a Username,
    ) -> BoxFuture<'a, Result<Option<Uuid>, ServiceError>> {
        Box::pin(self.owner_of(
            "SELECT user_id FROM user_registry WHERE lower(username) = lower($1)",
            username.as_str(),
        ))
    }

    fn email_owner<'a>(
        &'a self,
        email: &'a Email,
    ) -> BoxFuture<'a, Result<Option<Uuid>, ServiceError>> {
        Box::pin(async move {
            self.owner_of(
                "SELECT user_id FROM user_registry WHERE email_normalized = $1",
                &email.normalized(),
            )
            .await
        })
    }
}

impl ProjectServices for Registry {
    fn user_status(
        &self,
        user_id: Uuid,
    ) -> BoxFuture<'_, Result<Option<UserStatus>, ServiceError>> {
        Box::pin(self.status_of(user_id))
    }
}

impl TaskServices for Registry {
    fn project_access(
        &self,
        project_id: Uuid,
    ) -> BoxFuture<'_, Result<Option<ProjectAccess>, ServiceError>> {
        Box::pin(self.access_to(project_id))
    }
}

fn credentials(row: CredentialsRow) -> Result<Credentials, ServiceError> {
    let (user_id, username, password_hash, role, active, token_generation) = row;
    Ok(Credentials {
        user_id,
        username,
        password_hash: PasswordHash::new(password_hash),
        role: parse_role(&role)?,
        active,
        token_generation,
    })
}

/// The role stored as [`Role::as_str`].
fn parse_role(role: &str) -> Result<Role, ServiceError> {
    [Role::User, Role::Admin]
        .into_iter()
        .find(|known| known.as_str() == role)
        .ok_or_else(|| ServiceError::new(format!("write-side registry: unknown role {role:?}")))
}

fn service_error(error: &sqlx::Error) -> ServiceError {
    ServiceError::new(format!("write-side registry: {error}"))
}

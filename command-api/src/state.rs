//! What every handler shares.

use std::sync::Arc;

use auth::{AuthUser, Authenticator, LoginThrottle, Revocations, Tokens};
use axum::Json;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cqrs_es::Aggregate;
use domain::{Actor, DomainError, Project, Task, User};
use event_store::{CommandBus, Committed, Metadata, Registry};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{ExpectedVersion, RequestIds};

/// The command API's state: one command bus per aggregate, the write-side registry and auth.
#[derive(Clone)]
pub struct AppState {
    pub users: Arc<CommandBus<User>>,
    pub projects: Arc<CommandBus<Project>>,
    pub tasks: Arc<CommandBus<Task>>,
    pub registry: Registry,
    pub tokens: Arc<Tokens>,
    pub revocations: Revocations,
    pub authenticator: Authenticator,
    /// Failed logins per account and per client address.
    pub login_throttle: LoginThrottle,
    /// Base URL of the query API, for the `Location` of what a command changed.
    pub query_api_url: Arc<str>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("query_api_url", &self.query_api_url)
            .finish_non_exhaustive()
    }
}

impl FromRef<AppState> for Authenticator {
    fn from_ref(state: &AppState) -> Self {
        state.authenticator.clone()
    }
}

/// Who sends a command and in which request: the verified token, the request ids for the
/// event metadata, and the version the client expects (if it said).
#[derive(Debug)]
pub struct Caller {
    pub user: AuthUser,
    pub ids: RequestIds,
    pub expected: ExpectedVersion,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        self.user.actor()
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let ids = RequestIds::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let expected = ExpectedVersion::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            user,
            ids,
            expected,
        })
    }
}

/// The event metadata of a request: who, and which request / correlation / causation.
pub fn metadata(ids: RequestIds, user_id: Option<Uuid>) -> Metadata {
    Metadata {
        user_id,
        request_id: ids.request_id,
        correlation_id: ids.correlation_id,
        causation_id: ids.causation_id,
        action: None,
    }
}

/// The reply to every accepted command: the aggregate's id and its version after the command,
/// to pass as `min_version` to the query API (read-your-writes).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommandReply {
    pub id: Uuid,
    pub version: u64,
}

impl AppState {
    /// Runs `command` on the aggregate `id` of `/{resource}/{id}` for `caller`, and replies
    /// 200 with `{id, version}` (see [`AppState::reply`]).
    pub async fn execute<A>(
        &self,
        bus: &CommandBus<A>,
        id: Uuid,
        command: A::Command,
        caller: Caller,
        resource: &str,
    ) -> Result<Response, ApiError>
    where
        A: Aggregate,
        A::Error: DomainError,
    {
        self.execute_as(bus, id, command, caller, resource, None)
            .await
    }

    /// [`AppState::execute`] with a [`Metadata::action`] recorded in the events' metadata.
    pub async fn execute_as<A>(
        &self,
        bus: &CommandBus<A>,
        id: Uuid,
        command: A::Command,
        caller: Caller,
        resource: &str,
        action: Option<&str>,
    ) -> Result<Response, ApiError>
    where
        A: Aggregate,
        A::Error: DomainError,
    {
        let mut meta = metadata(caller.ids, Some(caller.user.claims.sub));
        meta.action = action.map(str::to_owned);
        let committed = bus
            .execute(&id.to_string(), command, meta, caller.expected.0)
            .await?;
        Ok(self.reply(id, &format!("/{resource}/{id}"), &committed))
    }

    /// Like [`AppState::execute`] for a command that creates the aggregate: 201.
    pub async fn create<A>(
        &self,
        bus: &CommandBus<A>,
        id: Uuid,
        command: A::Command,
        caller: Caller,
        resource: &str,
    ) -> Result<Response, ApiError>
    where
        A: Aggregate,
        A::Error: DomainError,
    {
        let mut response = self.execute(bus, id, command, caller, resource).await?;
        *response.status_mut() = StatusCode::CREATED;
        Ok(response)
    }

    /// 200, the [`CommandReply`] body, `Location: <query api>/<path>` and
    /// `ETag: "<version>"`.
    pub fn reply(&self, id: Uuid, path: &str, committed: &Committed) -> Response {
        let mut response = (
            StatusCode::OK,
            Json(CommandReply {
                id,
                version: committed.version,
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        if let Ok(location) = HeaderValue::from_str(&format!("{}{path}", self.query_api_url)) {
            headers.insert(header::LOCATION, location);
        }
        if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", committed.version)) {
            headers.insert(header::ETAG, etag);
        }
        response
    }
}

impl AppState {
    /// After a committed command that changed `user_id`'s role, password or activity: copies
    /// the new standing to Redis at once, so every earlier token stops working on both APIs.
    /// A failure is only logged (PostgreSQL has the change; a stale Redis copy expires within
    /// `auth::standing::STANDING_TTL`).
    pub async fn refresh_standing(&self, user_id: Uuid) {
        if let Err(error) = self.revocations.refresh_standing(user_id).await {
            tracing::warn!(%error, "a user's new standing was not copied to Redis");
        }
    }
}

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
use event_store::{CommandBus, CommandError, Committed, Metadata, Registry};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{ExpectedVersion, RequestIds};

/// The command API's state: the commands of each aggregate, the write-side registry and auth.
#[derive(Clone)]
pub struct AppState {
    pub users: Arc<Commands<User>>,
    pub projects: Arc<Commands<Project>>,
    pub tasks: Arc<Commands<Task>>,
    pub registry: Registry,
    /// Where attachments' bytes go; `None` when no storage is configured (attachment routes
    /// answer 503).
    pub attachments: Option<attachment_store::AttachmentStore>,
    pub tokens: Arc<Tokens>,
    pub revocations: Revocations,
    pub authenticator: Authenticator,
    /// Failed logins per account and per client address.
    pub login_throttle: LoginThrottle,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
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

/// The commands of one aggregate type: its [`CommandBus`], and where the query API serves the
/// resource they change (for the reply's `Location`).
pub struct Commands<A: Aggregate> {
    bus: CommandBus<A>,
    /// The resource's path on the query API: `/users`, `/projects` or `/tasks`.
    resource: &'static str,
    /// Base URL of the query API.
    query_api_url: Arc<str>,
}

impl<A: Aggregate> std::fmt::Debug for Commands<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commands")
            .field("resource", &self.resource)
            .field("query_api_url", &self.query_api_url)
            .finish_non_exhaustive()
    }
}

impl<A> Commands<A>
where
    A: Aggregate + Clone,
    A::Command: Clone,
    A::Error: DomainError,
{
    /// The commands of `bus`, whose aggregates the query API serves at
    /// `<query_api_url>/<resource>/{id}`.
    pub fn new(bus: CommandBus<A>, resource: &'static str, query_api_url: Arc<str>) -> Self {
        Self {
            bus,
            resource,
            query_api_url,
        }
    }

    /// Runs `command` on the aggregate `id` for `caller`, and replies 200 with `{id, version}`
    /// (see [`Commands::run`]).
    pub async fn execute(
        &self,
        id: Uuid,
        command: A::Command,
        caller: Caller,
    ) -> Result<Response, ApiError> {
        self.execute_as(id, command, caller, None).await
    }

    /// [`Commands::execute`] with a [`Metadata::action`] recorded in the events' metadata.
    pub async fn execute_as(
        &self,
        id: Uuid,
        command: A::Command,
        caller: Caller,
        action: Option<&str>,
    ) -> Result<Response, ApiError> {
        let mut meta = metadata(caller.ids, Some(caller.user.claims.sub));
        meta.action = action.map(str::to_owned);
        self.run(id, command, meta, caller.expected.0, StatusCode::OK)
            .await
    }

    /// Like [`Commands::execute`] for a command that creates the aggregate `id`, an id the API
    /// has just generated: nothing is loaded (see [`CommandBus::create`]); 201.
    pub async fn create(
        &self,
        id: Uuid,
        command: A::Command,
        caller: Caller,
    ) -> Result<Response, ApiError> {
        if let Some(expected) = caller.expected.0
            && expected != 0
        {
            // A new aggregate is at version 0.
            return Err(CommandError::<A::Error>::VersionConflict {
                expected,
                actual: 0,
            }
            .into());
        }
        let meta = metadata(caller.ids, Some(caller.user.claims.sub));
        self.create_with(id, command, meta).await
    }

    /// [`Commands::create`] with the event metadata given (a registration has no caller).
    pub async fn create_with(
        &self,
        id: Uuid,
        command: A::Command,
        metadata: Metadata,
    ) -> Result<Response, ApiError> {
        let committed = self.bus.create(&id.to_string(), command, metadata).await?;
        Ok(self.reply(id, &committed, StatusCode::CREATED))
    }

    /// Runs `command` for `caller` like [`Commands::execute`], and returns what was committed
    /// (for a reply of the route's own).
    pub async fn commit(
        &self,
        id: Uuid,
        command: A::Command,
        caller: Caller,
    ) -> Result<Committed, ApiError> {
        let meta = metadata(caller.ids, Some(caller.user.claims.sub));
        Ok(self
            .bus
            .execute(&id.to_string(), command, meta, caller.expected.0)
            .await?)
    }

    /// The aggregate's current state and version (a never-created one is `A::default()`).
    pub async fn load(&self, id: Uuid) -> Result<(A, u64), ApiError> {
        Ok(self.bus.load(&id.to_string()).await?)
    }

    /// Where the query API serves what these commands change (no trailing slash).
    pub fn query_api_url(&self) -> &str {
        &self.query_api_url
    }

    /// Runs `command` with `metadata` at the `expected` version (if any) and replies `status`
    /// with `{id, version}`, `Location: <query api>/<resource>/<id>` and `ETag: "<version>"`.
    pub async fn run(
        &self,
        id: Uuid,
        command: A::Command,
        metadata: Metadata,
        expected: Option<u64>,
        status: StatusCode,
    ) -> Result<Response, ApiError> {
        let committed = self
            .bus
            .execute(&id.to_string(), command, metadata, expected)
            .await?;
        Ok(self.reply(id, &committed, status))
    }

    /// `status`, the [`CommandReply`] body, `Location: <query api>/<resource>/<id>` and
    /// `ETag: "<version>"`.
    fn reply(&self, id: Uuid, committed: &Committed, status: StatusCode) -> Response {
        let mut response = (
            status,
            Json(CommandReply {
                id,
                version: committed.version,
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        let location = format!("{}/{}/{id}", self.query_api_url, self.resource);
        if let Ok(location) = HeaderValue::from_str(&location) {
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

//! What every handler shares.

use std::sync::Arc;

use auth::{Authenticator, Revocations, Tokens};
use axum::Json;
use axum::extract::FromRef;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{Project, Task, User};
use event_store::{CommandBus, Committed, Metadata, Registry};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::extract::RequestIds;

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

/// The event metadata of a request: who, and which request / correlation / causation.
pub fn metadata(ids: RequestIds, user_id: Option<Uuid>) -> Metadata {
    Metadata {
        user_id,
        request_id: ids.request_id,
        correlation_id: ids.correlation_id,
        causation_id: ids.causation_id,
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
    /// 201 (`created`) or 200, the [`CommandReply`] body, `Location: <query api>/<path>` and
    /// `ETag: "<version>"`.
    pub fn reply(&self, created: bool, id: Uuid, path: &str, committed: &Committed) -> Response {
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let mut response = (
            status,
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

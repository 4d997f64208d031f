//! Project (the seeds' "goal") commands: `POST /projects` (alias `POST /goals`),
//! `PATCH /projects/{id}`, `POST /projects/{id}/members`, `DELETE /projects/{id}/members/{user_id}`,
//! `POST /projects/{id}/archive`.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{delete, patch, post};
use chrono::NaiveDate;
use domain::{Description, ProjectCommand, ProjectName};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{AppJson, AppPath};
use crate::state::{AppState, Caller};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects", post(create))
        .route("/goals", post(create))
        .route("/projects/{id}", patch(update))
        .route("/projects/{id}/members", post(add_member))
        .route("/projects/{id}/members/{user_id}", delete(remove_member))
        .route("/projects/{id}/archive", post(archive))
}

/// A new project; the caller becomes its owner. Seed A's goals send only `description`: the
/// name is then taken from it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProjectRequest {
    /// 1–200 characters.
    #[schema(example = "Launch v1")]
    pub name: Option<String>,
    /// Up to 10,000 characters.
    #[serde(default)]
    pub description: String,
    #[schema(value_type = Option<String>, format = Date, example = "2026-12-31")]
    pub deadline: Option<NaiveDate>,
}

/// A name from the first line of a description, for clients of the seeds that send none.
pub(crate) fn name_from(description: &str) -> String {
    description
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

#[utoipa::path(post, path = "/projects", tag = "projects", security(("bearer" = [])),
    request_body = CreateProjectRequest,
    responses((status = 201, body = crate::state::CommandReply), (status = 422)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(dto): AppJson<CreateProjectRequest>,
) -> Result<Response, ApiError> {
    let name = dto.name.unwrap_or_else(|| name_from(&dto.description));
    let project_id = Uuid::now_v7();
    let command = ProjectCommand::Create {
        project_id,
        actor: caller.actor(),
        name: ProjectName::parse(&name)?,
        description: Description::parse(&dto.description)?,
        deadline: dto.deadline,
    };
    state.projects.create(project_id, command, caller).await
}

/// Only the fields present change; `"deadline": null` clears the deadline.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProjectRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(default, with = "domain::serde_helpers::double_option")]
    #[schema(value_type = Option<String>, format = Date)]
    pub deadline: Option<Option<NaiveDate>>,
}

#[utoipa::path(patch, path = "/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "expected version")),
    request_body = UpdateProjectRequest,
    responses((status = 200, body = crate::state::CommandReply), (status = 403), (status = 404), (status = 409)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<Uuid>,
    AppJson(dto): AppJson<UpdateProjectRequest>,
) -> Result<Response, ApiError> {
    let command = ProjectCommand::Update {
        actor: caller.actor(),
        name: dto.name.as_deref().map(ProjectName::parse).transpose()?,
        description: dto
            .description
            .as_deref()
            .map(Description::parse)
            .transpose()?,
        deadline: dto.deadline,
    };
    state.projects.execute(id, command, caller).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    pub user_id: Uuid,
}

#[utoipa::path(post, path = "/projects/{id}/members", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = AddMemberRequest,
    responses((status = 200, body = crate::state::CommandReply), (status = 403), (status = 404), (status = 409)))]
pub async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<Uuid>,
    AppJson(dto): AppJson<AddMemberRequest>,
) -> Result<Response, ApiError> {
    let command = ProjectCommand::AddMember {
        actor: caller.actor(),
        user_id: dto.user_id,
    };
    state.projects.execute(id, command, caller).await
}

#[utoipa::path(delete, path = "/projects/{id}/members/{user_id}", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 200, body = crate::state::CommandReply), (status = 403), (status = 404), (status = 409)))]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    AppPath((id, user_id)): AppPath<(Uuid, Uuid)>,
) -> Result<Response, ApiError> {
    let command = ProjectCommand::RemoveMember {
        actor: caller.actor(),
        user_id,
    };
    state.projects.execute(id, command, caller).await
}

#[utoipa::path(post, path = "/projects/{id}/archive", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = crate::state::CommandReply), (status = 403), (status = 404), (status = 409)))]
pub async fn archive(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<Uuid>,
) -> Result<Response, ApiError> {
    let command = ProjectCommand::Archive {
        actor: caller.actor(),
    };
    state.projects.execute(id, command, caller).await
}

//! Task commands: `POST /projects/{id}/tasks` (alias `POST /goals/{id}/tasks`), `POST /tasks`,
//! `PATCH /tasks/{id}`, `PUT /tasks/{id}/status` (alias `PUT /tasks/{id}`),
//! `PUT /tasks/{id}/assignee`, `PUT /tasks/{id}/due-date`, `PUT /tasks/{id}/priority`,
//! `POST /tasks/{id}/labels`, `DELETE /tasks/{id}/labels/{label}`, `DELETE /tasks/{id}`.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{delete, post, put};
use chrono::NaiveDate;
use domain::{Description, Label, TaskCommand, TaskPriority, TaskStatus, TaskTitle};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{AppJson, AppPath};
use crate::routes::projects::name_from;
use crate::state::{AppState, Caller};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/tasks", post(create_in_project))
        .route("/goals/{id}/tasks", post(create_in_project))
        .route("/tasks", post(create))
        .route(
            "/tasks/{id}",
            put(change_status).patch(edit).delete(delete_task),
        )
        .route("/tasks/{id}/status", put(change_status))
        .route("/tasks/{id}/assignee", put(assign))
        .route("/tasks/{id}/due-date", put(set_due_date))
        .route("/tasks/{id}/priority", put(set_priority))
        .route("/tasks/{id}/labels", post(add_label))
        .route("/tasks/{id}/labels/{label}", delete(remove_label))
}

/// A new task. Seed A's clients send only `description`: the title is then its first line.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskRequest {
    /// 1–200 characters.
    #[schema(example = "Write the README")]
    pub title: Option<String>,
    #[serde(default)]
    pub description: String,
    /// Must be the project's owner or a member.
    pub assignee_id: Option<Uuid>,
    #[schema(value_type = Option<String>, format = Date, example = "2026-12-01")]
    pub due_date: Option<NaiveDate>,
    /// `low`, `normal` (default), `high` or `urgent`.
    #[schema(value_type = Option<String>, example = "high")]
    pub priority: Option<TaskPriority>,
    /// At most 20 labels of 1–32 characters (letters, digits, spaces, `-_.:`); stored
    /// lowercase, duplicates merged.
    #[serde(default)]
    #[schema(example = json!(["bug", "ui"]))]
    pub labels: Vec<String>,
}

/// `POST /tasks` (seed C): the project is named in the body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskWithProjectRequest {
    pub project_id: Uuid,
    pub title: Option<String>,
    #[serde(default)]
    pub description: String,
    pub assignee_id: Option<Uuid>,
    #[schema(value_type = Option<String>, format = Date)]
    pub due_date: Option<NaiveDate>,
    #[schema(value_type = Option<String>)]
    pub priority: Option<TaskPriority>,
    #[serde(default)]
    pub labels: Vec<String>,
}

#[utoipa::path(post, path = "/projects/{id}/tasks", tag = "tasks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the project")), request_body = CreateTaskRequest,
    responses((status = 201, body = crate::state::CommandReply), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn create_in_project(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(project_id): AppPath<Uuid>,
    AppJson(dto): AppJson<CreateTaskRequest>,
) -> Result<Response, ApiError> {
    create_task(&state, caller, project_id, dto).await
}

#[utoipa::path(post, path = "/tasks", tag = "tasks", security(("bearer" = [])),
    request_body = CreateTaskWithProjectRequest,
    responses((status = 201, body = crate::state::CommandReply), (status = 403), (status = 404), (status = 422)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(dto): AppJson<CreateTaskWithProjectRequest>,
) -> Result<Response, ApiError> {
    let task = CreateTaskRequest {
        title: dto.title,
        description: dto.description,
        assignee_id: dto.assignee_id,
        due_date: dto.due_date,
        priority: dto.priority,
        labels: dto.labels,
    };
    create_task(&state, caller, dto.project_id, task).await
}

async fn create_task(
    state: &AppState,
    caller: Caller,
    project_id: Uuid,
    dto: CreateTaskRequest,
) -> Result<Response, ApiError> {
    let title = dto.title.unwrap_or_else(|| name_from(&dto.description));
    let task_id = Uuid::now_v7();
    let command = TaskCommand::Create {
        task_id,
        actor: caller.actor(),
        project_id,
        title: TaskTitle::parse(&title)?,
        description: Description::parse(&dto.description)?,
        assignee_id: dto.assignee_id,
        due_date: dto.due_date,
        priority: dto.priority.unwrap_or_default(),
        labels: Label::parse_set(dto.labels.iter().map(String::as_str))?,
    };
    state.tasks.create(task_id, command, caller).await
}

/// Only the fields present change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditTaskRequest {
    pub title: Option<String>,
    pub description: Option<String>,
}

#[utoipa::path(patch, path = "/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "expected version")),
    request_body = EditTaskRequest,
    responses((status = 200, body = crate::state::CommandReply), (status = 403), (status = 404), (status = 409)))]
pub async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<Uuid>,
    AppJson(dto): AppJson<EditTaskRequest>,
) -> Result<Response, ApiError> {
    let command = TaskCommand::Edit {
        actor: caller.actor(),
        title: dto.title.as_deref().map(TaskTitle::parse).transpose()?,
        description: dto
            .description
            .as_deref()
            .map(Description::parse)
            .transpose()?,
    };
    state.tasks.execute(id, command, caller).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeStatusRequest {
    /// `pending`, `in_progress`, `done` or `cancelled`.
    #[schema(value_type = String, example = "in_progress")]
    pub status: TaskStatus,
}

#[utoipa::path(put, path = "/tasks/{id}/status", tag = "tasks", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "expected version")),
    request_body = ChangeStatusRequest,
    responses(
        (status = 200, body = crate::state::CommandReply),
        (status = 409, description = "Transition not allowed, unchanged, or a concurrent change won"),
    ))]
pub async fn change_status(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<Uuid>,
    AppJson(dto): AppJson<ChangeStatusRequest>,
) -> Result<Response, ApiError> {
    let command = TaskCommand::ChangeStatus {
        actor: caller.actor(),
        status: dto.status,
    };
    state.tasks.execute(id, command, caller).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// A member of the project, or `null` to unassign.
    pub assignee_id: Option<Uuid>,
}

#[utoipa::path(put, path = "/tasks/{id}/assignee", tag = "tasks", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = AssignRequest,
    responses((status = 200, body = crate::state::CommandReply), (status = 403), (status = 404), (status = 422, description = "Assignee is not a member")))]
pub async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<Uuid>,
    AppJson(dto): AppJson<AssignRequest>,
) -> Result<Response, ApiError> {
    let command = TaskCommand::Assign {
        actor: caller.actor(),
        assignee_id: dto.assignee_id,
    };
    state.tasks.execute(id, command, caller).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DueDateRequest {
    /// A date, or `null` to clear it.
    #[schema(value_type = Option<String>, format = Date)]
    pub due_date: Option<NaiveDate>,
}

#[utoipa::path(put, path = "/tasks/{id}/due-date", tag = "tasks", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = DueDateRequest,
    responses((status = 200, body = crate::state::CommandReply), (status = 403), (status = 404)))]
pub async fn set_due_date(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<Uuid>,
    AppJson(dto): AppJson<DueDateRequest>,
) -> Result<Response, ApiError> {
    let command = TaskCommand::SetDueDate {
        actor: caller.actor(),
        due_date: dto.due_date,
    };
    state.tasks.execute(id, command, caller).await
}

#[utoipa::path(delete, path = "/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "Deleted (a TaskDeleted event; the history stays)", body = crate::state::CommandReply), (status = 403), (status = 404)))]
pub async fn delete_task(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<Uuid>,
) -> Result<Response, ApiError> {
    let command = TaskCommand::Delete {
        actor: caller.actor(),
    };
    state.tasks.execute(id, command, caller).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriorityRequest {
    /// `low`, `normal`, `high` or `urgent`.
    #[schema(value_type = String, example = "urgent")]
    pub priority: TaskPriority,
}

#[utoipa::path(put, path = "/tasks/{id}/priority", tag = "tasks", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "expected version")),
    request_body = PriorityRequest,
    responses((status = 200, description = "Changed, or already that priority (same version)", body = crate::state::CommandReply), (status = 403), (status = 404)))]
pub async fn set_priority(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<Uuid>,
    AppJson(dto): AppJson<PriorityRequest>,
) -> Result<Response, ApiError> {
    let command = TaskCommand::SetPriority {
        actor: caller.actor(),
        priority: dto.priority,
    };
    state.tasks.execute(id, command, caller).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelRequest {
    /// 1–32 characters: letters, digits, spaces, `-`, `_`, `.`, `:` (stored lowercase).
    #[schema(example = "needs review")]
    pub label: String,
}

#[utoipa::path(post, path = "/tasks/{id}/labels", tag = "tasks", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "expected version")),
    request_body = LabelRequest,
    responses(
        (status = 200, description = "Added, or already there (same version)", body = crate::state::CommandReply),
        (status = 403), (status = 404),
        (status = 409, description = "The task already has 20 labels"),
    ))]
pub async fn add_label(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<Uuid>,
    AppJson(dto): AppJson<LabelRequest>,
) -> Result<Response, ApiError> {
    let command = TaskCommand::AddLabel {
        actor: caller.actor(),
        label: Label::parse(&dto.label)?,
    };
    state.tasks.execute(id, command, caller).await
}

#[utoipa::path(delete, path = "/tasks/{id}/labels/{label}", tag = "tasks", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("label" = String, Path, description = "the label (any case)"),
        ("If-Match" = Option<String>, Header, description = "expected version")),
    responses((status = 200, description = "Removed, or not there (same version)", body = crate::state::CommandReply), (status = 403), (status = 404)))]
pub async fn remove_label(
    State(state): State<AppState>,
    caller: Caller,
    AppPath((id, label)): AppPath<(Uuid, String)>,
) -> Result<Response, ApiError> {
    let command = TaskCommand::RemoveLabel {
        actor: caller.actor(),
        label: Label::parse(&label)?,
    };
    state.tasks.execute(id, command, caller).await
}

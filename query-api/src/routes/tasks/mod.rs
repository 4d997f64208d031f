//! `GET /tasks`, `/projects/{id}/tasks` (alias `/goals/{id}/tasks`), `/tasks/{id}` and
//! `/tasks/{id}/history`. A user sees the tasks of the projects they own or belong to; admins
//! see all; any other task is a 404. Deleted tasks are left out of lists and answer 404.
//!
//! [`list`]: the lists, their filters and sorting; [`history`]: a task's events from the event
//! store; this module: one task.

pub mod history;
pub mod list;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use mongodb::bson::doc;
use read_model::documents::TaskView;

use crate::consistency::MinVersion;
use crate::error::ApiError;
use crate::extract::{AppQuery, PathId, Viewer};
use crate::state::AppState;
use crate::views::{Task, today};

/// The task routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tasks", get(list::list))
        .route("/tasks/{id}", get(by_id))
        .route("/tasks/{id}/history", get(history::history))
        .route("/projects/{id}/tasks", get(list::list_in_project))
        .route("/goals/{id}/tasks", get(list::list_in_project))
}

/// One task.
#[utoipa::path(get, path = "/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Task id"), MinVersion),
    responses(
        (status = 200, body = Task),
        (status = 404, description = "No such task, deleted, or not in a project of yours"),
    ))]
pub async fn by_id(
    State(state): State<AppState>,
    viewer: Viewer,
    PathId(id): PathId,
    AppQuery(params): AppQuery<MinVersion>,
) -> Result<Json<Task>, ApiError> {
    let id = id.to_string();
    let task = read_task(&state, &viewer, &id, params.min_version)
        .await?
        .filter(|t| !t.deleted)
        .ok_or_else(|| ApiError::not_found("task", &id))?;
    let names = state.store.task_names(std::slice::from_ref(&task)).await?;
    Ok(Json(Task::on(task, today(), &names)))
}

pub(crate) async fn read_task(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    min_version: Option<u64>,
) -> Result<Option<TaskView>, ApiError> {
    state
        .consistency
        .read(
            id,
            min_version,
            |t: &TaskView| t.version,
            || state.visible_task(viewer, id),
        )
        .await
}

//! `GET /tasks`, `/projects/{id}/tasks` (alias `/goals/{id}/tasks`) and `/tasks/{id}`. A user sees the tasks of the projects they own or belong to; admins
//! see all; any other task is a 404. Deleted tasks are left out of lists and answer 404.
//!
//! The history (`/tasks/{id}/history`, read from the event store) is in
//! [`super::task_history`].

#![expect(
    unused_qualifications,
    reason = "utoipa's `params(..)` expansion qualifies the IntoParams types"
)]

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use mongodb::bson::{Bson, doc};
use read_model::documents::{TaskView, priority, status};
use read_model::names;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::consistency::{MinVersion, wait_pair};
use crate::error::ApiError;
use crate::extract::{AppQuery, PathId, Viewer};
use crate::pagination::{self, Order, Page, Sorting};
use crate::routes::projects::read_project;
use crate::state::AppState;
use crate::views::{Task, today};

/// The task routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tasks", get(list))
        .route("/tasks/{id}", get(by_id))
        .route("/tasks/{id}/history", get(super::task_history::history))
        .route("/projects/{id}/tasks", get(list_in_project))
        .route("/goals/{id}/tasks", get(list_in_project))
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

/// The longest text of `q`.
const MAX_Q_CHARS: usize = 100;

/// A task status, as a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    /// Not started.
    Pending,
    /// Being worked on.
    InProgress,
    /// Finished.
    Done,
    /// Given up.
    Cancelled,
}

impl StatusFilter {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => status::PENDING,
            Self::InProgress => status::IN_PROGRESS,
            Self::Done => status::DONE,
            Self::Cancelled => status::CANCELLED,
        }
    }
}

/// A task priority, as a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PriorityFilter {
    /// Can wait.
    Low,
    /// The default.
    Normal,
    /// Soon.
    High,
    /// Now.
    Urgent,
}

impl PriorityFilter {
    fn as_str(self) -> &'static str {
        match self {
            Self::Low => priority::LOW,
            Self::Normal => priority::NORMAL,
            Self::High => priority::HIGH,
            Self::Urgent => priority::URGENT,
        }
    }
}

/// What a task list is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortField {
    /// Creation time (default; newest first unless `order=asc`).
    #[default]
    CreatedAt,
    /// Due date (earliest first unless `order=desc`; tasks without one come first in
    /// ascending order, last in descending order).
    DueDate,
    /// Time of the last change (most recent first unless `order=asc`).
    UpdatedAt,
    /// Priority (most urgent first unless `order=asc`; equal priorities by id).
    Priority,
}

impl SortField {
    fn sorting(self, order: Option<Order>) -> Sorting {
        let (field, default) = match self {
            Self::CreatedAt => ("created_at", Order::Desc),
            Self::DueDate => ("due_date", Order::Asc),
            Self::UpdatedAt => ("updated_at", Order::Desc),
            Self::Priority => ("priority_rank", Order::Desc),
        };
        Sorting {
            field,
            order: order.unwrap_or(default),
        }
    }
}

/// Filters, order and page of a task list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTasks {
    /// Only this project's tasks (`GET /tasks` only; nested routes take it from the path).
    pub project_id: Option<Uuid>,
    /// Only tasks with this status.
    #[param(inline)]
    pub status: Option<StatusFilter>,
    /// Only tasks of this priority.
    #[param(inline)]
    pub priority: Option<PriorityFilter>,
    /// Only tasks carrying this label (as given when labelling: case does not matter).
    pub label: Option<String>,
    /// Only tasks assigned to this user (a UUID, or `me`).
    pub assignee_id: Option<String>,
    /// Only overdue tasks (`true`: due before today, UTC, and pending or in progress) or only
    /// tasks that are not overdue (`false`).
    pub overdue: Option<bool>,
    /// Only tasks whose title contains this text (case-insensitive, 1..=100 characters).
    pub q: Option<String>,
    /// `created_at` (default), `due_date`, `updated_at` or `priority`.
    #[param(inline)]
    pub sort: Option<SortField>,
    /// `asc` or `desc` (default: `desc` for times, `asc` for `due_date`).
    #[param(inline)]
    pub order: Option<Order>,
    /// Items per page (1..=100, default 20).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (same filters, sort and order).
    pub cursor: Option<String>,
    /// With `min_version`: first wait until this task's read model reached that version.
    pub wait_for: Option<Uuid>,
    /// See `wait_for`.
    pub min_version: Option<u64>,
}

/// Tasks of my projects (every project for admins), filtered, sorted and paginated.
#[utoipa::path(get, path = "/tasks", tag = "tasks", security(("bearer" = [])),
    params(ListTasks),
    responses(
        (status = 200, body = Page<Task>),
        (status = 404, description = "`project_id` names no project of yours"),
        (status = 422, description = "Invalid parameter"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    AppQuery(params): AppQuery<ListTasks>,
) -> Result<Json<Page<Task>>, ApiError> {
    let project = params.project_id;
    list_tasks(&state, &viewer, project, params).await
}

/// The tasks of one project (alias `/goals/{id}/tasks`), with the filters of `GET /tasks`.
#[utoipa::path(get, path = "/projects/{id}/tasks", tag = "tasks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"), ListTasks),
    responses(
        (status = 200, body = Page<Task>),
        (status = 404, description = "No such project, or not yours"),
        (status = 422, description = "Invalid parameter"),
    ))]
pub async fn list_in_project(
    State(state): State<AppState>,
    viewer: Viewer,
    PathId(project_id): PathId,
    AppQuery(params): AppQuery<ListTasks>,
) -> Result<Json<Page<Task>>, ApiError> {
    if params.project_id.is_some() {
        return Err(ApiError::invalid(
            "project_id is taken from the path here; use GET /tasks?project_id= instead",
        ));
    }
    list_tasks(&state, &viewer, Some(project_id), params).await
}

async fn list_tasks(
    state: &AppState,
    viewer: &Viewer,
    project_id: Option<Uuid>,
    params: ListTasks,
) -> Result<Json<Page<Task>>, ApiError> {
    let limit = pagination::limit(params.limit)?;
    let sorting = params.sort.unwrap_or_default().sorting(params.order);
    let wait = wait_pair(params.wait_for, params.min_version)?;
    let today = today();
    let mut conditions = vec![doc! { "deleted": false }];
    match project_id {
        Some(project_id) => {
            let id = project_id.to_string();
            if read_project(state, viewer, &id, None).await?.is_none() {
                return Err(ApiError::not_found("project", &id));
            }
            conditions.push(doc! { "project_id": id });
        }
        None => {
            if let Some(ids) = state.visible_project_ids(viewer).await? {
                conditions.push(doc! { "project_id": { "$in": ids } });
            }
        }
    }
    if let Some(status) = params.status {
        conditions.push(doc! { "status": status.as_str() });
    }
    match params.priority {
        // A document written before priorities has none: it is `normal`.
        Some(PriorityFilter::Normal) => {
            conditions.push(doc! { "priority": { "$in": [priority::NORMAL, Bson::Null] } });
        }
        Some(priority) => conditions.push(doc! { "priority": priority.as_str() }),
        None => {}
    }
    if let Some(label) = params.label.as_deref() {
        let label =
            domain::Label::parse(label).map_err(|error| ApiError::invalid(error.to_string()))?;
        conditions.push(doc! { "labels": label.as_str() });
    }
    if let Some(assignee) = params.assignee_id.as_deref() {
        let assignee = if assignee == "me" {
            viewer.id()
        } else {
            Uuid::parse_str(assignee)
                .map_err(|_| {
                    ApiError::invalid(format!(
                        "assignee_id must be a UUID or `me` (got {assignee:?})"
                    ))
                })?
                .to_string()
        };
        conditions.push(doc! { "assignee_id": assignee });
    }
    let today_text = today.format("%Y-%m-%d").to_string();
    match params.overdue {
        Some(true) => conditions.push(doc! {
            "due_date": { "$ne": Bson::Null, "$lt": &today_text },
            "status": { "$in": status::OPEN.to_vec() },
        }),
        Some(false) => conditions.push(doc! { "$or": [
            { "due_date": Bson::Null },
            { "due_date": { "$gte": &today_text } },
            { "status": { "$nin": status::OPEN.to_vec() } },
        ] }),
        None => {}
    }
    if let Some(q) = params.q.as_deref() {
        let q = q.trim().to_lowercase();
        if q.is_empty() || q.chars().count() > MAX_Q_CHARS {
            return Err(ApiError::invalid(format!(
                "q must be 1 to {MAX_Q_CHARS} characters"
            )));
        }
        conditions.push(doc! { "title_lower": { "$regex": escape_regex(&q) } });
    }
    if let Some((id, version)) = wait {
        read_task(state, viewer, &id, Some(version)).await?;
    }
    let page: Page<TaskView> = pagination::page(
        &state.store,
        names::tasks,
        doc! { "$and": conditions },
        sorting,
        limit,
        params.cursor.as_deref(),
    )
    .await?;
    let names = state.store.task_names(&page.items).await?;
    Ok(Json(Page {
        items: page
            .items
            .into_iter()
            .map(|t| Task::on(t, today, &names))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// `text` as a regular expression that matches it literally.
pub fn escape_regex(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if c.is_ascii_punctuation() {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_escaping_keeps_text_literal() {
        assert_eq!(escape_regex("a.b*c"), r"a\.b\*c");
        assert_eq!(escape_regex("fix (urgent)"), r"fix \(urgent\)");
        assert_eq!(escape_regex("ünïcode"), "ünïcode");
    }
}

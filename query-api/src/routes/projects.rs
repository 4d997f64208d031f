//! `GET /projects` (alias `/goals`), `/projects/{id}`, `/projects/by-name/{name}`. A user sees
//! the projects they own or belong to; admins see all; any other project is a 404.

#![expect(
    unused_qualifications,
    reason = "utoipa's `params(..)` expansion qualifies the IntoParams types"
)]

use std::collections::HashMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use mongodb::bson::doc;
use read_model::documents::ProjectView;
use read_model::names;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::consistency::{MinVersion, wait_pair};
use crate::error::ApiError;
use crate::extract::{AppPath, AppQuery, PathId, Viewer};
use crate::pagination::{self, Order, Page, Sorting};
use crate::routes::stats;
use crate::state::{AppState, visible_projects_filter};
use crate::views::Project;

/// The project routes (and their `/goals` aliases).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects", get(list))
        .route("/goals", get(list))
        .route("/projects/by-name/{name}", get(by_name))
        .route("/projects/{id}", get(by_id))
        .route("/goals/{id}", get(by_id))
}

const NEWEST_FIRST: Sorting = Sorting {
    field: "created_at",
    order: Order::Desc,
};

/// `GET /projects` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListProjects {
    /// Only archived (`true`) or only active (`false`) projects; both when absent.
    pub archived: Option<bool>,
    /// Items per page (1..=100, default 20).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// With `min_version`: first wait until this project's read model reached that version.
    pub wait_for: Option<Uuid>,
    /// See `wait_for`.
    pub min_version: Option<u64>,
}

/// My projects (owned or member of; every project for admins), newest first.
#[utoipa::path(get, path = "/projects", tag = "projects", security(("bearer" = [])),
    params(ListProjects),
    responses(
        (status = 200, body = Page<Project>),
        (status = 422, description = "Invalid parameter"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    AppQuery(params): AppQuery<ListProjects>,
) -> Result<Json<Page<Project>>, ApiError> {
    let limit = pagination::limit(params.limit)?;
    if let Some((id, version)) = wait_pair(params.wait_for, params.min_version)? {
        read_project(&state, &viewer, &id, Some(version)).await?;
    }
    let mut filter = visible_projects_filter(&viewer);
    if let Some(archived) = params.archived {
        filter.insert("archived", archived);
    }
    let page: Page<ProjectView> = pagination::page(
        &state.store,
        names::projects,
        filter,
        NEWEST_FIRST,
        limit,
        params.cursor.as_deref(),
    )
    .await?;
    Ok(Json(Page {
        items: with_counts(&state, page.items).await?,
        next_cursor: page.next_cursor,
    }))
}

/// One project (Redis `project:{id}` first, then MongoDB).
#[utoipa::path(get, path = "/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"), MinVersion),
    responses(
        (status = 200, body = Project),
        (status = 404, description = "No such project, or not yours"),
    ))]
pub async fn by_id(
    State(state): State<AppState>,
    viewer: Viewer,
    PathId(id): PathId,
    AppQuery(params): AppQuery<MinVersion>,
) -> Result<Json<Project>, ApiError> {
    let id = id.to_string();
    let project = read_project(&state, &viewer, &id, params.min_version)
        .await?
        .ok_or_else(|| ApiError::not_found("project", &id))?;
    Ok(Json(with_counts(&state, vec![project]).await?.remove(0)))
}

/// One of my projects by name (case-insensitive; the oldest if several share it).
#[utoipa::path(get, path = "/projects/by-name/{name}", tag = "projects", security(("bearer" = [])),
    params(("name" = String, Path, description = "Project name, any case")),
    responses(
        (status = 200, body = Project),
        (status = 404, description = "No such project among yours"),
    ))]
pub async fn by_name(
    State(state): State<AppState>,
    viewer: Viewer,
    AppPath(name): AppPath<String>,
) -> Result<Json<Project>, ApiError> {
    let filter = doc! { "$and": [
        { "name_lower": name.trim().to_lowercase() },
        visible_projects_filter(&viewer),
    ] };
    let project: Option<ProjectView> = state
        .store
        .find_one(names::projects, filter, doc! { "created_at": 1, "_id": 1 })
        .await?;
    let project = project.ok_or_else(|| ApiError::not_found("project", &name))?;
    Ok(Json(with_counts(&state, vec![project]).await?.remove(0)))
}

/// The projects as the API shows them: with their task counts.
async fn with_counts(
    state: &AppState,
    projects: Vec<ProjectView>,
) -> Result<Vec<Project>, ApiError> {
    let ids: Vec<&str> = projects.iter().map(|p| p.id.as_str()).collect();
    let counters = state.store.project_counters(&ids).await?;
    Ok(projects
        .into_iter()
        .map(|project| counted(project, &counters))
        .collect())
}

/// The project as the API shows it, with its task counts from `counters` (the statistics
/// counters by project id, as [`crate::store::ReadStore::project_counters`] reads them).
pub(crate) fn counted(
    project: ProjectView,
    counters: &HashMap<String, HashMap<String, i64>>,
) -> Project {
    let task_counts = counters
        .get(&project.id)
        .map(stats::status_counts)
        .unwrap_or_default();
    Project::new(project, task_counts)
}

/// The project if `viewer` may see it, waiting for `min_version` if given.
///
/// # Errors
/// 409 `read_model_behind`, or MongoDB unreachable.
pub async fn read_project(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    min_version: Option<u64>,
) -> Result<Option<ProjectView>, ApiError> {
    state
        .consistency
        .read(
            id,
            min_version,
            |p: &ProjectView| p.version,
            || state.visible_project(viewer, id, min_version),
        )
        .await
}

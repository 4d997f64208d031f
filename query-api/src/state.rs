//! What every handler shares, and who may see what.
//!
//! A user sees the projects they own or belong to and those projects' tasks; an admin sees
//! everything. Anything else answers exactly like a resource that does not exist (404), so
//! existence does not leak. Users are visible to every authenticated caller.

use auth::Authenticator;
use axum::extract::FromRef;
use mongodb::bson::{Document, doc};
use read_model::documents::{ProjectView, TaskView};
use read_model::names;
use sqlx::PgPool;

use crate::consistency::Consistency;
use crate::extract::Viewer;
use crate::store::{ReadStore, StoreError};
use crate::stream::Feed;

/// The query API's state.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The read models.
    pub store: ReadStore,
    /// The event store, for task histories only.
    pub pool: PgPool,
    /// Signs attachment download URLs; `None` when no storage is configured (503).
    pub attachments: Option<attachment_store::AttachmentStore>,
    /// Verifies tokens and consults revocations.
    pub authenticator: Authenticator,
    /// Read-your-writes waits.
    pub consistency: Consistency,
    /// The change feed of `GET /stream`.
    pub feed: Feed,
    /// Between two heartbeats (and token checks) of a stream.
    pub heartbeat: std::time::Duration,
    /// Cancelled when the server stops: open streams end, so shutdown does not wait for them.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl FromRef<AppState> for Authenticator {
    fn from_ref(state: &AppState) -> Self {
        state.authenticator.clone()
    }
}

/// Whether `viewer` may see `project`.
pub fn can_see(viewer: &Viewer, project: &ProjectView) -> bool {
    let me = viewer.id();
    viewer.admin || project.owner_id == me || project.member_ids.contains(&me)
}

/// The MongoDB filter of the projects `viewer` may see (empty for admins).
pub fn visible_projects_filter(viewer: &Viewer) -> Document {
    if viewer.admin {
        Document::new()
    } else {
        let me = viewer.id();
        doc! { "$or": [ { "owner_id": &me }, { "member_ids": &me } ] }
    }
}

impl AppState {
    /// The project `id` if `viewer` may see it (Redis first, then MongoDB).
    ///
    /// # Errors
    /// MongoDB unreachable.
    pub async fn visible_project(
        &self,
        viewer: &Viewer,
        id: &str,
        min_version: Option<u64>,
    ) -> Result<Option<ProjectView>, StoreError> {
        let project = self.store.project(id, min_version).await?;
        Ok(project.filter(|p| can_see(viewer, p)))
    }

    /// The task `id` (deleted or not) if `viewer` may see its project.
    ///
    /// # Errors
    /// MongoDB unreachable.
    pub async fn visible_task(
        &self,
        viewer: &Viewer,
        id: &str,
    ) -> Result<Option<TaskView>, StoreError> {
        let task: Option<TaskView> = self
            .store
            .find_one(names::tasks, doc! { "_id": id }, Document::new())
            .await?;
        let Some(task) = task else { return Ok(None) };
        if viewer.admin {
            return Ok(Some(task));
        }
        let project = self.visible_project(viewer, &task.project_id, None).await?;
        Ok(project.map(|_| task))
    }

    /// The ids of the projects `viewer` may see; `None` for an admin (every project).
    ///
    /// # Errors
    /// MongoDB unreachable.
    pub async fn visible_project_ids(
        &self,
        viewer: &Viewer,
    ) -> Result<Option<Vec<String>>, StoreError> {
        if viewer.admin {
            return Ok(None);
        }
        let projects = self
            .store
            .find(
                names::projects,
                visible_projects_filter(viewer),
                doc! { "_id": 1 },
                0,
            )
            .await?;
        Ok(Some(
            projects
                .iter()
                .filter_map(|p| p.get_str("_id").ok().map(str::to_owned))
                .collect(),
        ))
    }
}

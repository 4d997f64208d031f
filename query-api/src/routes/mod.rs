//! Every route of the query API, one module per resource, merged in [`router`].

pub mod attachments;
pub mod notifications;
pub mod projects;
pub mod stats;
pub mod task_history;
pub mod tasks;
pub mod users;

use axum::Router;

use crate::state::AppState;

/// The query routes (health, metrics, docs and layers are added in `startup`).
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(users::router())
        .merge(projects::router())
        .merge(tasks::router())
        .merge(attachments::router())
        .merge(notifications::router())
        .merge(stats::router())
        .merge(crate::stream::router())
}

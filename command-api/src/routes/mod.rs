//! Every route of the command API, one module per resource, merged in [`router`].

pub mod attachments;
pub mod auth;
pub mod projects;
pub mod tasks;
pub mod users;

use axum::Router;

use crate::state::AppState;

/// The command routes (health, docs and layers are added in `startup`).
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(projects::router())
        .merge(tasks::router())
        .merge(attachments::router())
}

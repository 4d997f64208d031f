//! The OpenAPI document (`GET /openapi.json`) and Swagger UI (`/docs`, assets vendored in the
//! binary: it works offline).

use service_runtime::openapi::{BearerAuth, TruthfulErrors};
use utoipa::OpenApi;

use crate::routes::{attachments, auth, projects, tasks, users};

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "tasktrail command API",
        description = "Commands (POST/PUT/PATCH/DELETE) of tasktrail. Every accepted command answers \
            `{id, version}` and a `Location` on the query API; pass `version` as `min_version` to the \
            query API to read your own write. Errors are `{\"error\": {\"code\", \"message\", \"details\"}}`. \
            Optimistic concurrency: send `If-Match: \"<version>\"` (or `?expected_version=`); a stale one is 409."
    ),
    paths(
        auth::register, auth::token, auth::logout,
        users::create, users::change_profile, users::change_password, users::change_role, users::deactivate,
        users::mark_notifications_read,
        projects::create, projects::update, projects::add_member, projects::remove_member, projects::archive,
        tasks::create_in_project, tasks::create, tasks::edit, tasks::change_status, tasks::assign,
        tasks::set_due_date, tasks::set_priority, tasks::add_label, tasks::remove_label,
        tasks::delete_task,
        attachments::upload, attachments::start_upload, attachments::complete_upload, attachments::remove,
    ),
    modifiers(&BearerAuth, &ERRORS),
    tags(
        (name = "auth", description = "Register, get a token, log out (aliases: /register, /login, /token, /logout)"),
        (name = "users"), (name = "projects", description = "Projects, the seeds' goals (alias: /goals)"), (name = "tasks"),
        (name = "attachments", description = "Files attached to tasks, stored in S3-compatible storage"),
    )
)]
pub struct ApiDoc;

/// Every error status each operation can answer, with the error schema; enums; `If-Match`.
const ERRORS: TruthfulErrors = TruthfulErrors::COMMANDS;

/// `/docs` (Swagger UI) and `/openapi.json`.
pub fn router<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    service_runtime::openapi::docs_router(ApiDoc::openapi())
}

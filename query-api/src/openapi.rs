//! The OpenAPI document (`GET /openapi.json`) and Swagger UI (`/docs`, assets vendored in the
//! binary: it works offline).

use service_runtime::openapi::{BearerAuth, TruthfulErrors};
use utoipa::OpenApi;

use crate::pagination::Page;
use crate::routes::{attachments, notifications, projects, stats, task_history, tasks, users};
use crate::stream;
use crate::views::{Notification, Project, Task, User};

/// The query API's OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "tasktrail query API",
        description = "Reads (GET only) of tasktrail, served from the MongoDB and Redis read models \
            that the projector builds from the event store. Every route except `/healthz`, `/readyz`, \
            `/metrics`, `/openapi.json` and `/docs` needs `Authorization: Bearer <token>` (from the \
            command API's `POST /auth/token`). Errors are `{\"error\": {\"code\", \"message\", \"details\"}}`.\n\n\
            **Visibility**: you see the projects you own or belong to and their tasks; admins see \
            everything; anything else answers 404, exactly like a missing resource.\n\n\
            **Read-your-writes**: the read models are updated shortly after a command is accepted. \
            A command reply carries `{id, version}`: pass `?min_version=<version>` to \
            `GET /users/{id}`, `/projects/{id}` or `/tasks/{id}` (or \
            `?wait_for=<id>&min_version=<version>` to a list) and the query API waits, polling, \
            until the read model reached that version, at most `TASKTRAIL_READ__MIN_VERSION_TIMEOUT_MS` \
            (default 5000 ms). If it does not, the answer is 409 `read_model_behind` with \
            `Retry-After: 1` and details `{aggregate_id, wanted, current}`. \
            `GET /tasks/{id}/history` reads the event store and is always current.\n\n\
            **Pagination**: lists answer `{items, next_cursor}`; pass `next_cursor` back as `cursor` \
            (with the same filters, sort and order) for the next page; `limit` is 1..=100 (default 20).\n\n\
            **Live updates**: `GET /stream` pushes the changes you may see as server-sent events (`curl -N`); reconnect with `Last-Event-ID` to get what you missed.\n\n\
            **Availability**: Redis down → reads are served from MongoDB; MongoDB down → 503 naming mongodb."
    ),
    paths(
        users::list, users::search, users::by_id, users::by_username, users::me,
        projects::list, projects::by_id, projects::by_name, stats::project_stats,
        tasks::list, tasks::list_in_project, tasks::by_id, task_history::history, attachments::download,
        notifications::list, stats::my_stats, stream::stream,
    ),
    components(schemas(Page<User>, Page<Project>, Page<Task>, Page<Notification>)),
    modifiers(&BearerAuth, &ERRORS),
    tags(
        (name = "users"),
        (name = "projects", description = "Projects, the seeds' goals (aliases: /goals, /goals/{id}, /goals/{id}/tasks, /goals/{id}/stats)"),
        (name = "tasks"), (name = "notifications"), (name = "stats"),
        (name = "stream", description = "Live changes as server-sent events"),
    )
)]
pub struct ApiDoc;

/// Every error status each operation can answer, with the error schema; enums; `If-Match`.
const ERRORS: TruthfulErrors = TruthfulErrors::QUERIES;

/// `/docs` (Swagger UI) and `/openapi.json`.
pub fn router<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    service_runtime::openapi::docs_router(ApiDoc::openapi())
}

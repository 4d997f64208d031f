//! `GET /tasks/{id}/attachments/{attachment_id}`: downloads an attachment. Who may see the
//! task may download its files; the answer is a redirect to a storage URL valid for
//! `TASKTRAIL_STORAGE__DOWNLOAD_URL_SECS` (60 s), which serves the bytes with the media type
//! found at upload and `Content-Disposition: attachment`, so a browser saves the file and never
//! renders it.

use attachment_store::AttachmentStore;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use uuid::Uuid;

use crate::consistency::MinVersion;
use crate::error::ApiError;
use crate::extract::{AppPath, AppQuery, Viewer};
use crate::routes::tasks::read_task;
use crate::state::AppState;

/// The attachment routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/tasks/{id}/attachments/{attachment_id}", get(download))
}

/// Download an attachment.
#[utoipa::path(get, path = "/tasks/{id}/attachments/{attachment_id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Task id"), ("attachment_id" = Uuid, Path), MinVersion),
    responses(
        (status = 307, description = "Redirect (`Location`) to a short-lived storage URL that serves the file as a download"),
        (status = 404, description = "No such task or attachment (or its file is already deleted), or not in a project of yours"),
        (status = 503, description = "Attachment storage is unavailable"),
    ))]
pub async fn download(
    State(state): State<AppState>,
    viewer: Viewer,
    AppPath((task_id, attachment_id)): AppPath<(Uuid, Uuid)>,
    AppQuery(params): AppQuery<MinVersion>,
) -> Result<Response, ApiError> {
    let task_id = task_id.to_string();
    let attachment_id = attachment_id.to_string();
    let task = read_task(&state, &viewer, &task_id, params.min_version)
        .await?
        .filter(|task| !task.deleted)
        .ok_or_else(|| ApiError::not_found("task", &task_id))?;
    let attachment = task
        .attachments
        .iter()
        .find(|attachment| attachment.id == attachment_id)
        .ok_or_else(|| ApiError::not_found("attachment", &attachment_id))?;
    let store = state
        .attachments
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("object storage", &AttachmentStore::NOT_CONFIGURED))?;
    // The storage answers before a client is sent to it: down is 503 here, not a broken link.
    let stored = store
        .exists(&attachment.storage_key)
        .await
        .map_err(|error| ApiError::unavailable("object storage", &error))?;
    if !stored {
        return Err(ApiError::not_found("attachment", &attachment_id));
    }
    let url = store
        .download_url(
            &attachment.storage_key,
            &attachment.file_name,
            &attachment.content_type,
        )
        .await
        .map_err(|error| ApiError::unavailable("object storage", &error))?;
    let location = HeaderValue::from_str(&url).map_err(|error| ApiError::internal(&error))?;
    Ok((
        StatusCode::TEMPORARY_REDIRECT,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
    )
        .into_response())
}

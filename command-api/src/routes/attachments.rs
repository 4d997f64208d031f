//! Attachment commands: `POST /tasks/{id}/attachments` (the file in the body, streamed to
//! storage), `POST /tasks/{id}/attachments/uploads` and
//! `POST /tasks/{id}/attachments/{attachment_id}/complete` (a presigned upload straight to
//! storage, then checked), and `DELETE /tasks/{id}/attachments/{attachment_id}`.
//!
//! The bytes are stored before the `AttachmentAdded` event; a command refused after that
//! deletes them again, and the orphan sweep removes what a crash left (see
//! [`crate::attachments`]). Who may attach is checked before a byte is stored.

#![expect(
    unused_qualifications,
    reason = "utoipa's `params(..)` expansion qualifies the IntoParams types"
)]

use attachment_store::{AttachmentStore, StoreError, Stored};
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use domain::{Attachment, FileName, Task, TaskCommand};
use futures::TryStreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use service_runtime::error::HttpError;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiError, domain_error};
use crate::extract::{AppJson, AppPath, AppQuery};
use crate::state::{AppState, Caller};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/tasks/{id}/attachments",
            // The body is counted against TASKTRAIL_STORAGE__MAX_BYTES while it streams.
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/tasks/{id}/attachments/uploads", post(start_upload))
        .route(
            "/tasks/{id}/attachments/{attachment_id}/complete",
            post(complete_upload),
        )
        .route("/tasks/{id}/attachments/{attachment_id}", delete(remove))
}

/// The reply to an attachment that was added: the task's id and version (for
/// `min_version`), and the new attachment's id.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentReply {
    pub id: Uuid,
    pub version: u64,
    pub attachment_id: Uuid,
}

/// `?file_name=` of a raw upload.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RawUpload {
    /// The file's name (cleaned: no path, no control characters, at most 255 characters).
    /// Required with a raw body; a multipart body names the file in its `file` part.
    pub file_name: Option<String>,
}

#[utoipa::path(post, path = "/tasks/{id}/attachments", tag = "attachments", security(("bearer" = [])),
    params(("id" = Uuid, Path), RawUpload),
    request_body(description = "The file: either the raw bytes (any Content-Type; name it with `?file_name=`), \
        or `multipart/form-data` with one part named `file`. Its type is found in the bytes and must be allowed \
        (TASKTRAIL_STORAGE__ALLOWED_TYPES); at most TASKTRAIL_STORAGE__MAX_BYTES (25 MiB).", content = Vec<u8>,
        content_type = "application/octet-stream"),
    responses(
        (status = 201, body = AttachmentReply),
        (status = 400, description = "The upload broke off"),
        (status = 403), (status = 404),
        (status = 409, description = "The task is deleted, its project archived, or it has 100 attachments"),
        (status = 413, description = "Larger than the limit"),
        (status = 415, description = "Not an accepted type of file"),
        (status = 422, description = "No file name, or an empty file"),
        (status = 503, description = "Attachment storage is unavailable"),
    ))]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(task_id): AppPath<Uuid>,
    AppQuery(query): AppQuery<RawUpload>,
    request: Request,
) -> Result<Response, ApiError> {
    let store = storage(&state)?;
    refuse_declared_oversize(&request, store)?;
    check_may_attach(&state, &caller, task_id).await?;
    let attachment_id = Uuid::now_v7();
    let key = store.key(task_id, attachment_id);
    let (file_name, stored) = if is_multipart(&request) {
        let mut multipart = Multipart::from_request(request, &())
            .await
            .map_err(|rejection| HttpError::invalid(rejection.body_text()))?;
        let field = loop {
            let field = multipart
                .next_field()
                .await
                .map_err(|error| HttpError::invalid(error.body_text()))?
                .ok_or_else(|| {
                    HttpError::invalid("the multipart body has no part named \"file\"")
                })?;
            if field.name() == Some("file") {
                break field;
            }
        };
        let raw_name = query
            .file_name
            .clone()
            .or_else(|| field.file_name().map(str::to_owned))
            .unwrap_or_default();
        let file_name = FileName::clean(&raw_name)?;
        let stored = store
            .put(&key, &file_name, Box::pin(field.map_err(|e| e.body_text())))
            .await;
        (file_name, stored)
    } else {
        let file_name = FileName::clean(query.file_name.as_deref().unwrap_or_default())?;
        let body = request.into_body().into_data_stream();
        let stored = store.put(&key, &file_name, Box::pin(body)).await;
        (file_name, stored)
    };
    let stored = stored.map_err(storage_error)?;
    attach(
        &state,
        caller,
        task_id,
        attachment_id,
        file_name,
        key,
        stored,
    )
    .await
}

/// A presigned upload: where to PUT the file, and what to send to `complete` afterwards.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadTicket {
    /// The attachment's id: complete it at `POST /tasks/{id}/attachments/{attachment_id}/complete`.
    pub attachment_id: Uuid,
    /// PUT the file's bytes here (no authorization header: the URL is signed).
    pub upload_url: String,
    /// Always `PUT`.
    pub method: &'static str,
    /// How long the URL is valid, in seconds. Complete within this time after uploading.
    pub expires_in_secs: u64,
    /// The largest file accepted, in bytes.
    pub max_bytes: u64,
}

#[utoipa::path(post, path = "/tasks/{id}/attachments/uploads", tag = "attachments", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 201, description = "PUT the file to `upload_url`, then complete it", body = UploadTicket),
        (status = 403), (status = 404), (status = 409), (status = 503),
    ))]
pub async fn start_upload(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(task_id): AppPath<Uuid>,
) -> Result<Response, ApiError> {
    let store = storage(&state)?;
    check_may_attach(&state, &caller, task_id).await?;
    let attachment_id = Uuid::now_v7();
    let key = store.key(task_id, attachment_id);
    // A URL to a storage that is down would only fail later, at the client: 503 now.
    store.exists(&key).await.map_err(storage_error)?;
    let upload_url = store.upload_url(&key).await.map_err(storage_error)?;
    let ticket = UploadTicket {
        attachment_id,
        upload_url,
        method: "PUT",
        expires_in_secs: store.upload_url_ttl().as_secs(),
        max_bytes: store.max_bytes(),
    };
    let mut response = (StatusCode::CREATED, axum::Json(ticket)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// What the client says it uploaded: the server checks it against the stored bytes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteUpload {
    /// The file's name (cleaned as for a direct upload).
    pub file_name: String,
    /// SHA-256 of the file, hex: the stored bytes must have it.
    #[schema(example = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")]
    pub sha256: String,
}

#[utoipa::path(post, path = "/tasks/{id}/attachments/{attachment_id}/complete", tag = "attachments", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("attachment_id" = Uuid, Path)), request_body = CompleteUpload,
    responses(
        (status = 201, body = AttachmentReply),
        (status = 403), (status = 404, description = "Nothing was uploaded (or the upload expired)"),
        (status = 409, description = "Already completed, or the task cannot take it"),
        (status = 413), (status = 415),
        (status = 422, description = "The SHA-256 differs, or the file is empty"),
        (status = 503),
    ))]
pub async fn complete_upload(
    State(state): State<AppState>,
    caller: Caller,
    AppPath((task_id, attachment_id)): AppPath<(Uuid, Uuid)>,
    AppJson(dto): AppJson<CompleteUpload>,
) -> Result<Response, ApiError> {
    let store = storage(&state)?;
    let file_name = FileName::clean(&dto.file_name)?;
    let claimed = dto.sha256.to_ascii_lowercase();
    if claimed.len() != 64 || !claimed.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(
            HttpError::invalid("sha256 must be 64 hexadecimal characters")
                .with_details(json!({ "field": "sha256" }))
                .into(),
        );
    }
    let (task, _) = state.tasks.load(task_id).await?;
    if task
        .state()
        .is_some_and(|state| state.attachments.contains_key(&attachment_id))
    {
        return Err(domain_error(&domain::TaskError::AttachmentExists));
    }
    may_attach(&state, &caller, &task).await?;
    let key = store.key(task_id, attachment_id);
    let stored = store.check_uploaded(&key).await.map_err(storage_error)?;
    if stored.sha256 != claimed {
        store.delete(&key).await.map_err(storage_error)?;
        return Err(HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "checksum_mismatch",
            "the uploaded file's SHA-256 differs from the one given; upload it again",
        )
        .into());
    }
    attach(
        &state,
        caller,
        task_id,
        attachment_id,
        file_name,
        key,
        stored,
    )
    .await
}

#[utoipa::path(delete, path = "/tasks/{id}/attachments/{attachment_id}", tag = "attachments", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("attachment_id" = Uuid, Path)),
    responses(
        (status = 200, description = "Removed (its file is deleted from storage shortly after)", body = crate::state::CommandReply),
        (status = 403), (status = 404),
    ))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    AppPath((task_id, attachment_id)): AppPath<(Uuid, Uuid)>,
) -> Result<Response, ApiError> {
    let command = TaskCommand::RemoveAttachment {
        actor: caller.actor(),
        attachment_id,
    };
    state.tasks.execute(task_id, command, caller).await
}

/// The attachment store, or 503 when none is configured.
fn storage(state: &AppState) -> Result<&AttachmentStore, ApiError> {
    state.attachments.as_ref().ok_or_else(|| {
        ApiError(HttpError::unavailable(
            "object storage",
            &AttachmentStore::NOT_CONFIGURED,
        ))
    })
}

/// 413 at once for a body that says it is too large.
fn refuse_declared_oversize(request: &Request, store: &AttachmentStore) -> Result<(), ApiError> {
    // A multipart body carries some bytes of framing around the file.
    const FRAMING: u64 = 64 * 1024;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    match declared {
        Some(length) if length > store.max_bytes().saturating_add(FRAMING) => {
            Err(storage_error(StoreError::TooLarge {
                max: store.max_bytes(),
            }))
        }
        _ => Ok(()),
    }
}

fn is_multipart(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("multipart/form-data"))
}

/// What `AddAttachment` will check, before any byte is stored.
async fn check_may_attach(
    state: &AppState,
    caller: &Caller,
    task_id: Uuid,
) -> Result<(), ApiError> {
    let (task, _) = state.tasks.load(task_id).await?;
    may_attach(state, caller, &task).await
}

/// [`check_may_attach`] on a task already loaded.
async fn may_attach(state: &AppState, caller: &Caller, task: &Task) -> Result<(), ApiError> {
    let services = state.registry.task_services();
    task.check_attach(caller.actor(), services.as_ref())
        .await
        .map_err(|error| domain_error(&error))
}

/// Records the stored file as an attachment; a refused command deletes the bytes again.
async fn attach(
    state: &AppState,
    caller: Caller,
    task_id: Uuid,
    attachment_id: Uuid,
    file_name: FileName,
    storage_key: String,
    stored: Stored,
) -> Result<Response, ApiError> {
    let command = TaskCommand::AddAttachment {
        actor: caller.actor(),
        attachment: Attachment {
            attachment_id,
            file_name,
            content_type: stored.content_type.to_owned(),
            size: stored.size,
            sha256: stored.sha256,
            storage_key: storage_key.clone(),
        },
    };
    let committed = match state.tasks.commit(task_id, command, caller).await {
        Ok(committed) => committed,
        Err(error) => {
            if let Some(store) = &state.attachments
                && let Err(cleanup) = store.delete(&storage_key).await
            {
                // The orphan sweep deletes it later.
                tracing::warn!(error = %cleanup, "the file of a refused attachment was not deleted");
            }
            return Err(error);
        }
    };
    let reply = AttachmentReply {
        id: task_id,
        version: committed.version,
        attachment_id,
    };
    let mut response = (StatusCode::CREATED, axum::Json(reply)).into_response();
    let location = format!(
        "{}/tasks/{task_id}/attachments/{attachment_id}",
        state.tasks.query_api_url()
    );
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", committed.version)) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

/// The HTTP answer to a storage refusal or failure.
pub fn storage_error(error: StoreError) -> ApiError {
    let message = error.to_string();
    let http = match error {
        StoreError::TooLarge { max } => {
            HttpError::new(StatusCode::PAYLOAD_TOO_LARGE, "file_too_large", message)
                .with_details(json!({ "max_bytes": max }))
        }
        StoreError::Empty => {
            HttpError::new(StatusCode::UNPROCESSABLE_ENTITY, "empty_file", message)
        }
        StoreError::Unsupported { found } => HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_file_type",
            message,
        )
        .with_details(json!({ "found": found })),
        StoreError::Body(_) => {
            HttpError::new(StatusCode::BAD_REQUEST, "upload_interrupted", message)
        }
        StoreError::Missing => HttpError::new(
            StatusCode::NOT_FOUND,
            "upload_not_found",
            "nothing was uploaded for this attachment (or the upload expired)",
        ),
        StoreError::Unavailable(cause) => HttpError::unavailable("object storage", &cause),
    };
    ApiError(http)
}

//! User commands: `POST /users` (admins create users), `PATCH /users/{id}` (profile),
//! `PUT /users/{id}/password`, `PUT /users/{id}/role` (admins), `DELETE /users/{id}` (deactivate),
//! `POST /notifications/read` (my read watermark).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post, put};
use chrono::{DateTime, Utc};
use domain::{Age, Email, Password, PersonName, Role, UserCommand, ValidationError};
use event_store::Metadata;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, HttpError};
use crate::extract::{AppJson, AppPath, ClientAddress};
use crate::routes::auth::{NewUser, RegisterRequest, register_user};
use crate::state::{AppState, Caller};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", post(create))
        .route("/users/{id}", patch(change_profile).delete(deactivate))
        .route("/users/{id}/password", put(change_password))
        .route("/users/{id}/role", put(change_role))
        .route("/notifications/read", post(mark_notifications_read))
}

/// A user created by an admin, with any role: the fields of `POST /auth/register` plus `role`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub username: String,
    pub email: String,
    pub password: String,
    pub first_name: String,
    pub last_name: String,
    pub age: Option<i64>,
    /// `user` (default) or `admin`.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "user")]
    pub role: Option<Role>,
}

#[utoipa::path(post, path = "/users", tag = "users", security(("bearer" = [])),
    request_body = CreateUserRequest,
    responses(
        (status = 201, body = crate::state::CommandReply),
        (status = 403, description = "Only admins create users"),
        (status = 409, description = "Username or email taken"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(dto): AppJson<CreateUserRequest>,
) -> Result<Response, ApiError> {
    let new_user = NewUser::try_from(RegisterRequest {
        username: dto.username,
        email: dto.email,
        password: dto.password,
        first_name: dto.first_name,
        last_name: dto.last_name,
        age: dto.age,
    })?;
    register_user(
        &state,
        new_user,
        dto.role.unwrap_or_default(),
        Some(caller.actor()),
        caller.ids,
    )
    .await
}

/// Only the fields present change; `"age": null` clears the age.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeProfileRequest {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    #[serde(default, with = "domain::serde_helpers::double_option")]
    #[schema(value_type = Option<i64>)]
    pub age: Option<Option<i64>>,
}

#[utoipa::path(patch, path = "/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "expected version")),
    request_body = ChangeProfileRequest,
    responses((status = 200, body = crate::state::CommandReply), (status = 403), (status = 404), (status = 409)))]
pub async fn change_profile(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<Uuid>,
    AppJson(dto): AppJson<ChangeProfileRequest>,
) -> Result<Response, ApiError> {
    let command = UserCommand::ChangeProfile {
        actor: caller.actor(),
        email: dto.email.as_deref().map(Email::parse).transpose()?,
        first_name: dto
            .first_name
            .as_deref()
            .map(|v| PersonName::parse(v).map_err(|e| e.with_field("first_name")))
            .transpose()?,
        last_name: dto
            .last_name
            .as_deref()
            .map(|v| PersonName::parse(v).map_err(|e| e.with_field("last_name")))
            .transpose()?,
        age: dto
            .age
            .map(|age| age.map(Age::parse).transpose())
            .transpose()?,
    };
    state.users.execute(id, command, caller).await
}

/// A new password. Changing your own needs your current one; an admin resetting another user's
/// password does not give it (the events' metadata records `action: admin_password_reset`).
/// Either way every earlier token of the user stops working.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// At least 8 characters.
    pub password: String,
    /// Your current password: required to change your own.
    #[serde(default)]
    pub current_password: Option<String>,
}

#[utoipa::path(put, path = "/users/{id}/password", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "expected version")),
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed; every earlier token of the user no longer works", body = crate::state::CommandReply),
        (status = 400, description = "Malformed JSON or id"),
        (status = 403, description = "Not yours and not an admin, or the current password is wrong"),
        (status = 404, description = "No such user"),
        (status = 409, description = "Version conflict, or the user is deactivated"),
        (status = 413),
        (status = 415),
        (status = 422, description = "Invalid password, or your current password is missing"),
        (status = 429, description = "Too many requests or failed password checks"),
        (status = 503),
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    caller: Caller,
    AppPath(id): AppPath<Uuid>,
    AppJson(dto): AppJson<ChangePasswordRequest>,
) -> Result<Response, ApiError> {
    let password = Password::parse(&dto.password)?;
    let actor = caller.actor();
    let action = if actor.user_id == id {
        let current = dto.current_password.as_deref().ok_or_else(|| {
            ValidationError::new(
                "current_password",
                "is required to change your own password",
            )
        })?;
        if let Some(refused) = check_current_password(&state, id, current, &client).await? {
            return Ok(refused);
        }
        None
    } else {
        actor.is_admin().then_some(Metadata::ADMIN_PASSWORD_RESET)
    };
    let password_hash = auth::hash_password(&password)
        .await
        .map_err(|e| HttpError::internal(&e))?;
    let command = UserCommand::ChangePassword {
        actor,
        password_hash,
    };
    let response = state.users.execute_as(id, command, caller, action).await?;
    state.refresh_standing(id).await;
    Ok(response)
}

/// Checks the caller's current password, counted by the login throttle like a login: `Some`
/// refusal (429 throttled) or an error (403 wrong password), `None` when it is right.
async fn check_current_password(
    state: &AppState,
    user_id: Uuid,
    current: &str,
    client: &str,
) -> Result<Option<Response>, ApiError> {
    let credentials = state
        .registry
        .credentials_by_id(user_id)
        .await
        .map_err(|e| HttpError::unavailable("postgres", &e))?
        .ok_or_else(|| HttpError::new(StatusCode::NOT_FOUND, "not_found", "no such user"))?;
    let throttle = &state.login_throttle;
    if let Err(throttled) = throttle.check(&credentials.username, client).await {
        return Ok(Some(throttled.into_response()));
    }
    let right = match Password::parse(current) {
        Ok(current) => auth::verify_password(&current, &credentials.password_hash).await,
        Err(_) => {
            auth::dummy_verify().await;
            false
        }
    };
    if !right {
        throttle.failed(&credentials.username, client).await;
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "wrong_password",
            "the current password is wrong",
        )
        .into());
    }
    Ok(None)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRoleRequest {
    /// `user` or `admin`.
    #[schema(value_type = String, example = "admin")]
    pub role: Role,
}

#[utoipa::path(put, path = "/users/{id}/role", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ChangeRoleRequest,
    responses((status = 200, body = crate::state::CommandReply), (status = 403, description = "Admins only"), (status = 404)))]
pub async fn change_role(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<Uuid>,
    AppJson(dto): AppJson<ChangeRoleRequest>,
) -> Result<Response, ApiError> {
    let command = UserCommand::ChangeRole {
        actor: caller.actor(),
        role: dto.role,
    };
    let response = state.users.execute(id, command, caller).await?;
    state.refresh_standing(id).await;
    Ok(response)
}

#[utoipa::path(delete, path = "/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "Deactivated", body = crate::state::CommandReply), (status = 403), (status = 404), (status = 409)))]
pub async fn deactivate(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<Uuid>,
) -> Result<Response, ApiError> {
    let command = UserCommand::Deactivate {
        actor: caller.actor(),
    };
    let response = state.users.execute(id, command, caller).await?;
    state.refresh_standing(id).await;
    Ok(response)
}

/// `POST /notifications/read`: `{}` marks everything read up to now.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkNotificationsReadRequest {
    /// Mark the notifications created at or before this time (RFC 3339) as read; default and
    /// upper bound: now (a time in the future counts as now).
    pub up_to: Option<DateTime<Utc>>,
}

#[utoipa::path(post, path = "/notifications/read", tag = "users", security(("bearer" = [])),
    request_body = MarkNotificationsReadRequest,
    responses(
        (status = 200, description = "Marked. The reply's `id` is yours: read your write with \
            `GET /notifications?wait_for=<id>&min_version=<version>` on the query API. An \
            `up_to` at or before the current watermark changes nothing and answers the current version.",
            body = crate::state::CommandReply),
        (status = 409, description = "Your account is deactivated"),
        (status = 422, description = "`up_to` is not an RFC 3339 time"),
    ))]
pub async fn mark_notifications_read(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(dto): AppJson<MarkNotificationsReadRequest>,
) -> Result<Response, ApiError> {
    let now = Utc::now();
    let up_to = dto.up_to.map_or(now, |up_to| up_to.min(now));
    let actor = caller.actor();
    let command = UserCommand::MarkNotificationsRead { actor, up_to };
    state.users.execute(actor.user_id, command, caller).await
}

//! User commands: `POST /users` (admins create users), `PATCH /users/{id}` (profile),
//! `PUT /users/{id}/password`, `PUT /users/{id}/role` (admins), `DELETE /users/{id}` (deactivate),
//! `POST /notifications/read` (my read watermark).

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{patch, post, put};
use chrono::{DateTime, Utc};
use domain::{Age, Email, Password, PersonName, Role, UserCommand};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{AppJson, AppPath};
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
    state
        .execute(&state.users, id, command, caller, "users")
        .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// At least 8 characters.
    pub password: String,
}

#[utoipa::path(put, path = "/users/{id}/password", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ChangePasswordRequest,
    responses((status = 200, body = crate::state::CommandReply), (status = 403), (status = 404)))]
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<Uuid>,
    AppJson(dto): AppJson<ChangePasswordRequest>,
) -> Result<Response, ApiError> {
    let password = Password::parse(&dto.password)?;
    let password_hash = auth::hash_password(&password)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let command = UserCommand::ChangePassword {
        actor: caller.actor(),
        password_hash,
    };
    state
        .execute(&state.users, id, command, caller, "users")
        .await
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
    state
        .execute(&state.users, id, command, caller, "users")
        .await
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
    state
        .execute(&state.users, id, command, caller, "users")
        .await
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
    state
        .execute(&state.users, actor.user_id, command, caller, "users")
        .await
}

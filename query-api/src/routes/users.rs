//! `GET /users`, `/users/{id}`, `/users/by-username/{username}`, `/users/search`, `/me`.
//! Every authenticated caller may read users (they carry no secrets; e-mail addresses are shown
//! only to their owner and to admins).

#![expect(
    unused_qualifications,
    reason = "utoipa's `params(..)` expansion qualifies the IntoParams types"
)]

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use mongodb::bson::{Document, doc};
use read_model::documents::UserView;
use read_model::names;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::consistency::{MinVersion, wait_pair};
use crate::error::ApiError;
use crate::extract::{AppPath, AppQuery, PathId, Viewer};
use crate::pagination::{self, Order, Page, Sorting};
use crate::state::AppState;
use crate::views::User;

/// The user routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list))
        .route("/users/search", get(search))
        .route("/users/by-username/{username}", get(by_username))
        .route("/users/{id}", get(by_id))
        .route("/me", get(me))
}

const BY_USERNAME: Sorting = Sorting {
    field: "username",
    order: Order::Asc,
};

/// The longest search text.
const MAX_QUERY_CHARS: usize = 100;

/// `GET /users` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListUsers {
    /// Items per page (1..=100, default 20).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// With `min_version`: first wait until this user's read model reached that version.
    pub wait_for: Option<Uuid>,
    /// See `wait_for`.
    pub min_version: Option<u64>,
}

/// `GET /users/search` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchUsers {
    /// Case-insensitive prefix of the first name, last name or username (1..=100 characters).
    pub query: String,
    /// Items per page (1..=100, default 20).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Users by username, a page at a time.
#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])),
    params(ListUsers),
    responses(
        (status = 200, body = Page<User>),
        (status = 422, description = "Invalid parameter"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    AppQuery(params): AppQuery<ListUsers>,
) -> Result<Json<Page<User>>, ApiError> {
    let limit = pagination::limit(params.limit)?;
    if let Some((id, version)) = wait_pair(params.wait_for, params.min_version)? {
        read_user(&state, &id, Some(version)).await?;
    }
    let page: Page<UserView> = pagination::page(
        &state.store,
        names::users,
        Document::new(),
        BY_USERNAME,
        limit,
        params.cursor.as_deref(),
    )
    .await?;
    Ok(Json(users_for(page, &viewer)))
}

/// Users whose first name, last name or username starts with `query` (case-insensitive).
#[utoipa::path(get, path = "/users/search", tag = "users", security(("bearer" = [])),
    params(SearchUsers),
    responses(
        (status = 200, body = Page<User>),
        (status = 422, description = "Missing or invalid `query`"),
    ))]
pub async fn search(
    State(state): State<AppState>,
    viewer: Viewer,
    AppQuery(params): AppQuery<SearchUsers>,
) -> Result<Json<Page<User>>, ApiError> {
    let limit = pagination::limit(params.limit)?;
    let query = params.query.trim().to_lowercase();
    if query.is_empty() || query.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::invalid(format!(
            "query must be 1 to {MAX_QUERY_CHARS} characters"
        )));
    }
    let filter = doc! { "$or": [
        prefix("username_lower", &query),
        prefix("first_name_lower", &query),
        prefix("last_name_lower", &query),
    ] };
    let page: Page<UserView> = pagination::page(
        &state.store,
        names::users,
        filter,
        BY_USERNAME,
        limit,
        params.cursor.as_deref(),
    )
    .await?;
    Ok(Json(users_for(page, &viewer)))
}

/// A case-sensitive prefix match on an (already lowercase) field as a range, which an index
/// serves and which needs no regular-expression escaping.
pub fn prefix(field: &str, prefix: &str) -> Document {
    let upper = format!("{prefix}{}", char::MAX);
    doc! { field: { "$gte": prefix, "$lt": upper } }
}

/// One user (Redis first, then MongoDB).
#[utoipa::path(get, path = "/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id"), MinVersion),
    responses(
        (status = 200, body = User),
        (status = 404, description = "No such user"),
    ))]
pub async fn by_id(
    State(state): State<AppState>,
    viewer: Viewer,
    PathId(id): PathId,
    AppQuery(params): AppQuery<MinVersion>,
) -> Result<Json<User>, ApiError> {
    let id = id.to_string();
    let user = read_user(&state, &id, params.min_version)
        .await?
        .ok_or_else(|| ApiError::not_found("user", &id))?;
    Ok(Json(User::for_viewer(user, &viewer)))
}

/// The caller's own profile.
#[utoipa::path(get, path = "/me", tag = "users", security(("bearer" = [])),
    params(MinVersion),
    responses(
        (status = 200, body = User),
        (status = 404, description = "Not in the read model (yet)"),
    ))]
pub async fn me(
    State(state): State<AppState>,
    viewer: Viewer,
    AppQuery(params): AppQuery<MinVersion>,
) -> Result<Json<User>, ApiError> {
    let id = viewer.id();
    let user = read_user(&state, &id, params.min_version)
        .await?
        .ok_or_else(|| ApiError::not_found("user", &id))?;
    Ok(Json(User::for_viewer(user, &viewer)))
}

/// One user by username (case-insensitive).
#[utoipa::path(get, path = "/users/by-username/{username}", tag = "users", security(("bearer" = [])),
    params(("username" = String, Path, description = "Username, any case")),
    responses(
        (status = 200, body = User),
        (status = 404, description = "No such user"),
    ))]
pub async fn by_username(
    State(state): State<AppState>,
    viewer: Viewer,
    AppPath(username): AppPath<String>,
) -> Result<Json<User>, ApiError> {
    let lower = username.trim().to_lowercase();
    let user: Option<UserView> = state
        .store
        .find_one(
            names::users,
            doc! { "username_lower": &lower },
            Document::new(),
        )
        .await?;
    let user = user.ok_or_else(|| ApiError::not_found("user", &username))?;
    Ok(Json(User::for_viewer(user, &viewer)))
}

pub(crate) async fn read_user(
    state: &AppState,
    id: &str,
    min_version: Option<u64>,
) -> Result<Option<UserView>, ApiError> {
    state
        .consistency
        .read(
            id,
            min_version,
            |u: &UserView| u.version,
            || state.store.user(id, min_version),
        )
        .await
}

fn users_for(page: Page<UserView>, viewer: &Viewer) -> Page<User> {
    Page {
        items: page
            .items
            .into_iter()
            .map(|u| User::for_viewer(u, viewer))
            .collect(),
        next_cursor: page.next_cursor,
    }
}

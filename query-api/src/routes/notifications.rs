//! `GET /notifications`: mine, newest first.

#![expect(
    unused_qualifications,
    reason = "utoipa's `params(..)` expansion qualifies the IntoParams types"
)]

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use mongodb::bson::doc;
use read_model::documents::NotificationView;
use read_model::names;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::extract::{AppQuery, Viewer};
use crate::pagination::{self, Order, Page, Sorting};
use crate::state::AppState;
use crate::views::Notification;

/// The notification routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/notifications", get(list))
}

const NEWEST_FIRST: Sorting = Sorting {
    field: "created_at",
    order: Order::Desc,
};

/// `GET /notifications` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListNotifications {
    /// Only unread (`true`) or only read (`false`) notifications; both when absent.
    pub unread: Option<bool>,
    /// Items per page (1..=100, default 20).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// My notifications (task assigned to me, status of a task I created changed, my task is
/// overdue), newest first.
#[utoipa::path(get, path = "/notifications", tag = "notifications", security(("bearer" = [])),
    params(ListNotifications),
    responses(
        (status = 200, body = Page<Notification>),
        (status = 401, description = "Missing, invalid, expired or revoked token"),
        (status = 422, description = "Invalid parameter"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    AppQuery(params): AppQuery<ListNotifications>,
) -> Result<Json<Page<Notification>>, ApiError> {
    let limit = pagination::limit(params.limit)?;
    let mut filter = doc! { "user_id": viewer.id() };
    if let Some(unread) = params.unread {
        filter.insert("read", !unread);
    }
    let page: Page<NotificationView> = pagination::page(
        &state.store,
        names::notifications,
        filter,
        NEWEST_FIRST,
        limit,
        params.cursor.as_deref(),
    )
    .await?;
    Ok(Json(Page {
        items: page.items.into_iter().map(Notification::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

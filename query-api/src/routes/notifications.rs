//! `GET /notifications`: mine, newest first. Read or unread comes from my read watermark
//! (`POST /notifications/read` on the command API): a notification is read when it was created
//! at or before it.

#![expect(
    unused_qualifications,
    reason = "utoipa's `params(..)` expansion qualifies the IntoParams types"
)]

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use mongodb::bson::{self, doc};
use read_model::documents::NotificationView;
use read_model::names;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::consistency::wait_pair;
use crate::error::ApiError;
use crate::extract::{AppQuery, Viewer};
use crate::pagination::{self, Order, Page, Sorting};
use crate::routes::tasks::read_task;
use crate::routes::users::read_user;
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
    /// With `min_version`: first wait until this aggregate reached that version: a task (after
    /// a change that notifies someone) or your own user (after `POST /notifications/read`).
    pub wait_for: Option<Uuid>,
    /// See `wait_for`.
    pub min_version: Option<u64>,
}

/// My notifications (task assigned to me, status of a task I created changed, my task is
/// overdue), newest first.
#[utoipa::path(get, path = "/notifications", tag = "notifications", security(("bearer" = [])),
    params(ListNotifications),
    responses(
        (status = 200, body = Page<Notification>),
        (status = 422, description = "Invalid parameter"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    AppQuery(params): AppQuery<ListNotifications>,
) -> Result<Json<Page<Notification>>, ApiError> {
    let limit = pagination::limit(params.limit)?;
    let me = viewer.id();
    let mut my_version = None;
    match wait_pair(params.wait_for, params.min_version)? {
        Some((id, version)) if id == me => my_version = Some(version),
        Some((id, version)) => {
            read_task(&state, &viewer, &id, Some(version)).await?;
        }
        None => {}
    }
    let read_up_to = read_user(&state, &me, my_version)
        .await?
        .and_then(|user| user.notifications_read_up_to);
    let mut filter = doc! { "user_id": &me };
    match (params.unread, read_up_to) {
        (Some(unread), Some(up_to)) => {
            let up_to = bson::DateTime::from_millis(up_to.timestamp_millis());
            let operator = if unread { "$gt" } else { "$lte" };
            filter.insert("created_at", doc! { operator: up_to });
        }
        (Some(false), None) => {
            return Ok(Json(Page {
                items: Vec::new(),
                next_cursor: None,
            }));
        }
        (Some(true) | None, None) | (None, Some(_)) => {}
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
        items: page
            .items
            .into_iter()
            .map(|n| Notification::new(n, read_up_to))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

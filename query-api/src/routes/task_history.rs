//! `GET /tasks/{id}/history`: a task's events, read from the event store (always current).

#![expect(
    unused_qualifications,
    reason = "utoipa's `params(..)` expansion qualifies the IntoParams types"
)]

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::AggregateType;
use event_store::read;
use mongodb::bson::doc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::extract::{AppQuery, PathId, Viewer};
use crate::state::AppState;
use crate::store::StoreError;

/// The most events one history page holds.
const MAX_HISTORY: u32 = 1000;

/// `GET /tasks/{id}/history` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Only events with a larger sequence (the `next_after` of the previous page).
    pub after: Option<u64>,
    /// Events per page (1..=1000, default 1000).
    pub limit: Option<u32>,
}

/// One event of a task, as stored in the event store.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryEvent {
    /// The event's sequence within the task (1, 2, …).
    pub sequence: i64,
    /// E.g. `TaskCreated`, `TaskStatusChanged`.
    pub event_type: String,
    /// The event's schema version: the current one of its type (older events are upcast).
    pub event_version: String,
    /// The event itself (task events carry no secrets).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// When it was recorded.
    pub occurred_at: DateTime<Utc>,
    /// Who caused it (user id), if known.
    pub actor: Option<String>,
    /// The HTTP request that caused it, if known.
    pub request_id: Option<String>,
}

/// A page of a task's history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct History {
    /// The task id.
    pub task_id: String,
    /// Its events in sequence order.
    pub events: Vec<HistoryEvent>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<i64>,
}

/// The events of a task in order, read from the event store (always current: no
/// `min_version` needed).
#[utoipa::path(get, path = "/tasks/{id}/history", tag = "tasks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Task id"), HistoryParams),
    responses(
        (status = 200, body = History),
        (status = 404, description = "No such task, or not in a project of yours"),
        (status = 503, description = "PostgreSQL or MongoDB unavailable"),
    ))]
pub async fn history(
    State(state): State<AppState>,
    viewer: Viewer,
    PathId(id): PathId,
    AppQuery(params): AppQuery<HistoryParams>,
) -> Result<Json<History>, ApiError> {
    let limit = match params.limit {
        None => MAX_HISTORY,
        Some(limit) if (1..=MAX_HISTORY).contains(&limit) => limit,
        Some(limit) => {
            return Err(ApiError::invalid(format!(
                "limit must be between 1 and {MAX_HISTORY} (got {limit})"
            )));
        }
    };
    let after = i64::try_from(params.after.unwrap_or(0))
        .map_err(|_| ApiError::invalid("after is too large"))?;
    let id = id.to_string();
    // The project comes from the task's first event, so a task the projector has not reached
    // yet still has a history; visibility is that of the project.
    let created = read::of_aggregate(&state.pool, AggregateType::Task, &id, 0, 1)
        .await
        .map_err(StoreError::from)?;
    let project_id = created
        .first()
        .and_then(|created| created.payload.get("TaskCreated"))
        .and_then(|created| created.get("project_id"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    let Some(project_id) = project_id else {
        return Err(ApiError::not_found("task", &id));
    };
    if !viewer.admin
        && state
            .visible_project(&viewer, &project_id, None)
            .await?
            .is_none()
    {
        return Err(ApiError::not_found("task", &id));
    }
    let mut events: Vec<HistoryEvent> = read::of_aggregate(
        &state.pool,
        AggregateType::Task,
        &id,
        after,
        i64::from(limit) + 1,
    )
    .await
    .map_err(StoreError::from)?
    .into_iter()
    .map(|stored| {
        // Every event in the shape this build writes, whatever version it was stored with.
        let event = stored
            .upcast()
            .map_err(|error| ApiError::internal(&error))?;
        Ok(HistoryEvent {
            sequence: event.sequence,
            event_type: event.event_type,
            event_version: event.event_version,
            payload: event.payload,
            occurred_at: event.occurred_at,
            actor: event.metadata.user_id.map(|user_id| user_id.to_string()),
            request_id: Some(event.metadata.request_id).filter(|id| !id.is_empty()),
        })
    })
    .collect::<Result<_, ApiError>>()?;
    let more = events.len() > limit as usize;
    events.truncate(limit as usize);
    let next_after = more.then(|| events.last().map(|e| e.sequence)).flatten();
    Ok(Json(History {
        task_id: id,
        events,
        next_after,
    }))
}

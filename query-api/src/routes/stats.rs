//! `GET /projects/{id}/stats` and `GET /stats/me`: task counts by status, priority and label,
//! overdue tasks, counts per assignee and completions per day. Counters come from the Redis statistics hashes the
//! projector maintains; when Redis is down or has no hash, they are aggregated from MongoDB.
//! `overdue` depends on today's date, so it is always counted in MongoDB.

#![expect(
    unused_qualifications,
    reason = "utoipa's `params(..)` expansion qualifies the IntoParams types"
)]

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{Days, NaiveDate};
use mongodb::bson::{Bson, Document, doc};
use read_model::documents::{priority, status};
use read_model::{keys, names};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::extract::{AppQuery, PathId, Viewer};
use crate::routes::projects::read_project;
use crate::state::AppState;
use crate::views::{PriorityCounts, StatusCounts, today};

/// The statistics routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/stats", get(project_stats))
        .route("/goals/{id}/stats", get(project_stats))
        .route("/stats/me", get(my_stats))
}

/// The most days `completed_per_day` covers.
const MAX_DAYS: u32 = 366;

/// Statistics parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// How many days (ending today, UTC) `completed_per_day` covers (1..=366, default 30).
    pub days: Option<u32>,
}

/// Tasks completed on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DayCount {
    /// The day (UTC).
    pub date: NaiveDate,
    /// Tasks marked done that day (and still done).
    pub count: i64,
}

/// The tasks of one assignee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AssigneeStats {
    /// The assignee.
    pub assignee_id: String,
    /// Their tasks by status.
    pub by_status: StatusCounts,
    /// All their tasks.
    pub total: i64,
}

/// A project's statistics.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectStats {
    /// The project.
    pub project_id: String,
    /// Not-deleted tasks by status.
    pub by_status: StatusCounts,
    /// Not-deleted tasks by priority.
    pub by_priority: PriorityCounts,
    /// Not-deleted tasks per label (labels no task carries are left out).
    pub by_label: BTreeMap<String, i64>,
    /// All not-deleted tasks.
    pub total: i64,
    /// Open tasks due before today (UTC).
    pub overdue: u64,
    /// Assigned tasks per assignee.
    pub by_assignee: Vec<AssigneeStats>,
    /// Completions per day, oldest first, days without any left out.
    pub completed_per_day: Vec<DayCount>,
    /// `redis` or `mongodb`: where the counters came from.
    pub source: String,
}

/// My statistics as an assignee.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MyStats {
    /// Me.
    pub user_id: String,
    /// My not-deleted tasks by status.
    pub by_status: StatusCounts,
    /// All my not-deleted tasks.
    pub total: i64,
    /// My open tasks due before today (UTC).
    pub overdue: u64,
    /// My completions per day, oldest first, days without any left out.
    pub completed_per_day: Vec<DayCount>,
    /// `redis` or `mongodb`: where the status counters came from.
    pub source: String,
}

fn since(days: Option<u32>) -> Result<NaiveDate, ApiError> {
    let days = days.unwrap_or(30);
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(ApiError::invalid(format!(
            "days must be between 1 and {MAX_DAYS} (got {days})"
        )));
    }
    Ok(today()
        .checked_sub_days(Days::new(u64::from(days - 1)))
        .unwrap_or(NaiveDate::MIN))
}

fn date_text(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

fn overdue_filter(mut scope: Document) -> Document {
    scope.insert("deleted", false);
    scope.insert("status", doc! { "$in": status::OPEN.to_vec() });
    scope.insert(
        "due_date",
        doc! { "$ne": Bson::Null, "$lt": date_text(today()) },
    );
    scope
}

fn count_of(document: &Document, field: &str) -> i64 {
    match document.get(field) {
        Some(Bson::Int32(n)) => i64::from(*n),
        Some(Bson::Int64(n)) => *n,
        #[expect(
            clippy::cast_possible_truncation,
            reason = "a count returned as a double is a whole number"
        )]
        Some(Bson::Double(n)) => *n as i64,
        _ => 0,
    }
}

/// The tasks of `scope` that are not deleted, counted by `key` (a field path such as
/// `"$status"`, or a document of them): one `{_id: <key>, count}` per group.
async fn count_tasks_by(
    state: &AppState,
    scope: Document,
    key: impl Into<Bson>,
) -> Result<Vec<Document>, ApiError> {
    group_tasks(state, scope, None, key).await
}

/// [`count_tasks_by`], each task first unwound into one per element of the array `unwind`
/// (a field path such as `"$labels"`), if given.
async fn group_tasks(
    state: &AppState,
    mut scope: Document,
    unwind: Option<&str>,
    key: impl Into<Bson>,
) -> Result<Vec<Document>, ApiError> {
    scope.insert("deleted", false);
    let mut pipeline = vec![doc! { "$match": scope }];
    pipeline.extend(unwind.map(|path| doc! { "$unwind": path }));
    pipeline.push(doc! { "$group": { "_id": key.into(), "count": { "$sum": 1 } } });
    Ok(state.store.aggregate(names::tasks, pipeline).await?)
}

/// The not-deleted tasks of `scope` per label, from MongoDB.
async fn labels_of(state: &AppState, scope: Document) -> Result<BTreeMap<String, i64>, ApiError> {
    let groups = group_tasks(state, scope, Some("$labels"), "$labels").await?;
    Ok(groups
        .iter()
        .filter_map(|group| {
            Some((
                group.get_str("_id").ok()?.to_owned(),
                count_of(group, "count"),
            ))
        })
        .collect())
}

/// Completions per day from MongoDB for the tasks of `scope`, from `since` on.
async fn completed_per_day(
    state: &AppState,
    mut scope: Document,
    since: NaiveDate,
) -> Result<Vec<DayCount>, ApiError> {
    scope.insert(
        "completed_on",
        doc! { "$ne": Bson::Null, "$gte": date_text(since) },
    );
    let groups = count_tasks_by(state, scope, "$completed_on").await?;
    let mut days: Vec<DayCount> = groups
        .iter()
        .filter_map(|group| {
            let date = group.get_str("_id").ok()?.parse().ok()?;
            Some(DayCount {
                date,
                count: count_of(group, "count"),
            })
        })
        .collect();
    days.sort_by_key(|day| day.date);
    Ok(days)
}

/// Counters of a Redis statistics hash.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counters {
    by_status: StatusCounts,
    by_priority: PriorityCounts,
    by_label: BTreeMap<String, i64>,
    by_assignee: BTreeMap<String, StatusCounts>,
    done: BTreeMap<NaiveDate, i64>,
}

/// Tasks by status, from the counters of a statistics hash or document.
pub fn status_counts(counters: &HashMap<String, i64>) -> StatusCounts {
    parse_hash(counters).by_status
}

fn parse_hash(hash: &HashMap<String, i64>) -> Counters {
    let mut counters = Counters::default();
    for (field, count) in hash {
        if let Some(status) = field.strip_prefix("status:") {
            counters.by_status.add(status, *count);
        } else if let Some(priority) = field.strip_prefix("priority:") {
            counters.by_priority.add(priority, *count);
        } else if let Some(label) = field.strip_prefix("label:") {
            if *count > 0 {
                *counters.by_label.entry(label.to_owned()).or_default() += count;
            }
        } else if let Some(rest) = field.strip_prefix("assignee:") {
            if let Some((assignee, status)) = rest.rsplit_once(':') {
                counters
                    .by_assignee
                    .entry(assignee.to_owned())
                    .or_default()
                    .add(status, *count);
            }
        } else if let Some(day) = field.strip_prefix("done:")
            && let Ok(date) = day.parse()
        {
            *counters.done.entry(date).or_default() += count;
        }
    }
    counters
}

/// A project's task statistics.
#[utoipa::path(get, path = "/projects/{id}/stats", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"), StatsParams),
    responses(
        (status = 200, body = ProjectStats),
        (status = 404, description = "No such project, or not yours"),
        (status = 422, description = "Invalid parameter"),
    ))]
pub async fn project_stats(
    State(state): State<AppState>,
    viewer: Viewer,
    PathId(id): PathId,
    AppQuery(params): AppQuery<StatsParams>,
) -> Result<Json<ProjectStats>, ApiError> {
    let since = since(params.days)?;
    let id = id.to_string();
    if read_project(&state, &viewer, &id, None).await?.is_none() {
        return Err(ApiError::not_found("project", &id));
    }
    let scope = doc! { "project_id": &id };
    let overdue = state
        .store
        .count(names::tasks, overdue_filter(scope.clone()))
        .await?;
    let hash = state.store.stats_hash(keys::project_stats, &id).await?;
    let (counters, source) = if let Some(hash) = hash {
        let mut counters = parse_hash(&hash);
        counters
            .done
            .retain(|date, count| *date >= since && *count > 0);
        (counters, "redis")
    } else {
        let key = doc! {
            "assignee": "$assignee_id", "status": "$status", "priority": "$priority",
            "ranked": { "$ne": [{ "$ifNull": ["$priority_rank", Bson::Null] }, Bson::Null] },
        };
        let groups = count_tasks_by(&state, scope.clone(), key).await?;
        let mut counters = Counters::default();
        for group in &groups {
            let Ok(key) = group.get_document("_id") else {
                continue;
            };
            let count = count_of(group, "count");
            let status = key.get_str("status").unwrap_or_default();
            counters.by_status.add(status, count);
            // As the projector's counters: a document from before priorities (no rank) is
            // not counted by priority.
            if key.get_bool("ranked").unwrap_or(false) {
                let priority = key.get_str("priority").unwrap_or(priority::NORMAL);
                counters.by_priority.add(priority, count);
            }
            if let Ok(assignee) = key.get_str("assignee") {
                counters
                    .by_assignee
                    .entry(assignee.to_owned())
                    .or_default()
                    .add(status, count);
            }
        }
        counters.by_label = labels_of(&state, scope.clone()).await?;
        counters.done = completed_per_day(&state, scope, since)
            .await?
            .into_iter()
            .map(|day| (day.date, day.count))
            .collect();
        (counters, "mongodb")
    };
    Ok(Json(ProjectStats {
        project_id: id,
        total: counters.by_status.total(),
        by_status: counters.by_status,
        by_priority: counters.by_priority,
        by_label: counters.by_label,
        overdue,
        by_assignee: counters
            .by_assignee
            .into_iter()
            .filter(|(_, counts)| counts.total() > 0)
            .map(|(assignee_id, by_status)| AssigneeStats {
                assignee_id,
                total: by_status.total(),
                by_status,
            })
            .collect(),
        completed_per_day: counters
            .done
            .into_iter()
            .map(|(date, count)| DayCount { date, count })
            .collect(),
        source: source.to_owned(),
    }))
}

/// My statistics as an assignee: tasks by status, overdue, completions per day.
#[utoipa::path(get, path = "/stats/me", tag = "stats", security(("bearer" = [])),
    params(StatsParams),
    responses(
        (status = 200, body = MyStats),
        (status = 422, description = "Invalid parameter"),
    ))]
pub async fn my_stats(
    State(state): State<AppState>,
    viewer: Viewer,
    AppQuery(params): AppQuery<StatsParams>,
) -> Result<Json<MyStats>, ApiError> {
    let since = since(params.days)?;
    let me = viewer.id();
    let scope = doc! { "assignee_id": &me };
    let overdue = state
        .store
        .count(names::tasks, overdue_filter(scope.clone()))
        .await?;
    let hash = state.store.stats_hash(keys::user_stats, &me).await?;
    let (by_status, source) = if let Some(hash) = hash {
        (status_counts(&hash), "redis")
    } else {
        let groups = count_tasks_by(&state, scope.clone(), "$status").await?;
        let mut by_status = StatusCounts::default();
        for group in &groups {
            by_status.add(
                group.get_str("_id").unwrap_or_default(),
                count_of(group, "count"),
            );
        }
        (by_status, "mongodb")
    };
    let completed_per_day = completed_per_day(&state, scope, since).await?;
    Ok(Json(MyStats {
        user_id: me,
        total: by_status.total(),
        by_status,
        overdue,
        completed_per_day,
        source: source.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_hashes_are_parsed() {
        let hash: HashMap<String, i64> = [
            ("status:pending", 2),
            ("status:done", 1),
            ("assignee:u1:pending", 1),
            ("assignee:u1:done", 1),
            ("done:2026-01-02", 1),
            ("priority:urgent", 2),
            ("priority:normal", 1),
            ("label:bug", 2),
            ("label:gone", 0),
            ("version", 17),
            ("recount", 3),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let counters = parse_hash(&hash);
        assert_eq!(counters.by_status.pending, 2);
        assert_eq!(counters.by_status.total(), 3);
        assert_eq!(counters.by_assignee["u1"].total(), 2);
        assert_eq!(counters.done.len(), 1);
        assert_eq!(
            (counters.by_priority.urgent, counters.by_priority.normal),
            (2, 1)
        );
        assert_eq!(counters.by_label, BTreeMap::from([("bug".to_owned(), 2)]));
    }
}

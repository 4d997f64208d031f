//! `GET /stream`: the changes to the projects, tasks and notifications the caller may see, as
//! server-sent events, as the projector applies them.
//!
//! - Each change is an event named after its kind (`project`, `task`, `notification`) whose
//!   `data` is `{"type", "id", "version", "deleted", "view"}`, `view` being what the matching
//!   GET answers (absent for a deleted task), and whose `id` is its place in the change feed.
//! - A client that reconnects with `Last-Event-ID` is sent the changes it missed while the feed
//!   still holds them (about the last `TASKTRAIL_PROJECTOR__STREAM_MAX_LEN` changes, 10,000 by
//!   default); if it was away longer it first gets a `reset` event and should read the current
//!   state with GET.
//! - Authorization holds for the life of the stream: a member removed from a project gets one
//!   `access_revoked` event for it and nothing more of it; each heartbeat (a comment, every
//!   `TASKTRAIL_STREAM__HEARTBEAT_SECS`) checks the token again, and a revoked token, a
//!   deactivated account or a changed password end the stream with an `end` event; the token's
//!   expiry ends it too.
//! - A stream that falls `TASKTRAIL_STREAM__BUFFER` changes behind gets a `lagged` event and
//!   ends; its client resumes with `Last-Event-ID`.
//!
//! The feed is read by one task per process ([`Feed`]); each stream only filters.

#![expect(
    unused_qualifications,
    reason = "utoipa's `params(..)` expansion qualifies the IntoParams types"
)]

pub mod feed;

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use auth::{AuthError, AuthUser};
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::routing::get;
use domain::Role;
use futures::Stream;
use read_model::changes::Kind;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;
use uuid::Uuid;

pub use self::feed::Feed;
use self::feed::{Entry, EntryId};
use crate::error::ApiError;
use crate::extract::{AppQuery, Viewer};
use crate::state::AppState;

/// The stream route.
pub fn router() -> Router<AppState> {
    Router::new().route("/stream", get(stream))
}

/// The most changes a resuming client is sent from the feed.
const RESUME_LIMIT: usize = 10_000;

/// `GET /stream` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Only the changes of this project (its own, its tasks', and my notifications about it).
    pub project_id: Option<Uuid>,
}

/// Server-sent events of the changes I may see (see the module documentation for the events).
#[utoipa::path(get, path = "/stream", tag = "stream", security(("bearer" = [])),
    params(
        StreamParams,
        ("Last-Event-ID" = Option<String>, Header,
            description = "The `id` of the last event received: resume after it"),
    ),
    responses(
        (status = 200, content_type = "text/event-stream",
            description = "Events `project`, `task`, `notification` (data \
            `{\"type\", \"id\", \"version\", \"deleted\", \"view\"}`), `access_revoked`, `reset`, \
            `lagged`, `end`; comments as heartbeats"),
        (status = 404, description = "`project_id` names no project of yours"),
        (status = 422, description = "`Last-Event-ID` is not an event id"),
        (status = 503, description = "Redis is unavailable (resuming needs it)"),
    ))]
pub async fn stream(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    AppQuery(params): AppQuery<StreamParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let viewer = Viewer {
        user_id: user.claims.sub,
        admin: user.claims.role == Role::Admin,
    };
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.parse::<EntryId>().ok())
                .ok_or_else(|| {
                    ApiError::invalid("Last-Event-ID must be the id of an event of this stream")
                })?,
        ),
    };
    let only = params.project_id.map(|id| id.to_string());
    if let Some(project) = &only
        && state
            .visible_project(&viewer, project, None)
            .await?
            .is_none()
    {
        return Err(ApiError::not_found("project", project));
    }
    // Subscribe before anything is read, so that no change falls between the two.
    let live = state.feed.subscribe();
    let visible = visible_set(&state, &viewer).await?;
    let mut session = Session {
        token: auth::extract::bearer_token(&headers)
            .unwrap_or_default()
            .to_owned(),
        expires: tokio::time::Instant::now()
            + Duration::from_secs(
                u64::try_from(user.claims.exp - chrono::Utc::now().timestamp()).unwrap_or(0),
            ),
        heartbeat: tokio::time::interval_at(
            tokio::time::Instant::now() + state.heartbeat,
            state.heartbeat,
        ),
        state,
        viewer,
        only,
        visible,
        backlog: VecDeque::new(),
        live,
        last: EntryId::ZERO,
        pending: VecDeque::from([Event::default().comment("connected")]),
        done: false,
    };
    if let Some(after) = resume {
        let backlog = session
            .state
            .feed
            .since(after, RESUME_LIMIT)
            .await
            .map_err(|error| ApiError::unavailable("redis", &error))?;
        if backlog.missed || backlog.entries.len() >= RESUME_LIMIT {
            session.pending.push_back(
                Event::default().event("reset").data(
                    json!({
                        "reason": "missed",
                        "message": format!(
                            "changes after {after} are no longer in the feed; read the current \
                             state with GET, then carry on with this stream"
                        ),
                    })
                    .to_string(),
                ),
            );
        }
        session.last = after;
        session.backlog = backlog.entries.into();
    }
    let events = futures::stream::unfold(session, |mut session| async move {
        session.next().await.map(|event| (Ok(event), session))
    });
    Ok(Sse::new(events))
}

/// The projects `viewer` sees (`None`: an admin sees every one).
async fn visible_set(
    state: &AppState,
    viewer: &Viewer,
) -> Result<Option<HashSet<String>>, ApiError> {
    Ok(state
        .visible_project_ids(viewer)
        .await?
        .map(|ids| ids.into_iter().collect()))
}

/// One open stream.
struct Session {
    state: AppState,
    token: String,
    viewer: Viewer,
    expires: tokio::time::Instant,
    heartbeat: tokio::time::Interval,
    /// `?project_id=`.
    only: Option<String>,
    /// The projects the viewer sees (`None`: all, an admin).
    visible: Option<HashSet<String>>,
    /// Missed changes to send first (a resume).
    backlog: VecDeque<Arc<Entry>>,
    live: tokio::sync::broadcast::Receiver<Arc<Entry>>,
    /// The last entry handled (sent or filtered out).
    last: EntryId,
    /// Events to send before waiting again.
    pending: VecDeque<Event>,
    /// Nothing follows the pending events.
    done: bool,
}

impl Session {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.done {
                return None;
            }
            if let Some(entry) = self.backlog.pop_front() {
                self.offer(&entry);
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep_until(self.expires) => self.end("expired_token"),
                _ = self.heartbeat.tick() => {
                    self.check().await;
                    if !self.done {
                        return Some(Event::default().comment("heartbeat"));
                    }
                }
                received = self.live.recv() => match received {
                    Ok(entry) => {
                        if entry.id > self.last {
                            self.offer(&entry);
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        self.pending.push_back(Event::default().event("lagged").data(
                            json!({
                                "missed": missed,
                                "message": "this stream fell too far behind and ends; \
                                            reconnect with Last-Event-ID to resume",
                            })
                            .to_string(),
                        ));
                        self.done = true;
                    }
                    Err(RecvError::Closed) => self.done = true,
                },
            }
        }
    }

    /// Queues `entry` if the viewer may see it (keeping the visible projects up to date).
    fn offer(&mut self, entry: &Entry) {
        self.last = entry.id;
        let change = &entry.change;
        let me = self.viewer.id();
        let sees = match change.kind {
            Kind::Notification => change.audience.contains(&me),
            Kind::Task => self
                .visible
                .as_ref()
                .is_none_or(|visible| visible.contains(&change.project_id)),
            Kind::Project => match &mut self.visible {
                None => true,
                Some(visible) if change.audience.contains(&me) => {
                    visible.insert(change.id.clone());
                    true
                }
                Some(visible) => {
                    if visible.remove(&change.id)
                        && self.only.as_ref().is_none_or(|only| *only == change.id)
                    {
                        self.pending.push_back(
                            Event::default()
                                .event("access_revoked")
                                .data(json!({ "type": "project", "id": change.id }).to_string()),
                        );
                    }
                    false
                }
            },
        };
        let wanted = self
            .only
            .as_ref()
            .is_none_or(|only| *only == change.project_id);
        if sees && wanted {
            self.pending.push_back(
                Event::default()
                    .id(entry.id.to_string())
                    .event(change.kind.as_str())
                    .data(entry.data.as_str()),
            );
        }
    }

    /// Checks the token again (revocation, account, password, role).
    async fn check(&mut self) {
        match self
            .state
            .authenticator
            .authenticate_token(&self.token)
            .await
        {
            Ok(claims) => {
                let admin = claims.role == Role::Admin;
                if admin != self.viewer.admin {
                    self.viewer.admin = admin;
                    match visible_set(&self.state, &self.viewer).await {
                        Ok(visible) => self.visible = visible,
                        Err(_) => self.end("unavailable"),
                    }
                }
            }
            Err(error) => self.end(match error {
                AuthError::ExpiredToken => "expired_token",
                AuthError::RevokedToken => "revoked_token",
                AuthError::InactiveAccount => "inactive_account",
                AuthError::Unavailable(_) => "unavailable",
                AuthError::MissingToken | AuthError::InvalidToken => "invalid_token",
            }),
        }
    }

    fn end(&mut self, reason: &str) {
        self.pending.push_back(
            Event::default()
                .event("end")
                .data(json!({ "reason": reason }).to_string()),
        );
        self.done = true;
    }
}

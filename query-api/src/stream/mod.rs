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

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use auth::{AuthError, AuthUser};
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::routing::get;
use futures::Stream;
use read_model::changes::{Change, Kind};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;
use uuid::Uuid;

pub use self::feed::Feed;
use self::feed::{EntryId, Message};
use crate::error::ApiError;
use crate::extract::{AppQuery, Viewer};
use crate::state::AppState;

/// The stream route.
pub fn router() -> Router<AppState> {
    Router::new().route("/stream", get(stream))
}

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
    let viewer = Viewer::of(&user.claims);
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
    let session = Session {
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
        versions: HashMap::new(),
        resuming: resume,
        backlog: VecDeque::new(),
        live,
        last: resume.unwrap_or(EntryId::ZERO),
        pending: VecDeque::from([Event::default().comment("connected")]),
        reload: false,
        done: false,
    };
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
    /// The newest version seen of each project: an older entry of a project (appended late by
    /// a projector that lost its partitions) never gives access back.
    versions: HashMap<String, i64>,
    /// Reading the missed changes after this id, a page at a time (a resume).
    resuming: Option<EntryId>,
    /// A page of missed changes still to filter and send.
    backlog: VecDeque<(EntryId, Change)>,
    live: tokio::sync::broadcast::Receiver<Message>,
    /// The last entry handled (sent or filtered out).
    last: EntryId,
    /// Events to send before waiting again.
    pending: VecDeque<Event>,
    /// Read the visible projects again before the next change (changes were missed).
    reload: bool,
    /// Nothing follows the pending events.
    done: bool,
}

/// Entries read per page while resuming.
const PAGE: usize = 200;

impl Session {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.done {
                return None;
            }
            if self.reload {
                self.reload = false;
                self.reload_visible().await;
                continue;
            }
            if let Some((id, change)) = self.backlog.pop_front() {
                if id > self.last && self.admits(id, &change) {
                    match self.state.feed.render(&change).await {
                        Some(data) => self.send(id, &change, data),
                        None => continue,
                    }
                }
                continue;
            }
            if let Some(after) = self.resuming {
                self.read_page(after).await;
                continue;
            }
            tokio::select! {
                () = self.state.shutdown.cancelled() => self.end("shutdown"),
                () = tokio::time::sleep_until(self.expires) => self.end("expired_token"),
                _ = self.heartbeat.tick() => {
                    self.check().await;
                    if !self.done {
                        return Some(Event::default().comment("heartbeat"));
                    }
                }
                received = self.live.recv() => match received {
                    Ok(Message::Change(entry)) => {
                        if entry.id > self.last && self.admits(entry.id, &entry.change) {
                            self.send(entry.id, &entry.change, entry.data.clone());
                        }
                    }
                    Ok(Message::Missed) => self.missed(),
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

    /// The next page of a resume: what it holds goes to the backlog; a gap is told.
    async fn read_page(&mut self, after: EntryId) {
        match self.state.feed.page(after, PAGE).await {
            Ok(page) => {
                if let Some(newest) = page.ahead {
                    // An id the feed never made: start from its newest entry.
                    self.last = newest;
                    self.resuming = None;
                    self.missed();
                    return;
                }
                if page.missed {
                    self.missed();
                }
                self.resuming = page.more_after;
                self.backlog.extend(page.entries);
            }
            Err(error) => {
                tracing::warn!(%error, "stream: reading missed changes failed");
                self.end("unavailable");
            }
        }
    }

    /// Changes were lost to this stream: the client reloads; the visible projects are read
    /// again (a lost change may have ended a membership).
    fn missed(&mut self) {
        self.pending.push_back(
            Event::default().event("reset").data(
                json!({
                    "reason": "missed",
                    "message": "some changes are no longer in the feed; read the current \
                                state with GET, then carry on with this stream",
                })
                .to_string(),
            ),
        );
        self.reload = true;
    }

    /// Whether the viewer may see the change `id` (keeping the visible projects up to date);
    /// the entry counts as handled either way.
    fn admits(&mut self, id: EntryId, change: &Change) -> bool {
        self.last = id;
        let me = self.viewer.id();
        let sees = match change.kind {
            Kind::Notification => change.audience.contains(&me),
            Kind::Task => self
                .visible
                .as_ref()
                .is_none_or(|visible| visible.contains(&change.project_id)),
            Kind::Project => {
                let newest = self.versions.entry(change.id.clone()).or_default();
                if change.version < *newest {
                    return false;
                }
                *newest = change.version;
                let member = change.audience.contains(&me);
                match &mut self.visible {
                    None => true,
                    Some(visible) if member => {
                        visible.insert(change.id.clone());
                        true
                    }
                    Some(_) => {
                        self.revoke(&change.id);
                        false
                    }
                }
            }
        };
        sees && self
            .only
            .as_ref()
            .is_none_or(|only| *only == change.project_id)
    }

    fn send(&mut self, id: EntryId, change: &Change, data: String) {
        self.pending.push_back(
            Event::default()
                .id(id.to_string())
                .event(change.kind.as_str())
                .data(data),
        );
    }

    /// The viewer no longer sees `project`: told once (if the stream shows it), then nothing
    /// more of it.
    fn revoke(&mut self, project: &str) {
        let was_visible = self
            .visible
            .as_mut()
            .is_some_and(|visible| visible.remove(project));
        if was_visible && self.only.as_deref().is_none_or(|only| only == project) {
            self.pending.push_back(
                Event::default()
                    .event("access_revoked")
                    .data(json!({ "type": "project", "id": project }).to_string()),
            );
        }
    }

    /// Reads the visible projects again from the read model: a membership that ended while its
    /// change never reached this stream ends here too.
    async fn reload_visible(&mut self) {
        match visible_set(&self.state, &self.viewer).await {
            Ok(Some(now)) => {
                let lost: Vec<String> = self
                    .visible
                    .iter()
                    .flatten()
                    .filter(|project| !now.contains(*project))
                    .cloned()
                    .collect();
                for project in lost {
                    self.revoke(&project);
                }
                self.visible = Some(now);
            }
            Ok(None) => self.visible = None,
            Err(_) => self.end("unavailable"),
        }
    }

    /// Checks the token again (revocation, account, password, role) and the visible projects.
    async fn check(&mut self) {
        match self
            .state
            .authenticator
            .authenticate_token(&self.token)
            .await
        {
            Ok(claims) => {
                self.viewer = Viewer::of(&claims);
                self.reload_visible().await;
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

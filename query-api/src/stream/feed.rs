//! The replica's side of the change feed ([`read_model::changes`]): one background reader
//! follows the Redis stream with a blocking `XREAD` on a connection of its own, renders each
//! change once in the API's shapes, and fans it out to every open `GET /stream` over a
//! broadcast channel. The channel is bounded: a stream that falls `buffer` changes behind is
//! told so and ended (its client resumes with `Last-Event-ID`), so a slow client never holds the
//! reader, the projector or another client. If the reader itself falls so far behind that Redis
//! trimmed entries it had not read, every stream is told ([`Message::Missed`]).
//!
//! A resuming stream reads the entries it missed a page at a time ([`Feed::page`]) and renders
//! only those it will send.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use read_model::changes::{self, Change, Kind};
use read_model::documents::{NotificationView, ProjectView, TaskView};
use redis::aio::ConnectionManager;
use redis::streams::{StreamRangeReply, StreamReadReply};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::routes::projects;
use crate::store::ReadStore;
use crate::views::{Notification, Task, today};

/// How long one `XREAD` blocks before it is sent again (it returns at once when a change comes).
const BLOCK: Duration = Duration::from_secs(2);
/// Entries one `XREAD` or `XRANGE` returns at most.
const COUNT: usize = 500;

/// The id of a stream entry (`<milliseconds>-<sequence>`): the SSE `id`, and what a client
/// sends back as `Last-Event-ID`. Ordered as Redis orders entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId {
    millis: u64,
    sequence: u64,
}

impl EntryId {
    /// Before every entry.
    pub const ZERO: Self = Self {
        millis: 0,
        sequence: 0,
    };
}

impl FromStr for EntryId {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (millis, sequence) = text.trim().split_once('-').ok_or(())?;
        Ok(Self {
            millis: millis.parse().map_err(|_| ())?,
            sequence: sequence.parse().map_err(|_| ())?,
        })
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.millis, self.sequence)
    }
}

/// What the reader hands to every stream.
#[derive(Debug, Clone)]
pub enum Message {
    /// The next change.
    Change(Arc<Entry>),
    /// The reader lost entries (Redis trimmed them before it read them): a stream may have
    /// missed changes, among them a membership's end.
    Missed,
}

/// A change, rendered once for every stream that may see it.
#[derive(Debug)]
pub struct Entry {
    /// Its id in the feed.
    pub id: EntryId,
    /// What changed and who may see it.
    pub change: Change,
    /// The SSE `data`: `{"type", "id", "version", "deleted", "view"}`.
    pub data: String,
}

/// The SSE `data` of a change.
#[derive(Debug, Serialize)]
struct Data<T> {
    #[serde(rename = "type")]
    kind: Kind,
    id: String,
    version: i64,
    /// A deleted task has no view.
    deleted: bool,
    view: Option<T>,
}

/// A page of the entries after an id, for a client that resumes.
#[derive(Debug, Default)]
pub struct Page {
    /// The entries, oldest first, not rendered.
    pub entries: Vec<(EntryId, Change)>,
    /// Whether entries after the id were trimmed away already: the client missed changes.
    pub missed: bool,
    /// The id is later than any entry the feed made (forged, or from before Redis lost its
    /// data): the newest entry's id, to carry on from.
    pub ahead: Option<EntryId>,
    /// The page was full: the id of its last entry, to read the next page after.
    pub more_after: Option<EntryId>,
}

/// The change feed of this replica.
#[derive(Debug, Clone)]
pub struct Feed {
    sender: broadcast::Sender<Message>,
    redis: ConnectionManager,
    store: ReadStore,
    key: String,
}

impl Feed {
    /// The feed of `prefix`'s stream; nothing is read until [`Feed::follow`].
    pub fn new(redis: ConnectionManager, store: ReadStore, prefix: &str, buffer: usize) -> Self {
        Self {
            sender: broadcast::Sender::new(buffer),
            redis,
            store,
            key: changes::key(prefix),
        }
    }

    /// A receiver of every change rendered from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Message> {
        self.sender.subscribe()
    }

    /// Starts the background reader on a connection of its own (`redis_url`); it reconnects
    /// after an error.
    ///
    /// # Errors
    /// An invalid Redis URL.
    pub fn follow(&self, redis_url: &str) -> anyhow::Result<()> {
        let client = redis::Client::open(redis_url)?;
        let feed = self.clone();
        tokio::spawn(async move {
            let mut last: Option<EntryId> = None;
            loop {
                if let Err(error) = feed.read_on(&client, &mut last).await {
                    tracing::debug!(%error, "stream: reading the change feed failed; again in 1 s");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Ok(())
    }

    /// Follows the stream from `last` (from its end the first time) until an error.
    async fn read_on(
        &self,
        client: &redis::Client,
        last: &mut Option<EntryId>,
    ) -> redis::RedisResult<()> {
        let mut connection = client.get_multiplexed_async_connection().await?;
        // A blocking read answers after up to `BLOCK`: more than the default response timeout.
        connection.set_response_timeout(BLOCK + Duration::from_secs(5));
        let mut after = match *last {
            Some(id) => id,
            None => self.newest(&mut connection).await?.unwrap_or(EntryId::ZERO),
        };
        // From here on a reconnect resumes where this left off.
        *last = Some(after);
        loop {
            // Entries trimmed before this reader got to them (it fell `max_len` behind).
            if trimmed_after(&self.info(&mut connection).await?, after) {
                tracing::warn!(
                    after = %after,
                    "stream: the change feed trimmed entries this replica had not read"
                );
                let _receivers = self.sender.send(Message::Missed);
            }
            let reply: Option<StreamReadReply> = redis::cmd("XREAD")
                .arg("BLOCK")
                .arg(BLOCK.as_millis().to_string())
                .arg("COUNT")
                .arg(COUNT)
                .arg("STREAMS")
                .arg(&self.key)
                .arg(after.to_string())
                .query_async(&mut connection)
                .await?;
            for key in reply.map(|reply| reply.keys).unwrap_or_default() {
                for entry in key.ids {
                    let Ok(id) = entry.id.parse::<EntryId>() else {
                        continue;
                    };
                    after = id;
                    *last = Some(id);
                    let Some(change) = change_of(&entry.map) else {
                        continue;
                    };
                    let started = std::time::Instant::now();
                    if let Some(data) = self.render(&change).await {
                        // No receiver is not an error: nobody is streaming.
                        let streams = self
                            .sender
                            .send(Message::Change(Arc::new(Entry { id, change, data })))
                            .unwrap_or(0);
                        tracing::debug!(
                            %id,
                            streams,
                            render_us = started.elapsed().as_micros(),
                            "stream: change sent to the open streams"
                        );
                    }
                }
            }
        }
    }

    async fn newest(
        &self,
        connection: &mut impl redis::aio::ConnectionLike,
    ) -> redis::RedisResult<Option<EntryId>> {
        let newest: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&self.key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(connection)
            .await?;
        Ok(newest.ids.first().and_then(|entry| entry.id.parse().ok()))
    }

    /// `XINFO STREAM` of the feed (`Nil` while there is no stream).
    async fn info(
        &self,
        connection: &mut impl redis::aio::ConnectionLike,
    ) -> redis::RedisResult<redis::Value> {
        let exists: bool = redis::cmd("EXISTS")
            .arg(&self.key)
            .query_async(connection)
            .await?;
        if !exists {
            return Ok(redis::Value::Nil);
        }
        redis::cmd("XINFO")
            .arg("STREAM")
            .arg(&self.key)
            .query_async(connection)
            .await
    }

    /// The entries after `after`, at most `limit`, and whether some after it were trimmed away.
    ///
    /// # Errors
    /// Redis unreachable.
    pub async fn page(&self, after: EntryId, limit: usize) -> redis::RedisResult<Page> {
        let mut redis = self.redis.clone();
        let range: StreamRangeReply = redis::cmd("XRANGE")
            .arg(&self.key)
            .arg(format!("({after}"))
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut redis)
            .await?;
        // Asked after the range: a trim between the two is taken for a miss (a reload too
        // many), never the other way round.
        let info = self.info(&mut redis).await?;
        let newest = info_id(&info, "last-generated-id").unwrap_or(EntryId::ZERO);
        let full = range.ids.len() >= limit;
        Ok(Page {
            more_after: range
                .ids
                .last()
                .filter(|_| full)
                .and_then(|entry| entry.id.parse().ok()),
            entries: range
                .ids
                .iter()
                .filter_map(|entry| Some((entry.id.parse().ok()?, change_of(&entry.map)?)))
                .collect(),
            missed: trimmed_after(&info, after),
            ahead: (after > newest).then_some(newest),
        })
    }

    /// The SSE `data` of a change, in the API's shapes (a task with its project's and
    /// assignee's names, a project with its task counts, a notification unread); `None` for a
    /// document this build does not read.
    pub async fn render(&self, change: &Change) -> Option<String> {
        let data = match change.kind {
            Kind::Task => {
                let task: TaskView = serde_json::from_str(&change.document).ok()?;
                let deleted = task.deleted;
                let view = if deleted {
                    None
                } else {
                    let names = self
                        .store
                        .task_names(std::slice::from_ref(&task))
                        .await
                        .unwrap_or_default();
                    Some(Task::on(task, today(), &names))
                };
                encode(change, deleted, view)
            }
            Kind::Project => {
                let project: ProjectView = serde_json::from_str(&change.document).ok()?;
                let counters = self
                    .store
                    .project_counters(&[project.id.as_str()])
                    .await
                    .unwrap_or_default();
                encode(change, false, Some(projects::counted(project, &counters)))
            }
            Kind::Notification => {
                let notification: NotificationView = serde_json::from_str(&change.document).ok()?;
                encode(change, false, Some(Notification::new(notification, None)))
            }
        };
        Some(data)
    }
}

/// The change of an entry's fields; `None` for one this build does not understand.
fn change_of(fields: &HashMap<String, redis::Value>) -> Option<Change> {
    let fields: HashMap<String, String> = fields
        .iter()
        .filter_map(|(name, value)| Some((name.clone(), redis::from_redis_value_ref(value).ok()?)))
        .collect();
    Change::from_fields(&fields)
}

/// The field/value pairs of an `XINFO STREAM` reply (RESP2 array or RESP3 map).
fn info_pairs(info: &redis::Value) -> Vec<(&redis::Value, &redis::Value)> {
    match info {
        redis::Value::Array(items) => items
            .chunks(2)
            .filter_map(|pair| Some((pair.first()?, pair.get(1)?)))
            .collect(),
        redis::Value::Map(pairs) => pairs.iter().map(|(k, v)| (k, v)).collect(),
        _ => Vec::new(),
    }
}

fn info_field<'a>(info: &'a redis::Value, name: &str) -> Option<&'a redis::Value> {
    info_pairs(info).into_iter().find_map(|(key, value)| {
        (redis::from_redis_value_ref::<String>(key).ok()? == name).then_some(value)
    })
}

fn info_id(info: &redis::Value, name: &str) -> Option<EntryId> {
    info_field(info, name)
        .and_then(|value| redis::from_redis_value_ref::<String>(value).ok())
        .and_then(|id| id.parse().ok())
}

/// Whether the stream described by `info` (the reply of `XINFO STREAM`) trimmed away an entry
/// after `after`: the oldest entry it holds is later than `after` (or it holds none, and made
/// one later than `after`). A client whose own last entry was trimmed is told so too, which
/// costs it only a reload.
fn trimmed_after(info: &redis::Value, after: EntryId) -> bool {
    let length = info_field(info, "length")
        .and_then(|value| redis::from_redis_value_ref::<u64>(value).ok())
        .unwrap_or(0);
    if length == 0 {
        info_id(info, "last-generated-id").is_some_and(|last| last > after)
    } else {
        info_id(info, "recorded-first-entry-id").is_some_and(|first| first > after)
    }
}

fn encode<T: Serialize>(change: &Change, deleted: bool, view: Option<T>) -> String {
    serde_json::to_string(&Data {
        kind: change.kind,
        id: change.id.clone(),
        version: change.version,
        deleted,
        view,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(length: i64, first: &str, last: &str) -> redis::Value {
        let text = |t: &str| redis::Value::BulkString(t.as_bytes().to_vec());
        redis::Value::Array(vec![
            text("length"),
            redis::Value::Int(length),
            text("last-generated-id"),
            text(last),
            text("recorded-first-entry-id"),
            text(first),
        ])
    }

    #[test]
    fn a_client_missed_changes_when_the_stream_trimmed_past_its_last_id() {
        let id = |t: &str| t.parse::<EntryId>().expect("an id");
        assert!(
            !trimmed_after(&info(3, "5-0", "7-0"), id("5-0")),
            "still held"
        );
        assert!(!trimmed_after(&info(3, "5-0", "7-0"), id("6-0")));
        assert!(
            trimmed_after(&info(3, "5-0", "7-0"), id("4-0")),
            "4-0 < the oldest"
        );
        assert!(
            trimmed_after(&info(0, "0-0", "7-0"), id("6-0")),
            "all trimmed"
        );
        assert!(
            !trimmed_after(&info(0, "0-0", "7-0"), id("7-0")),
            "saw the last one"
        );
        assert!(
            !trimmed_after(&redis::Value::Nil, id("1-0")),
            "no stream yet"
        );
    }

    #[test]
    fn entry_ids_parse_print_and_order_as_redis_does() {
        let id: EntryId = "1700000000000-2".parse().expect("an id");
        assert_eq!(id.to_string(), "1700000000000-2");
        assert!(id < "1700000000000-10".parse().expect("an id"));
        assert!(id > "999-99".parse().expect("an id"));
        for bad in ["", "12", "a-1", "1-b", "-1"] {
            assert!(bad.parse::<EntryId>().is_err(), "{bad}");
        }
    }
}

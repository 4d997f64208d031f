//! How far the projector trails the event store, partition by partition (`/metrics`).
//!
//! An event is not applied yet when it is
//! - **not published**: after the relay's checkpoint (counted from PostgreSQL, as the relay's own
//!   lag), or
//! - **published but not consumed**: in a partition, at or after the consumer group's committed
//!   offset. The projector commits a batch's offsets only after all its writes, so everything
//!   before the committed offset is in the read models. The relay records, in the same statement
//!   as its checkpoint, the offset after the last message Kafka acknowledged in every partition
//!   (`relay_partitions`, from the delivery reports); the difference is an exact count of the
//!   messages still to apply there (a message the relay had to send twice counts twice until
//!   consumed). Broker high watermarks are not used: the development broker reports wrong ones
//!   (ADR 0001).
//!
//! The age is that of the oldest such event: the oldest unpublished one, or the first
//! uncommitted message of each trailing partition, read from Kafka at the committed offset (its
//! envelope's `occurred_at`). A scrape reads only the partitions whose committed offset moved
//! since the last one (a log does not change under an offset), and only a few kilobytes of each:
//! a probe that fetched like a consumer (librdkafka prefetches up to 100,000 messages a
//! partition) took the broker from the projector while it worked through a backlog, at a scrape
//! every 50 ms (the benchmark's) catch-up fell to ~120 events/s.
//!
//! The earlier gauge, "last position minus the highest position applied", read 0 while a
//! partition still trailed: partitions are consumed at different speeds, so one of them can
//! apply the newest event while another still holds older ones (found by `scripts/chaos`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use event_store::read::Envelope;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use sqlx::PgPool;

/// How long reading the committed offsets, or the first uncommitted messages, may take.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(3);

/// The most the probe fetches per request (and per partition): enough for the first message.
const PROBE_FETCH_BYTES: &str = "65536";

/// When the message at `offset` of a partition occurred (`None` offset: the partition's start).
type FirstMessages = HashMap<(Partition, Option<i64>), chrono::DateTime<Utc>>;

/// The projector's lag at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Lag {
    /// Events not applied yet.
    pub events: i64,
    /// Age in seconds of the oldest of them (0 when there are none), or `None` when a trailing
    /// partition's first message could not be read in time.
    pub seconds: Option<f64>,
}

/// One partition's backlog: the offset after the relay's last acknowledged message there, and
/// the group's committed offset (`None` when the group never committed there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionBacklog {
    /// The offset after the last message the relay published.
    pub published: i64,
    /// The group's committed offset: the next message it will apply.
    pub committed: Option<i64>,
}

impl PartitionBacklog {
    /// Messages still to apply (0 when the group is at or past the relay's last message, which
    /// happens for a moment between Kafka's acknowledgement and the relay's checkpoint).
    #[must_use]
    pub fn messages(self) -> i64 {
        (self.published - self.committed.unwrap_or(0)).max(0)
    }
}

/// Measures the lag of one consumer group.
#[derive(Clone)]
pub struct LagProbe {
    pool: PgPool,
    topics: Vec<String>,
    /// Never subscribes (so never joins the group) and never commits: it only reads the group's
    /// committed offsets and, by `assign`, the messages there. One scrape at a time uses it.
    probe: Arc<Mutex<Probe>>,
}

/// The probe's consumer and what the last scrape read with it.
struct Probe {
    consumer: BaseConsumer,
    first_messages: FirstMessages,
}

impl std::fmt::Debug for LagProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LagProbe")
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

impl LagProbe {
    /// A probe of `group_id` over `topics`. Connects lazily.
    ///
    /// # Errors
    /// A configuration librdkafka refuses.
    pub fn new(
        pool: PgPool,
        brokers: &str,
        group_id: &str,
        topics: Vec<String>,
    ) -> anyhow::Result<Self> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // One message a partition is all it reads: no prefetching, small fetches.
            .set("queued.min.messages", "1")
            .set("queued.max.messages.kbytes", "64")
            .set("fetch.max.bytes", PROBE_FETCH_BYTES)
            .set("max.partition.fetch.bytes", PROBE_FETCH_BYTES)
            .set("message.max.bytes", PROBE_FETCH_BYTES)
            .create()
            .context("creating the lag probe's Kafka consumer")?;
        Ok(Self {
            pool,
            topics,
            probe: Arc::new(Mutex::new(Probe {
                consumer,
                first_messages: FirstMessages::new(),
            })),
        })
    }

    /// The lag now.
    ///
    /// # Errors
    /// PostgreSQL or Kafka unreachable.
    pub async fn measure(&self) -> anyhow::Result<Lag> {
        let unpublished = relay::lag(&self.pool).await?;
        let published = relay::partition_offsets(&self.pool, &self.topics).await?;
        let probe = Arc::clone(&self.probe);
        let backlogs = tokio::task::spawn_blocking(move || {
            let mut probe = probe
                .lock()
                .map_err(|_poisoned| anyhow::anyhow!("the lag probe panicked before"))?;
            let backlogs = backlogs(&probe.consumer, &published)?;
            let known = std::mem::take(&mut probe.first_messages);
            probe.first_messages = first_messages(&probe.consumer, &backlogs, known);
            let oldest: Vec<_> = probe.first_messages.values().copied().collect();
            Ok::<_, anyhow::Error>((backlogs, oldest))
        })
        .await
        .context("the lag probe's task panicked")??;
        let (backlogs, oldest) = backlogs;
        let trailing = backlogs.values().filter(|b| b.messages() > 0).count();
        let events = unpublished.events + backlogs.values().map(|b| b.messages()).sum::<i64>();
        let seconds = (oldest.len() == trailing).then(|| {
            oldest
                .iter()
                .map(|at| (Utc::now() - *at).as_seconds_f64().max(0.0))
                .fold(unpublished.seconds, f64::max)
        });
        Ok(Lag { events, seconds })
    }
}

type Partition = (String, i32);

/// Every published partition's backlog, from the group's committed offsets.
fn backlogs(
    consumer: &BaseConsumer,
    published: &[(String, i32, i64)],
) -> anyhow::Result<HashMap<Partition, PartitionBacklog>> {
    let mut list = TopicPartitionList::new();
    for (topic, partition, _) in published {
        list.add_partition(topic, *partition);
    }
    let committed = if published.is_empty() {
        TopicPartitionList::new()
    } else {
        consumer
            .committed_offsets(list, KAFKA_TIMEOUT)
            .context("reading the projector group's committed offsets")?
    };
    Ok(published
        .iter()
        .map(|(topic, partition, next_offset)| {
            let committed = committed
                .find_partition(topic, *partition)
                .and_then(|element| match element.offset() {
                    Offset::Offset(offset) => Some(offset),
                    _ => None,
                });
            (
                (topic.clone(), *partition),
                PartitionBacklog {
                    published: *next_offset,
                    committed,
                },
            )
        })
        .collect())
}

/// When the first unapplied message of every trailing partition occurred: from `known` (the
/// last scrape's) where its committed offset did not move, else read from Kafka at the committed
/// offset. Partitions whose message did not arrive within [`KAFKA_TIMEOUT`] are left out.
fn first_messages(
    consumer: &BaseConsumer,
    backlogs: &HashMap<Partition, PartitionBacklog>,
    mut known: FirstMessages,
) -> FirstMessages {
    let mut found = FirstMessages::new();
    let mut list = TopicPartitionList::new();
    for (partition, backlog) in backlogs {
        if backlog.messages() == 0 {
            continue;
        }
        let key = (partition.clone(), backlog.committed);
        if let Some(occurred_at) = known.remove(&key) {
            found.insert(key, occurred_at);
        } else {
            let offset = backlog.committed.map_or(Offset::Beginning, Offset::Offset);
            // Only fails for an invalid offset, which `Offset::Offset(n ≥ 0)` is not.
            let _ignored = list.add_partition_offset(&partition.0, partition.1, offset);
        }
    }
    let wanted = list.count();
    if wanted == 0 || consumer.assign(&list).is_err() {
        return found;
    }
    let mut read = 0;
    let deadline = Instant::now() + KAFKA_TIMEOUT;
    while read < wanted {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let Some(Ok(message)) = consumer.poll(left.min(Duration::from_millis(200))) else {
            continue;
        };
        let partition = (message.topic().to_owned(), message.partition());
        let Some(backlog) = backlogs.get(&partition) else {
            continue;
        };
        let occurred_at = message
            .payload()
            .and_then(|payload| serde_json::from_slice::<Envelope>(payload).ok())
            .map_or_else(Utc::now, |envelope| envelope.occurred_at);
        if let std::collections::hash_map::Entry::Vacant(entry) =
            found.entry((partition, backlog.committed))
        {
            entry.insert(occurred_at);
            read += 1;
        }
    }
    let _ignored = consumer.unassign();
    found
}

#[cfg(test)]
mod tests {
    use super::PartitionBacklog;

    #[test]
    fn a_partition_trails_by_the_messages_between_its_committed_offset_and_the_relays() {
        let backlog = |published, committed| PartitionBacklog {
            published,
            committed,
        };
        assert_eq!(backlog(10, Some(4)).messages(), 6);
        assert_eq!(backlog(10, Some(10)).messages(), 0);
        // Committed before the relay's checkpoint recorded the batch.
        assert_eq!(backlog(10, Some(12)).messages(), 0);
        // The group never committed there: everything the relay published.
        assert_eq!(backlog(10, None).messages(), 10);
    }
}

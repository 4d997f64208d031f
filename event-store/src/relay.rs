//! The gap-safe outbox relay: publishes every committed event of the `events` table to Kafka.
//!
//! - One active relay per cluster: [`Relay::run`] holds `pg_try_advisory_lock(`[`ADVISORY_LOCK_KEY`]`)`
//!   on a dedicated connection; another instance retries every poll interval and takes over when
//!   the holder's session ends (process or task gone, connection closed).
//! - It reads only rows with `transaction_id < pg_snapshot_xmin(pg_current_snapshot())`, in
//!   `(transaction_id, global_position)` order, after the checkpoint pair, in batches; publishes each
//!   as the JSON envelope of DESIGN.md to `<prefix>.<aggregate_type>`, key = aggregate id; waits for
//!   Kafka to acknowledge the whole batch, and only then stores the batch's last pair in
//!   `relay_checkpoint`. A publish error is retried with backoff: only the unacknowledged batch
//!   can be sent twice (delivery is at-least-once).
//! - It wakes on `LISTEN tasktrail_events` ([`NOTIFY_CHANNEL`]) or the poll interval, whichever
//!   comes first; while batches await their acknowledgement, a notification reads and sends the
//!   new events at once (up to [`MAX_IN_FLIGHT`] batches), so a command's events never wait for
//!   an earlier batch's acknowledgement to leave.
//! - Broker data loss: every `topic_check_interval` (and after a failed publish) it checks that its
//!   topics still exist. A topic that vanished after the relay had published (a broker that lost
//!   its storage, or topics deleted by hand) means Kafka no longer holds the log: the relay resets
//!   its checkpoint and re-publishes every event from PostgreSQL, the source of truth. Consumers
//!   are idempotent by sequence, so the re-sent history changes no read model (ADR 0004).
//! - A producer that hit a fatal error (the idempotent producer's state no longer matches the
//!   broker's, e.g. after a broker restart) is replaced by a new one.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use serde::Serialize;
use sqlx::postgres::{PgConnection, PgListener};
use sqlx::{Connection as _, PgPool};
use uuid::Uuid;

use crate::{Metadata, NOTIFY_CHANNEL};

/// The key of the PostgreSQL advisory lock that the active relay holds ("tasktrly" in ASCII).
pub const ADVISORY_LOCK_KEY: i64 = 0x7461_736b_7472_6c79;

/// The name of the relay's row in `relay_checkpoint`.
pub const CHECKPOINT_NAME: &str = "kafka";

/// The aggregate types whose topics the relay creates.
pub const AGGREGATE_TYPES: [&str; 3] = ["user", "project", "task"];

/// Batches handed to the producer and not yet acknowledged, at most: the relay reads and queues
/// the next batch while Kafka acknowledges the earlier ones. A crash re-sends at most these.
pub const MAX_IN_FLIGHT: usize = 4;

/// How soon the relay reads again while committed events are held back by an open transaction.
const HELD_BACK_RECHECK: Duration = Duration::from_millis(50);

/// Consecutive failed publishes of one batch after which the producer is replaced.
const PRODUCER_RENEWAL_FAILURES: u32 = 3;

/// The longest pause between two attempts after an error.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Topics are `<topic_prefix>.<aggregate type>`.
    pub topic_prefix: String,
    /// Events read and published per batch.
    pub batch_size: i64,
    /// The polling fallback when no notification arrives (and the lock retry interval).
    pub poll_interval: Duration,
    /// Partitions of the topics the relay creates.
    pub partitions: i32,
    /// Replication factor of the topics the relay creates.
    pub replication_factor: i32,
    /// How often the relay checks that its topics still exist (broker data loss).
    pub topic_check_interval: Duration,
    /// How long a batch may wait for Kafka's acknowledgement before it counts as a publish
    /// error. The relay keeps waiting for the same messages (the producer retries them in order
    /// without a deadline) and meanwhile checks the broker for a fatal error or lost topics; it
    /// never re-sends a batch that merely timed out, which could reorder an aggregate's events.
    pub message_timeout: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            topic_prefix: "tasktrail".to_owned(),
            batch_size: 2000,
            poll_interval: Duration::from_secs(1),
            partitions: 3,
            replication_factor: 1,
            topic_check_interval: Duration::from_secs(5),
            message_timeout: Duration::from_secs(30),
        }
    }
}

/// What the relay did so far, for `/metrics` and `/readyz`; shared through [`Relay::status`].
#[derive(Debug, Default)]
pub struct RelayStatus {
    active: AtomicBool,
    last_transaction_id: AtomicU64,
    last_global_position: AtomicI64,
    reads: AtomicU64,
    batches: AtomicU64,
    events_published: AtomicU64,
    publish_errors: AtomicU64,
    republishes: AtomicU64,
    in_flight: AtomicU32,
}

impl RelayStatus {
    /// Whether this instance holds the lock (is the active relay).
    #[must_use]
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// The `(transaction_id, global_position)` of the last event Kafka acknowledged (0, 0 before any).
    #[must_use]
    pub fn last_published(&self) -> (u64, i64) {
        (
            self.last_transaction_id.load(Ordering::Relaxed),
            self.last_global_position.load(Ordering::Relaxed),
        )
    }

    /// Batches read from PostgreSQL (empty ones included): shows the relay is polling.
    #[must_use]
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Batches published (and checkpointed).
    #[must_use]
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Events published (and checkpointed).
    #[must_use]
    pub fn events_published(&self) -> u64 {
        self.events_published.load(Ordering::Relaxed)
    }

    /// Failed attempts to publish a batch (each is retried).
    #[must_use]
    pub fn publish_errors(&self) -> u64 {
        self.publish_errors.load(Ordering::Relaxed)
    }

    /// Times the relay found its topics gone and started re-publishing from the first event.
    #[must_use]
    pub fn republishes(&self) -> u64 {
        self.republishes.load(Ordering::Relaxed)
    }

    /// Batches handed to the producer and not yet acknowledged (at most [`MAX_IN_FLIGHT`]).
    #[must_use]
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// How far the relay is behind, from PostgreSQL positions (never Kafka watermarks).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    /// Committed events after the checkpoint.
    pub events: i64,
    /// Age of the oldest of them (0 when there are none).
    pub seconds: f64,
}

/// The relay's lag: committed events after its checkpoint and the age of the oldest.
pub async fn lag(pool: &PgPool) -> anyhow::Result<Lag> {
    let (events, seconds): (i64, f64) = sqlx::query_as(
        "WITH checkpoint AS (
             SELECT transaction_id, global_position FROM relay_checkpoint WHERE name = $1
             UNION ALL SELECT '0'::xid8, 0
             ORDER BY 1 DESC, 2 DESC LIMIT 1)
         SELECT count(*),
                COALESCE(EXTRACT(EPOCH FROM now() - min(e.recorded_at)), 0)::float8
           FROM events e, checkpoint c
          WHERE (e.transaction_id, e.global_position) > (c.transaction_id, c.global_position)",
    )
    .bind(CHECKPOINT_NAME)
    .fetch_one(pool)
    .await
    .context("reading the relay lag")?;
    Ok(Lag { events, seconds })
}

/// The offset after the last message Kafka acknowledged, for every partition of `topics` the
/// relay published to (`relay_partitions`): `(topic, partition, next offset)`.
///
/// # Errors
/// PostgreSQL unreachable.
pub async fn partition_offsets(
    pool: &PgPool,
    topics: &[String],
) -> anyhow::Result<Vec<(String, i32, i64)>> {
    sqlx::query_as(
        "SELECT topic, partition, next_offset FROM relay_partitions
          WHERE topic = ANY($1) ORDER BY topic, partition",
    )
    .bind(topics)
    .fetch_all(pool)
    .await
    .context("reading the relay's partition offsets")
}

/// The stored checkpoint pair, if the relay published anything yet.
pub async fn checkpoint(pool: &PgPool) -> anyhow::Result<Option<(u64, i64)>> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT transaction_id::text, global_position FROM relay_checkpoint WHERE name = $1",
    )
    .bind(CHECKPOINT_NAME)
    .fetch_optional(pool)
    .await
    .context("reading the relay checkpoint")?;
    row.map(|(xid, position)| Ok((parse_xid(&xid)?, position)))
        .transpose()
}

fn parse_xid(xid: &str) -> anyhow::Result<u64> {
    xid.parse()
        .with_context(|| format!("transaction id {xid:?} is not a number"))
}

/// The envelope published to Kafka (DESIGN.md, "Event envelope on Kafka").
#[derive(Debug, Serialize)]
pub struct Envelope {
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub global_position: i64,
    pub event_type: String,
    pub event_version: String,
    pub occurred_at: DateTime<Utc>,
    pub metadata: Metadata,
    pub payload: serde_json::Value,
}

#[derive(Debug, sqlx::FromRow)]
struct EventRow {
    transaction_id: String,
    global_position: i64,
    event_id: Uuid,
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: serde_json::Value,
    metadata: serde_json::Value,
    recorded_at: DateTime<Utc>,
}

impl EventRow {
    fn into_envelope(self) -> Envelope {
        let map: HashMap<String, String> = match self.metadata {
            serde_json::Value::Object(object) => object
                .into_iter()
                .filter_map(|(key, value)| match value {
                    serde_json::Value::String(value) => Some((key, value)),
                    _ => None,
                })
                .collect(),
            _ => HashMap::new(),
        };
        Envelope {
            event_id: self.event_id,
            aggregate_type: self.aggregate_type,
            aggregate_id: self.aggregate_id,
            sequence: self.sequence,
            global_position: self.global_position,
            event_type: self.event_type,
            event_version: self.event_version,
            occurred_at: self.recorded_at,
            metadata: Metadata::from_map(&map),
            payload: self.payload,
        }
    }
}

// `ORDER BY events.transaction_id`: the bare name would be the text output column, and text
// order puts `10000` before `9999`, so a batch would skip past older ids (test
// `events_across_a_digit_boundary_of_transaction_ids_all_arrive_in_commit_order`). The column
// also lets the planner walk the `(transaction_id, global_position)` index.
const READ_BATCH: &str = "
SELECT transaction_id::text AS transaction_id, global_position, event_id, aggregate_type,
       aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at
  FROM events
 WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
   AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY events.transaction_id, global_position
 LIMIT $3";

/// The upsert of the relay's checkpoint row; a macro so that both statements below share it.
macro_rules! upsert_checkpoint {
    () => {
        "INSERT INTO relay_checkpoint (name, transaction_id, global_position, updated_at)
VALUES ($1, $2::text::xid8, $3, now())
ON CONFLICT (name) DO UPDATE
   SET transaction_id = EXCLUDED.transaction_id,
       global_position = EXCLUDED.global_position,
       updated_at = EXCLUDED.updated_at"
    };
}

const WRITE_CHECKPOINT: &str = upsert_checkpoint!();

/// The checkpoint and, in the same statement, the next offset of every partition the batch went
/// to (`relay_partitions`, read by the projector's lag).
const WRITE_CHECKPOINT_AND_PARTITIONS: &str = concat!(
    "WITH checkpoint AS (",
    upsert_checkpoint!(),
    ")
INSERT INTO relay_partitions (topic, partition, next_offset, updated_at)
SELECT topic, partition, next_offset, now()
  FROM UNNEST($4::text[], $5::int4[], $6::int8[]) AS p(topic, partition, next_offset)
ON CONFLICT (topic, partition) DO UPDATE
   SET next_offset = EXCLUDED.next_offset,
       updated_at = EXCLUDED.updated_at"
);

/// Per (topic, partition): the offset after the last message Kafka acknowledged in a batch.
type NextOffsets = HashMap<(String, i32), i64>;

/// Resolves when Kafka acknowledged every message of a batch (see [`acknowledgement`]).
type Acknowledgement = std::pin::Pin<Box<dyn Future<Output = anyhow::Result<NextOffsets>> + Send>>;

/// A batch handed to the producer, waiting for Kafka's acknowledgement.
struct InFlight {
    /// The `(transaction_id, global_position)` of its last event: the checkpoint once it is
    /// acknowledged (and every batch before it).
    last: (String, i64),
    events: usize,
    acknowledgement: Acknowledgement,
    /// When the relay next checks the broker if the acknowledgement has not come by then.
    overdue_at: tokio::time::Instant,
    /// When its read began.
    started: tokio::time::Instant,
    read_ms: u128,
    newest_age_ms: Option<i64>,
}

/// What ended the wait for the oldest batch in flight.
enum Waited {
    /// Kafka acknowledged it (or refused a message of it).
    Acknowledged(anyhow::Result<NextOffsets>),
    /// There is room for another batch and new events were committed, or held-back ones
    /// may be readable now.
    ReadAgain,
    /// A `message_timeout` passed without the acknowledgement.
    Overdue,
}

/// The outbox relay (see the module documentation).
#[derive(Debug)]
pub struct Relay {
    pool: PgPool,
    brokers: String,
    settings: RelaySettings,
    status: Arc<RelayStatus>,
}

impl Relay {
    /// A relay reading from `pool` and publishing to the Kafka cluster at `brokers`.
    #[must_use]
    pub fn new(pool: PgPool, brokers: impl Into<String>, settings: RelaySettings) -> Self {
        Self {
            pool,
            brokers: brokers.into(),
            settings,
            status: Arc::default(),
        }
    }

    /// The relay's counters, updated while it runs.
    #[must_use]
    pub fn status(&self) -> Arc<RelayStatus> {
        Arc::clone(&self.status)
    }

    /// Runs until `shutdown` completes. Errors (PostgreSQL or Kafka unreachable, lock connection
    /// lost, a producer in a fatal state) are logged and retried with backoff; only a producer that
    /// cannot be configured is returned. Stopping (or aborting the task) at any point loses
    /// nothing: the checkpoint only moves after Kafka acknowledged.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        // Fail fast on a configuration the producer refuses.
        drop(self.producer()?);
        let result = tokio::select! {
            () = shutdown => Ok(()),
            result = self.run_forever() => result,
        };
        self.status.active.store(false, Ordering::Relaxed);
        result
    }

    fn producer(&self) -> anyhow::Result<FutureProducer> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random")
            // A missing topic is a signal (broker data loss), not something to paper over.
            .set("allow.auto.create.topics", "false")
            // No local deadline: a message that times out while in flight may still be written
            // later, after its re-sent successors. The relay watches the deadline itself.
            .set("message.timeout.ms", "0")
            // Send as soon as the batch is queued (librdkafka's default waits 5 ms for more):
            // the relay hands over whole batches, and this wait would be read-your-writes lag.
            .set("linger.ms", "1")
            .create()
            .context("creating the relay's Kafka producer")
    }

    async fn run_forever(&self) -> anyhow::Result<()> {
        let mut failures = 0_u32;
        loop {
            let mut connection = self.lock().await;
            self.status.active.store(true, Ordering::Relaxed);
            tracing::info!("relay: this instance is the active relay");
            let producer = self.producer()?;
            let batches_before = self.status.batches();
            let error = match self.relay_while_locked(&mut connection, &producer).await {
                Ok(never) => match never {},
                Err(error) => error,
            };
            if self.status.batches() > batches_before {
                failures = 0;
            }
            self.status.active.store(false, Ordering::Relaxed);
            tracing::warn!(
                error = format!("{error:#}"),
                "relay: stopped; starting again"
            );
            // Dropping the connection ends the session, which releases the lock.
            drop(connection);
            drop_producer(producer);
            failures = failures.saturating_add(1);
            tokio::time::sleep(backoff(failures)).await;
        }
    }

    /// A dedicated connection holding the advisory lock; waits until it gets one.
    async fn lock(&self) -> PgConnection {
        let mut waiting_logged = false;
        loop {
            match self.try_lock().await {
                Ok(Some(connection)) => return connection,
                Ok(None) => {
                    if !waiting_logged {
                        tracing::info!("relay: another instance is active; waiting");
                        waiting_logged = true;
                    }
                }
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "relay: cannot take the lock");
                }
            }
            tokio::time::sleep(self.settings.poll_interval).await;
        }
    }

    async fn try_lock(&self) -> anyhow::Result<Option<PgConnection>> {
        let mut connection = PgConnection::connect_with(&self.pool.connect_options())
            .await
            .context("connecting to PostgreSQL")?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(ADVISORY_LOCK_KEY)
            .fetch_one(&mut connection)
            .await
            .context("pg_try_advisory_lock")?;
        if locked {
            Ok(Some(connection))
        } else {
            let _closed = connection.close().await;
            Ok(None)
        }
    }

    /// Publishes batch after batch while holding the lock; returns only on an error that needs
    /// a new lock connection.
    ///
    /// Up to [`MAX_IN_FLIGHT`] batches are on their way to Kafka at once: the relay reads and
    /// queues the next batch while the broker acknowledges the earlier ones, and moves the
    /// checkpoint over them strictly in order, each only after its own acknowledgement. A failed
    /// batch drops every later one still in flight (their messages may arrive twice, which
    /// consumers ignore by sequence) and reading starts again from the checkpoint.
    async fn relay_while_locked(
        &self,
        connection: &mut PgConnection,
        producer: &FutureProducer,
    ) -> anyhow::Result<std::convert::Infallible> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .context("connecting the LISTEN connection")?;
        listener
            .listen(NOTIFY_CHANNEL)
            .await
            .context("LISTEN tasktrail_events")?;

        // The checkpoint: every event up to it is acknowledged by Kafka.
        let (mut xid, mut position): (String, i64) = sqlx::query_as(
            "SELECT transaction_id::text, global_position FROM relay_checkpoint WHERE name = $1",
        )
        .bind(CHECKPOINT_NAME)
        .fetch_optional(&mut *connection)
        .await
        .context("reading the relay checkpoint")?
        .unwrap_or_else(|| ("0".to_owned(), 0));
        // Where the next read starts: after the last batch handed to the producer.
        let mut cursor = (xid.clone(), position);
        let mut in_flight: VecDeque<InFlight> = VecDeque::with_capacity(MAX_IN_FLIGHT);

        let mut publish_failures = 0_u32;
        // Checked first thing too: the broker may have lost its data while no relay ran.
        let mut check_topics = true;
        let mut last_topic_check = tokio::time::Instant::now();
        'batches: loop {
            if check_topics
                || publish_failures > 0
                || last_topic_check.elapsed() >= self.settings.topic_check_interval
            {
                check_topics = false;
                last_topic_check = tokio::time::Instant::now();
                if self
                    .republish_if_topics_lost(connection, producer, (&xid, position))
                    .await?
                {
                    // The producer's idempotence state belongs to the lost broker: start over
                    // with a new producer from the reset checkpoint.
                    anyhow::bail!("Kafka lost the relay's topics; re-publishing from the start");
                }
            }

            // A batch Kafka refused breaks out of this block with the error.
            let error = 'publish: {
                // Committed events the last read could not take yet: they wait behind an older
                // transaction that is still open (anywhere in the cluster: the snapshot's xmin is
                // global). No notification announces its end, so the relay looks again soon.
                let mut held = false;
                if in_flight.len() < MAX_IN_FLIGHT {
                    let started = tokio::time::Instant::now();
                    let rows: Vec<EventRow> = sqlx::query_as(READ_BATCH)
                        .bind(&cursor.0)
                        .bind(cursor.1)
                        .bind(self.settings.batch_size)
                        .fetch_all(&mut *connection)
                        .await
                        .context("reading a batch of events")?;
                    self.status.reads.fetch_add(1, Ordering::Relaxed);
                    if let Some(last) = rows.last() {
                        let last = (last.transaction_id.clone(), last.global_position);
                        let newest_age_ms = rows
                            .iter()
                            .map(|row| row.recorded_at)
                            .max()
                            .map(|newest| (Utc::now() - newest).num_milliseconds());
                        let read_ms = started.elapsed().as_millis();
                        let events = rows.len();
                        match self.send(producer, rows).await? {
                            Ok(deliveries) => {
                                in_flight.push_back(InFlight {
                                    last: last.clone(),
                                    events,
                                    acknowledgement: acknowledgement(deliveries),
                                    overdue_at: tokio::time::Instant::now()
                                        + self.settings.message_timeout,
                                    started,
                                    read_ms,
                                    newest_age_ms,
                                });
                                self.count_in_flight(&in_flight);
                                cursor = last;
                                // Read ahead while Kafka works on what is queued.
                                continue 'batches;
                            }
                            Err(error) => break 'publish error,
                        }
                    }
                    held = held_back(connection, &cursor.0, cursor.1).await?;
                    if in_flight.is_empty() {
                        // Held back: the older transaction's own commit usually notifies; the
                        // recheck covers one that notifies nothing.
                        let poll = if held {
                            self.settings.poll_interval.min(HELD_BACK_RECHECK)
                        } else {
                            self.settings.poll_interval
                        };
                        wait_for_events(&mut listener, poll).await;
                        continue 'batches;
                    }
                }

                // As many batches in flight as allowed, or nothing more to read: wait for the
                // oldest one's acknowledgement, then move the checkpoint over it. With room for
                // another batch, a commit's notification (or the recheck of held-back events)
                // reads on at once instead: those events need no earlier acknowledgement.
                let room = in_flight.len() < MAX_IN_FLIGHT;
                let Some(oldest) = in_flight.front_mut() else {
                    continue 'batches;
                };
                let waited = tokio::select! {
                    biased;
                    result = &mut oldest.acknowledgement => Waited::Acknowledged(result),
                    () = tokio::time::sleep_until(oldest.overdue_at) => Waited::Overdue,
                    () = notified(&mut listener, self.settings.poll_interval), if room => {
                        Waited::ReadAgain
                    }
                    () = tokio::time::sleep(HELD_BACK_RECHECK), if room && held => {
                        Waited::ReadAgain
                    }
                };
                let next_offsets = match waited {
                    Waited::Acknowledged(Ok(next_offsets)) => next_offsets,
                    Waited::Acknowledged(Err(error)) => break 'publish error,
                    Waited::ReadAgain => continue 'batches,
                    Waited::Overdue => {
                        oldest.overdue_at += self.settings.message_timeout;
                        let waited_ms = oldest.started.elapsed().as_millis();
                        self.still_unacknowledged(
                            connection,
                            producer,
                            (&xid, position),
                            waited_ms,
                        )
                        .await?;
                        continue 'batches;
                    }
                };
                let Some(batch) = in_flight.pop_front() else {
                    continue 'batches;
                };
                self.count_in_flight(&in_flight);
                publish_failures = 0;
                (xid, position) = self
                    .store_checkpoint(connection, batch, next_offsets, in_flight.len())
                    .await?;
                continue 'batches;
            };
            // Every later batch in flight is dropped (what of it arrives may arrive twice) and
            // reading starts again at the checkpoint.
            publish_failures = publish_failures.saturating_add(1);
            self.publish_failed(producer, error, publish_failures)
                .await?;
            in_flight.clear();
            self.count_in_flight(&in_flight);
            cursor = (xid.clone(), position);
        }
    }

    fn count_in_flight(&self, in_flight: &VecDeque<InFlight>) {
        let count = u32::try_from(in_flight.len()).unwrap_or(u32::MAX);
        self.status.in_flight.store(count, Ordering::Relaxed);
    }

    /// Stores the checkpoint (and the partitions' next offsets) after an acknowledged batch and
    /// counts it; returns the new checkpoint.
    async fn store_checkpoint(
        &self,
        connection: &mut PgConnection,
        batch: InFlight,
        next_offsets: NextOffsets,
        still_in_flight: usize,
    ) -> anyhow::Result<(String, i64)> {
        let acknowledged_at = batch.started.elapsed();
        let (topics, (partitions, offsets)): (Vec<String>, (Vec<i32>, Vec<i64>)) = next_offsets
            .into_iter()
            .map(|((topic, partition), offset)| (topic, (partition, offset)))
            .unzip();
        let (last_xid, last_position) = batch.last;
        sqlx::query(WRITE_CHECKPOINT_AND_PARTITIONS)
            .bind(CHECKPOINT_NAME)
            .bind(&last_xid)
            .bind(last_position)
            .bind(topics)
            .bind(partitions)
            .bind(offsets)
            .execute(&mut *connection)
            .await
            .context("storing the relay checkpoint")?;
        self.status
            .last_transaction_id
            .store(parse_xid(&last_xid)?, Ordering::Relaxed);
        self.status
            .last_global_position
            .store(last_position, Ordering::Relaxed);
        self.status.batches.fetch_add(1, Ordering::Relaxed);
        self.status
            .events_published
            .fetch_add(batch.events as u64, Ordering::Relaxed);
        tracing::debug!(
            events = batch.events,
            last_position,
            read_ms = batch.read_ms,
            acknowledged_ms = acknowledged_at.as_millis(),
            checkpoint_ms = (batch.started.elapsed() - acknowledged_at).as_millis(),
            in_flight = still_in_flight,
            newest_age_ms = batch.newest_age_ms,
            "relay: batch published"
        );
        Ok((last_xid, last_position))
    }

    /// Counts and logs a batch Kafka refused and pauses before it is sent again; an error when
    /// the producer must be replaced (fatal state, or [`PRODUCER_RENEWAL_FAILURES`] in a row).
    async fn publish_failed(
        &self,
        producer: &FutureProducer,
        error: anyhow::Error,
        failures: u32,
    ) -> anyhow::Result<()> {
        self.status.publish_errors.fetch_add(1, Ordering::Relaxed);
        let pause = backoff(failures);
        tracing::warn!(
            error = format!("{error:#}"),
            retry_in_ms = pause.as_millis(),
            "relay: publishing a batch failed; retrying it"
        );
        if let Some((code, reason)) = producer.client().fatal_error() {
            anyhow::bail!("the Kafka producer is in a fatal state ({code}: {reason})");
        }
        if failures >= PRODUCER_RENEWAL_FAILURES {
            // A producer can stay stuck on a broker that came back different (new producer
            // ids, lost partitions); a new one starts clean.
            return Err(error.context("replacing the Kafka producer"));
        }
        tokio::time::sleep(pause).await;
        Ok(())
    }

    /// Hands every event of the batch to the producer, in order; returns the deliveries to wait
    /// for. The inner error means Kafka refused a message (the batch may be sent again); the
    /// outer one that an envelope could not be encoded.
    async fn send(
        &self,
        producer: &FutureProducer,
        rows: Vec<EventRow>,
    ) -> anyhow::Result<anyhow::Result<Vec<(String, DeliveryFuture)>>> {
        let mut deliveries: Vec<(String, DeliveryFuture)> = Vec::with_capacity(rows.len());
        for row in rows {
            let envelope = row.into_envelope();
            let topic = format!("{}.{}", self.settings.topic_prefix, envelope.aggregate_type);
            let value = serde_json::to_vec(&envelope).context("encoding an envelope")?;
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "event_type",
                    value: Some(envelope.event_type.as_str()),
                })
                .insert(Header {
                    key: "request_id",
                    value: Some(envelope.metadata.request_id.as_str()),
                });
            let mut record = FutureRecord::to(&topic)
                .key(envelope.aggregate_id.as_str())
                .payload(&value)
                .headers(headers);
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        deliveries.push((topic, delivery));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err((error, _record)) => {
                        return Ok(Err(error).context("queueing an event for Kafka"));
                    }
                }
            }
        }
        Ok(Ok(deliveries))
    }

    /// A batch has waited a `message_timeout` more for its acknowledgement: counts a publish
    /// error and checks the broker. The error needs a new producer (fatal producer error, lost
    /// topics, PostgreSQL unreachable); otherwise the relay keeps waiting for the same messages.
    async fn still_unacknowledged(
        &self,
        connection: &mut PgConnection,
        producer: &FutureProducer,
        checkpoint: (&str, i64),
        waited_ms: u128,
    ) -> anyhow::Result<()> {
        self.status.publish_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            waited_ms,
            "relay: Kafka has not acknowledged the batch yet; still waiting"
        );
        if let Some((code, reason)) = producer.client().fatal_error() {
            anyhow::bail!("the Kafka producer is in a fatal state ({code}: {reason})");
        }
        if self
            .republish_if_topics_lost(connection, producer, checkpoint)
            .await?
        {
            anyhow::bail!("Kafka lost the relay's topics while a batch was in flight");
        }
        Ok(())
    }

    /// Checks that the relay's topics exist. When one is gone although the relay had published
    /// (`checkpoint` is past the start), Kafka lost the log: the checkpoint is reset so that every
    /// event is published again, and the topics are created. Returns whether it reset.
    async fn republish_if_topics_lost(
        &self,
        connection: &mut PgConnection,
        producer: &FutureProducer,
        checkpoint: (&str, i64),
    ) -> anyhow::Result<bool> {
        let missing = match self.missing_topics(producer).await {
            Ok(missing) => missing,
            Err(error) => {
                // Unreachable broker: publishing will fail and be retried; nothing to decide yet.
                tracing::debug!(
                    error = format!("{error:#}"),
                    "relay: cannot check the topics"
                );
                return Ok(false);
            }
        };
        if missing.is_empty() {
            return Ok(false);
        }
        let published_before = checkpoint != ("0", 0);
        if published_before {
            tracing::error!(
                missing = missing.join(","),
                checkpoint_position = checkpoint.1,
                "relay: Kafka lost topics the relay had published to (broker data loss); \
                 re-publishing every event from PostgreSQL"
            );
            sqlx::query(WRITE_CHECKPOINT)
                .bind(CHECKPOINT_NAME)
                .bind("0")
                .bind(0_i64)
                .execute(&mut *connection)
                .await
                .context("resetting the relay checkpoint")?;
            // The lost log's offsets mean nothing in the new one (which may even have other
            // partitions); the re-published batches write them again.
            sqlx::query("DELETE FROM relay_partitions")
                .execute(&mut *connection)
                .await
                .context("forgetting the lost partitions' offsets")?;
            self.status.republishes.fetch_add(1, Ordering::Relaxed);
            self.status.last_transaction_id.store(0, Ordering::Relaxed);
            self.status.last_global_position.store(0, Ordering::Relaxed);
        } else {
            tracing::info!(
                missing = missing.join(","),
                "relay: creating missing topics"
            );
        }
        self.create_topics_until_done().await;
        Ok(published_before)
    }

    /// The relay's topics the broker does not know.
    async fn missing_topics(&self, producer: &FutureProducer) -> anyhow::Result<Vec<String>> {
        let producer = producer.clone();
        let names = self.topic_names();
        tokio::task::spawn_blocking(move || {
            let metadata = producer
                .client()
                .fetch_metadata(None, Duration::from_secs(5))
                .context("fetching Kafka metadata")?;
            let known: std::collections::HashSet<&str> = metadata
                .topics()
                .iter()
                .filter(|topic| topic.error().is_none())
                .map(rdkafka::metadata::MetadataTopic::name)
                .collect();
            Ok(names
                .into_iter()
                .filter(|name| !known.contains(name.as_str()))
                .collect())
        })
        .await
        .context("the metadata task panicked")?
    }

    fn topic_names(&self) -> Vec<String> {
        AGGREGATE_TYPES
            .iter()
            .map(|aggregate_type| format!("{}.{aggregate_type}", self.settings.topic_prefix))
            .collect()
    }

    async fn create_topics_until_done(&self) {
        let mut failures = 0_u32;
        loop {
            match self.create_topics().await {
                Ok(()) => return,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let pause = backoff(failures);
                    tracing::warn!(
                        error = format!("{error:#}"),
                        retry_in_ms = pause.as_millis(),
                        "relay: cannot create the topics"
                    );
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// Creates `<prefix>.user|project|task` if missing.
    async fn create_topics(&self) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .context("creating the Kafka admin client")?;
        let names = self.topic_names();
        let topics: Vec<NewTopic<'_>> = names
            .iter()
            .map(|name| {
                NewTopic::new(
                    name,
                    self.settings.partitions,
                    TopicReplication::Fixed(self.settings.replication_factor),
                )
            })
            .collect();
        let results = admin
            .create_topics(
                &topics,
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .context("creating the Kafka topics")?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => anyhow::bail!("creating topic {topic}: {code}"),
            }
        }
        Ok(())
    }
}

/// Resolves when Kafka acknowledged every delivery of a batch, with the offset after the last
/// acknowledged message of every partition it went to; an error when Kafka refused a message
/// (the batch may be sent again).
fn acknowledgement(deliveries: Vec<(String, DeliveryFuture)>) -> Acknowledgement {
    Box::pin(async move {
        let mut next_offsets = NextOffsets::new();
        for (topic, delivery) in deliveries {
            match delivery.await {
                Ok(Ok(delivered)) => {
                    let next = next_offsets
                        .entry((topic, delivered.partition))
                        .or_default();
                    *next = (*next).max(delivered.offset + 1);
                }
                Ok(Err((error, _message))) => {
                    return Err(error).context("Kafka did not acknowledge an event");
                }
                Err(_canceled) => anyhow::bail!("the Kafka producer dropped a delivery"),
            }
        }
        Ok(next_offsets)
    })
}

/// Waits for a notification or `poll`, whichever comes first.
async fn wait_for_events(listener: &mut PgListener, poll: Duration) {
    let _elapsed = tokio::time::timeout(poll, notified(listener, poll)).await;
}

/// Resolves on a notification of committed events (the buffered ones coalesced). A failed
/// LISTEN connection resolves after `pause` instead: reading again finds what it missed.
async fn notified(listener: &mut PgListener, pause: Duration) {
    match listener.recv().await {
        Ok(_notification) => while listener.next_buffered().is_some() {},
        Err(error) => {
            tracing::warn!(error = %error, "relay: LISTEN connection failed; polling");
            tokio::time::sleep(pause).await;
        }
    }
}

/// Whether committed events exist after the checkpoint (the batch read found none below xmin).
async fn held_back(
    connection: &mut PgConnection,
    xid: &str,
    position: i64,
) -> anyhow::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM events
                         WHERE (transaction_id, global_position) > ($1::text::xid8, $2))",
    )
    .bind(xid)
    .bind(position)
    .fetch_one(connection)
    .await
    .context("looking for held-back events")
}

/// Drops a producer on a blocking thread: librdkafka's destructor flushes and can wait for an
/// unreachable broker.
fn drop_producer(producer: FutureProducer) {
    drop(tokio::task::spawn_blocking(move || drop(producer)));
}

/// 100 ms, 200 ms, 400 ms, … capped at [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(6);
    Duration::from_millis(100 * (1_u64 << exponent)).min(MAX_BACKOFF)
}

/// The relay's `/metrics`: its lag read from PostgreSQL positions (the same on every instance)
/// and, when this instance hosts a relay, its counters.
#[derive(Debug, Clone)]
pub struct RelayMetrics {
    pool: PgPool,
    status: Option<Arc<RelayStatus>>,
}

impl RelayMetrics {
    #[must_use]
    pub fn new(pool: PgPool, status: Option<Arc<RelayStatus>>) -> Self {
        Self { pool, status }
    }
}

impl service_runtime::metrics::Collect for RelayMetrics {
    fn collect<'a>(
        &'a self,
        out: &'a mut service_runtime::metrics::Exposition,
    ) -> futures::future::BoxFuture<'a, ()> {
        Box::pin(async move {
            match lag(&self.pool).await {
                Ok(lag) => {
                    #[expect(
                        clippy::cast_precision_loss,
                        reason = "a gauge is a float; lags stay far below 2^53"
                    )]
                    let events = lag.events as f64;
                    out.gauge(
                        "tasktrail_relay_lag_events",
                        "Committed events after the relay's checkpoint (not yet acknowledged by Kafka).",
                        events,
                    );
                    out.gauge(
                        "tasktrail_relay_lag_seconds",
                        "Age of the oldest committed event not yet acknowledged by Kafka.",
                        lag.seconds,
                    );
                }
                Err(error) => out.error("tasktrail_relay_lag", &format!("{error:#}")),
            }
            let Some(status) = &self.status else {
                return;
            };
            out.gauge(
                "tasktrail_relay_active",
                "1 when this instance holds the relay lock and publishes.",
                if status.is_active() { 1.0 } else { 0.0 },
            );
            out.counter(
                "tasktrail_relay_batches_total",
                "Batches this instance published and checkpointed.",
                status.batches(),
            );
            out.counter(
                "tasktrail_relay_events_published_total",
                "Events this instance published and checkpointed.",
                status.events_published(),
            );
            out.counter(
                "tasktrail_relay_publish_errors_total",
                "Failed attempts to publish a batch (each is retried).",
                status.publish_errors(),
            );
            out.gauge(
                "tasktrail_relay_batches_in_flight",
                "Batches handed to Kafka and not yet acknowledged.",
                f64::from(status.in_flight()),
            );
            out.counter(
                "tasktrail_relay_republishes_total",
                "Times Kafka had lost the relay's topics and the relay re-published from the first event.",
                status.republishes(),
            );
        })
    }
}

/// The `relay` check of `/readyz`: fails while the relay is further behind than its bound.
#[derive(Debug, Clone)]
pub struct LagBound {
    pub pool: PgPool,
    /// More unpublished events than this is "behind".
    pub max_events: i64,
    /// An unpublished event older than this is "behind".
    pub max_seconds: f64,
}

impl service_runtime::health::Check for LagBound {
    fn name(&self) -> &'static str {
        "relay"
    }

    fn check(&self) -> futures::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let lag = lag(&self.pool).await.map_err(|e| format!("{e:#}"))?;
            if lag.events > self.max_events || lag.seconds > self.max_seconds {
                Err(format!(
                    "behind by {} events, oldest {:.1}s (bounds: {} events, {}s)",
                    lag.events, lag.seconds, self.max_events, self.max_seconds
                ))
            } else {
                Ok(())
            }
        })
    }
}

//! `projector run`: the Kafka consumer group over the three topics.
//!
//! Messages are read in batches: the first that arrives, then every message already received
//! (up to `batch_size`), with no timer in between. A batch is applied whole by
//! [`Store::apply_batch`] (one MongoDB transaction, one Redis pipeline); offsets are committed
//! only after it succeeded.
//! A batch that fails (a server down) is retried with backoff and never committed half-done.
//! The active generation is re-read (cached ≤ 1 s) for every batch, so a replay's swap is
//! followed within a batch.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use event_store::read::Envelope;
use futures::FutureExt as _;
use rdkafka::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use read_model::{ActiveGeneration, Generation};
use tokio_util::sync::CancellationToken;

use crate::settings::ProjectorSettings;
use crate::store::{BatchOptions, Store};

/// Counters of the live projector, for `/metrics`.
#[derive(Debug, Default)]
pub struct LiveStatus {
    /// Events applied.
    pub applied: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
    /// Messages that were not an envelope at all (skipped, logged).
    pub undecodable: AtomicU64,
    /// Batches that failed and were retried.
    pub failures: AtomicU64,
    /// The generation whose indexes this process ensured (0: none yet).
    pub indexed: AtomicU64,
}

struct Received {
    topic: String,
    partition: i32,
    offset: i64,
    payload: Option<Vec<u8>>,
}

/// The consumer of the projector's group.
///
/// # Errors
/// A configuration librdkafka refuses.
pub fn consumer(
    brokers: &str,
    settings: &ProjectorSettings,
) -> anyhow::Result<StreamConsumer<Rebalances>> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", &settings.group_id)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set(
            "session.timeout.ms",
            settings.session_timeout_ms.to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            settings.heartbeat_interval_ms.to_string(),
        )
        .set("topic.metadata.refresh.interval.ms", "2000")
        // How long the broker may hold a fetch that found nothing. A broker that answers a
        // fetch as soon as data arrives (Apache Kafka) makes this only the idle poll; one that
        // holds it for the whole wait (the development broker) adds up to this much lag.
        .set("fetch.wait.max.ms", settings.fetch_wait_max_ms.to_string())
        // A backlog comes in fewer, bigger fetches (librdkafka's default is 1 MiB a partition).
        .set("max.partition.fetch.bytes", "16777216")
        .create_with_context(Rebalances)
        .context("creating the projector's Kafka consumer")
}

/// Logs every partition assignment and revocation of the projector's consumer (what an
/// operator looks at when a partition seems not to be consumed).
#[derive(Debug, Clone, Copy)]
pub struct Rebalances;

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = |list: &TopicPartitionList| {
            list.elements()
                .iter()
                .map(|p| format!("{}[{}]", p.topic(), p.partition()))
                .collect::<Vec<_>>()
                .join(",")
        };
        match rebalance {
            Rebalance::Assign(list) => {
                tracing::info!(partitions = partitions(list), "projector: assigned");
            }
            Rebalance::Revoke(list) => {
                tracing::info!(partitions = partitions(list), "projector: revoked");
            }
            Rebalance::Error(error) => {
                tracing::warn!(error = %error, "projector: rebalance failed");
            }
        }
    }
}

/// Consumes until `stop` is cancelled.
///
/// # Errors
/// The consumer cannot be created or subscribed.
pub async fn run(
    store: Store,
    brokers: String,
    topic_prefix: String,
    settings: ProjectorSettings,
    status: Arc<LiveStatus>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let consumer = consumer(&brokers, &settings)?;
    let topics = relay::topics::names(&topic_prefix);
    // Subscribing before the relay created the topics leaves them out of the group's first
    // assignment on some brokers: wait until every topic has its partitions.
    let mut waiting_logged = false;
    loop {
        let probe = consumer_probe(&brokers, &topics).await;
        if probe {
            break;
        }
        if !waiting_logged {
            tracing::info!(
                topics = topics.join(","),
                "projector: waiting for the topics to exist"
            );
            waiting_logged = true;
        }
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topic_refs)
        .context("subscribing to the event topics")?;
    tracing::info!(
        group = settings.group_id,
        topics = topics.join(","),
        "projector: consuming"
    );
    let generations = ActiveGeneration::new(store.db.clone());
    let result = consume(&consumer, &store, &generations, &settings, &status, &stop).await;
    // Closing a consumer can hang on the dev broker: never block the runtime on it.
    drop(tokio::task::spawn_blocking(move || drop(consumer)));
    result
}

/// Whether every topic exists with at least one partition.
async fn consumer_probe(brokers: &str, topics: &[String]) -> bool {
    let brokers = brokers.to_owned();
    let topics = topics.to_vec();
    tokio::task::spawn_blocking(move || {
        let Ok(client) = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create::<BaseConsumer>()
        else {
            return false;
        };
        let Ok(metadata) = client.fetch_metadata(None, Duration::from_secs(5)) else {
            return false;
        };
        topics.iter().all(|name| {
            metadata.topics().iter().any(|topic| {
                topic.name() == name && topic.error().is_none() && !topic.partitions().is_empty()
            })
        })
    })
    .await
    .unwrap_or(false)
}

async fn consume(
    consumer: &StreamConsumer<Rebalances>,
    store: &Store,
    generations: &ActiveGeneration,
    settings: &ProjectorSettings,
    status: &LiveStatus,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let first = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            message = consumer.recv() => message,
        };
        let mut batch = Vec::with_capacity(settings.batch_size);
        match first {
            Ok(message) => batch.push(owned(&message)),
            Err(error) => {
                tracing::warn!(error = %error, "projector: Kafka error");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        }
        // Then whatever has already arrived, without waiting for more: a lone event is applied
        // at once, and a backlog fills whole batches.
        while batch.len() < settings.batch_size {
            match consumer.recv().now_or_never() {
                Some(Ok(message)) => batch.push(owned(&message)),
                Some(Err(error)) => {
                    tracing::warn!(error = %error, "projector: Kafka error");
                    break;
                }
                None => break,
            }
        }
        let mut failures = 0_u32;
        let started = std::time::Instant::now();
        tracing::debug!(messages = batch.len(), "projector: batch received");
        loop {
            match process(store, generations, status, &batch).await {
                Ok(()) => {
                    tracing::debug!(
                        messages = batch.len(),
                        elapsed_ms = started.elapsed().as_millis(),
                        "projector: batch applied"
                    );
                    break;
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    status.failures.fetch_add(1, Ordering::Relaxed);
                    let pause = backoff(failures);
                    tracing::warn!(
                        error = format!("{error:#}"),
                        retry_in_ms = pause.as_millis(),
                        "projector: applying a batch failed; retrying it"
                    );
                    tokio::select! {
                        () = stop.cancelled() => return Ok(()),
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
        commit(consumer, &batch)?;
        status.batches.fetch_add(1, Ordering::Relaxed);
    }
}

fn owned(message: &rdkafka::message::BorrowedMessage<'_>) -> Received {
    Received {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        payload: message.payload().map(<[u8]>::to_vec),
    }
}

fn commit(consumer: &StreamConsumer<Rebalances>, batch: &[Received]) -> anyhow::Result<()> {
    let mut next: HashMap<(&str, i32), i64> = HashMap::new();
    for message in batch {
        let entry = next
            .entry((message.topic.as_str(), message.partition))
            .or_insert(0);
        *entry = (*entry).max(message.offset + 1);
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        list.add_partition_offset(topic, partition, Offset::Offset(offset))
            .context("building the offsets to commit")?;
    }
    consumer
        .commit(&list, CommitMode::Async)
        .context("committing offsets")
}

/// Applies one batch of messages (all of it, or an error).
async fn process(
    store: &Store,
    generations: &ActiveGeneration,
    status: &LiveStatus,
    batch: &[Received],
) -> anyhow::Result<()> {
    let mut envelopes = Vec::with_capacity(batch.len());
    for message in batch {
        match message
            .payload
            .as_deref()
            .map(serde_json::from_slice::<Envelope>)
        {
            Some(Ok(envelope)) => envelopes.push(envelope),
            Some(Err(error)) => {
                status.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    topic = message.topic,
                    partition = message.partition,
                    offset = message.offset,
                    error = %error,
                    "projector: a message is not an event envelope; skipped"
                );
            }
            None => {
                status.undecodable.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    if envelopes.is_empty() {
        return Ok(());
    }
    let generation = generations.get().await?;
    if status.indexed.load(Ordering::Relaxed) != generation {
        // The generation the projector writes has its indexes before its first batch (a replay
        // creates those of the one it builds; this covers the first start and an upgrade).
        read_model::ensure_indexes(&store.db, generation).await?;
        status.indexed.store(generation, Ordering::Relaxed);
    }
    let newest = envelopes.iter().map(|e| e.occurred_at).max();
    let applied = store
        .apply_batch(generation, envelopes, BatchOptions::live())
        .await?;
    status.applied.fetch_add(applied.applied, Ordering::Relaxed);
    if let Some(newest) = newest {
        // From the command's commit to its read models: the read-your-writes lag of this batch.
        tracing::debug!(
            newest_age_ms = (chrono::Utc::now() - newest).num_milliseconds(),
            "projector: batch visible"
        );
    }
    Ok(())
}

/// The periodic deadline job: overdue notifications for open tasks past their due date.
///
/// # Errors
/// Never (errors are logged and retried at the next tick).
pub async fn deadline_job(
    store: Store,
    interval: Duration,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut ticks = tokio::time::interval(interval);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            _instant = ticks.tick() => {}
        }
        let today = chrono::Utc::now().date_naive();
        let outcome = async {
            let generation = Generation::active(&store.db).await?;
            store.overdue_pass(generation, today, true).await
        }
        .await;
        match outcome {
            Ok(overdue) => tracing::debug!(overdue, "projector: deadline pass done"),
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "projector: deadline pass failed"
                );
            }
        }
    }
}

/// 100 ms, 200 ms, 400 ms, … capped at 5 s.
fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(6);
    Duration::from_millis(100 * (1_u64 << exponent)).min(Duration::from_secs(5))
}

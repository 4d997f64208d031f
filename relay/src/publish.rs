//! [`Relay`]: the publish loop. It holds the lock, reads batches in commit order, hands them
//! to the producer, and moves the checkpoint over each once Kafka acknowledged it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use event_store::NOTIFY_CHANNEL;
use event_store::read::{self, Position};
use rdkafka::producer::{FutureProducer, Producer as _};
use sqlx::postgres::{PgConnection, PgListener};
use sqlx::{Connection as _, PgPool};

use crate::checkpoint::{self, NextOffsets};
use crate::producer::{self, Acknowledgement, Sent};
use crate::{ADVISORY_LOCK_KEY, MAX_IN_FLIGHT, RelaySettings, RelayStatus, topics};

/// How soon the relay reads again while committed events are held back by an open transaction.
const HELD_BACK_RECHECK: Duration = Duration::from_millis(50);

/// Consecutive failed publishes of one batch after which the producer is replaced.
const PRODUCER_RENEWAL_FAILURES: u32 = 3;

/// The longest pause between two attempts after an error.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A batch handed to the producer, waiting for Kafka's acknowledgement.
struct InFlight {
    /// The position of its last event: the checkpoint once it is acknowledged (and every batch
    /// before it).
    last: Position,
    events: usize,
    /// It took as many events as a batch may hold: a backlog, which the relay reads on behind.
    full: bool,
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

/// Whether the relay may read and send another batch while these await their acknowledgement:
/// when none does, or behind a full batch (a backlog) with fewer than [`MAX_IN_FLIGHT`] open.
///
/// Not behind a partial batch: its events sit in the idempotent producer's queue until the
/// broker has acknowledged the earlier ones anyway (librdkafka keeps at most five messages of a
/// partition in flight), and meanwhile its broker thread polls with a zero timeout. Under load
/// that cost the command API a quarter of its CPU; waiting for the acknowledgement instead
/// sends what was committed meanwhile as one bigger batch.
fn may_read_on(in_flight: &VecDeque<InFlight>) -> bool {
    in_flight.len() < MAX_IN_FLIGHT && in_flight.back().is_none_or(|batch| batch.full)
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
        drop(producer::create(&self.brokers)?);
        let result = tokio::select! {
            () = shutdown => Ok(()),
            result = self.run_forever() => result,
        };
        self.status.active.store(false, Ordering::Relaxed);
        result
    }

    async fn run_forever(&self) -> anyhow::Result<()> {
        let mut failures = 0_u32;
        loop {
            let mut connection = self.lock().await;
            self.status.active.store(true, Ordering::Relaxed);
            tracing::info!("relay: this instance is the active relay");
            let producer = producer::create(&self.brokers)?;
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
            producer::drop_later(producer);
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
    /// Behind a full batch (a backlog), up to [`MAX_IN_FLIGHT`] batches are on their way to
    /// Kafka at once: the relay reads and queues the next batch while the broker acknowledges
    /// the earlier ones. A batch that took all there was (the live tail) is the last one sent
    /// until everything in flight is acknowledged: what is committed meanwhile goes out after
    /// it, as one batch (see [`may_read_on`]). The checkpoint moves over the batches strictly in
    /// order, each only after its own acknowledgement. A failed batch drops every later one
    /// still in flight (their messages may arrive twice, which consumers ignore by sequence) and
    /// reading starts again from the checkpoint.
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
        let mut checkpoint = checkpoint::read(&mut *connection)
            .await?
            .unwrap_or_else(Position::start);
        // Where the next read starts: after the last batch handed to the producer.
        let mut cursor = checkpoint.clone();
        let mut in_flight: VecDeque<InFlight> = VecDeque::with_capacity(MAX_IN_FLIGHT);
        // When the next read may start (see `RelaySettings::batch_window`).
        let mut next_read = tokio::time::Instant::now();

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
                    .republish_if_topics_lost(connection, producer, &checkpoint)
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
                if may_read_on(&in_flight) {
                    tokio::time::sleep_until(next_read).await;
                    let started = tokio::time::Instant::now();
                    let events = read::after(&mut *connection, &cursor, self.settings.batch_size)
                        .await
                        .context("reading a batch of events")?;
                    self.status.reads.fetch_add(1, Ordering::Relaxed);
                    let full =
                        i64::try_from(events.len()).is_ok_and(|n| n >= self.settings.batch_size);
                    next_read = if full {
                        started
                    } else {
                        started + self.settings.batch_window
                    };
                    if let Some((last, _)) = events.last() {
                        let last = last.clone();
                        let newest_age_ms = events
                            .iter()
                            .map(|(_, envelope)| envelope.occurred_at)
                            .max()
                            .map(|newest| (Utc::now() - newest).num_milliseconds());
                        let read_ms = started.elapsed().as_millis();
                        let count = events.len();
                        match producer::send(producer, &self.settings.topic_prefix, events).await? {
                            Sent::Queued(deliveries) => {
                                in_flight.push_back(InFlight {
                                    last: last.clone(),
                                    events: count,
                                    full,
                                    acknowledgement: producer::acknowledgement(deliveries),
                                    overdue_at: tokio::time::Instant::now()
                                        + self.settings.message_timeout,
                                    started,
                                    read_ms,
                                    newest_age_ms,
                                });
                                self.count_in_flight(&in_flight);
                                cursor = last;
                                if full {
                                    // Read ahead while Kafka works on what is queued.
                                    continue 'batches;
                                }
                                // The read took all there was: wait for the next commit's
                                // notification (or this batch's acknowledgement) rather than
                                // read again at once to find nothing. Events behind an older
                                // open transaction may have been left out: look again after the
                                // recheck interval at the latest.
                                held = true;
                            }
                            Sent::Refused(error) => break 'publish error,
                        }
                    } else {
                        held = read::held_back(&mut *connection, &cursor).await?;
                    }
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

                // As many batches in flight as allowed, the live tail in flight, or nothing more
                // to read: wait for the oldest one's acknowledgement, then move the checkpoint
                // over it. Behind a full batch with room for another, a commit's notification
                // (or the recheck of held-back events) reads on at once instead.
                let room = may_read_on(&in_flight);
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
                        self.still_unacknowledged(connection, producer, &checkpoint, waited_ms)
                            .await?;
                        continue 'batches;
                    }
                };
                let Some(batch) = in_flight.pop_front() else {
                    continue 'batches;
                };
                self.count_in_flight(&in_flight);
                publish_failures = 0;
                checkpoint = self
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
            cursor = checkpoint.clone();
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
    ) -> anyhow::Result<Position> {
        let acknowledged_at = batch.started.elapsed();
        checkpoint::store(connection, &batch.last, next_offsets).await?;
        let last_position = batch.last.global_position;
        self.status.last_transaction_id.store(
            checkpoint::parse_xid(&batch.last.transaction_id)?,
            Ordering::Relaxed,
        );
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
        Ok(batch.last)
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

    /// A batch has waited a `message_timeout` more for its acknowledgement: counts a publish
    /// error and checks the broker. The error needs a new producer (fatal producer error, lost
    /// topics, PostgreSQL unreachable); otherwise the relay keeps waiting for the same messages.
    async fn still_unacknowledged(
        &self,
        connection: &mut PgConnection,
        producer: &FutureProducer,
        checkpoint: &Position,
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
        checkpoint: &Position,
    ) -> anyhow::Result<bool> {
        let missing = match topics::missing(producer, &self.settings.topic_prefix).await {
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
        let published_before = !checkpoint.is_start();
        if published_before {
            tracing::error!(
                missing = missing.join(","),
                checkpoint_position = checkpoint.global_position,
                "relay: Kafka lost topics the relay had published to (broker data loss); \
                 re-publishing every event from PostgreSQL"
            );
            checkpoint::reset(connection).await?;
            self.status.republishes.fetch_add(1, Ordering::Relaxed);
            self.status.last_transaction_id.store(0, Ordering::Relaxed);
            self.status.last_global_position.store(0, Ordering::Relaxed);
        } else {
            tracing::info!(
                missing = missing.join(","),
                "relay: creating missing topics"
            );
        }
        topics::create_until_done(&self.brokers, &self.settings).await;
        Ok(published_before)
    }
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

/// 100 ms, 200 ms, 400 ms, … capped at [`MAX_BACKOFF`].
pub(crate) fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(6);
    Duration::from_millis(100 * (1_u64 << exponent)).min(MAX_BACKOFF)
}

//! The gap-safe outbox relay: publishes every committed event of the `events` table to Kafka.
//!
//! - One active relay per cluster: [`Relay::run`] holds `pg_try_advisory_lock(`[`ADVISORY_LOCK_KEY`]`)`
//!   on a dedicated connection; another instance retries every poll interval and takes over when
//!   the holder's session ends (process or task gone, connection closed).
//! - It reads with [`event_store::read::after`]: only rows of transactions older than every
//!   running one, in `(transaction_id, global_position)` order, after the checkpoint, in batches;
//!   publishes each [`event_store::read::Envelope`] as JSON to `<prefix>.<aggregate_type>`, key =
//!   aggregate id; waits for Kafka to acknowledge the whole batch, and only then stores the
//!   batch's last position in `relay_checkpoint` ([`checkpoint`]). A publish error is retried
//!   with backoff: only the unacknowledged batch can be sent twice (delivery is at-least-once).
//! - It wakes on `LISTEN tasktrail_events` ([`event_store::NOTIFY_CHANNEL`]) or the poll
//!   interval, whichever comes first. Behind a full batch (a backlog) it reads and sends on
//!   while Kafka acknowledges (up to [`MAX_IN_FLIGHT`] batches); events of the live tail
//!   committed while a batch awaits its acknowledgement go out together once it came. Under
//!   load two reads are at least [`RelaySettings::batch_window`] apart, unless the first filled
//!   a batch.
//! - Broker data loss: every `topic_check_interval` (and after a failed publish) it checks that its
//!   topics still exist ([`topics`]). A topic that vanished after the relay had published (a
//!   broker that lost its storage, or topics deleted by hand) means Kafka no longer holds the log:
//!   the relay resets its checkpoint and re-publishes every event from PostgreSQL, the source of
//!   truth. Consumers are idempotent by sequence, so the re-sent history changes no read model
//!   (ADR 0004).
//! - A producer that hit a fatal error (the idempotent producer's state no longer matches the
//!   broker's, e.g. after a broker restart) is replaced by a new one.
//!
//! The modules: [`publish`] (the loop), [`producer`] (handing batches to Kafka), [`checkpoint`] (what was acknowledged, the lag),
//! [`topics`] (creating and checking them), [`status`] and [`metrics`] (`/metrics`, `/readyz`),
//! [`kafka`] (the broker's readiness check, shared with the projector).

mod checkpoint;
pub mod kafka;
mod metrics;
mod producer;
mod publish;
mod status;
pub mod topics;

use std::time::Duration;

pub use checkpoint::{CHECKPOINT_NAME, checkpoint, lag, partition_offsets};
pub use event_store::read::Backlog as Lag;
pub use metrics::{LagBound, RelayMetrics};
pub use publish::Relay;
pub use status::RelayStatus;

/// The key of the PostgreSQL advisory lock that the active relay holds ("tasktrly" in ASCII).
pub const ADVISORY_LOCK_KEY: i64 = 0x7461_736b_7472_6c79;

/// Batches handed to the producer and not yet acknowledged, at most: behind a full batch (a
/// backlog) the relay reads and queues the next one while Kafka acknowledges the earlier ones.
/// A crash re-sends at most these.
pub const MAX_IN_FLIGHT: usize = 4;

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Topics are `<topic_prefix>.<aggregate type>`.
    pub topic_prefix: String,
    /// Events read and published per batch.
    pub batch_size: i64,
    /// The polling fallback when no notification arrives (and the lock retry interval).
    pub poll_interval: Duration,
    /// The least time from one read of the events table to the next, unless the first filled a
    /// whole batch (a backlog is read at full speed). Under load the commits of this window go
    /// out together: one read, one produce request and one checkpoint for all of them, instead
    /// of one each. An idle relay reads as soon as a commit notifies it. Zero: read on every
    /// notification.
    pub batch_window: Duration,
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
            batch_window: Duration::from_millis(5),
            partitions: 3,
            replication_factor: 1,
            topic_check_interval: Duration::from_secs(5),
            message_timeout: Duration::from_secs(30),
        }
    }
}

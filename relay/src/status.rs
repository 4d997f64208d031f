//! [`RelayStatus`]: the counters of a running relay, read by `/metrics` and `/readyz`.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};

/// What the relay did so far, for `/metrics` and `/readyz`; shared through [`Relay::status`](crate::Relay::status).
#[derive(Debug, Default)]
pub struct RelayStatus {
    pub(crate) active: AtomicBool,
    pub(crate) last_transaction_id: AtomicU64,
    pub(crate) last_global_position: AtomicI64,
    pub(crate) reads: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) events_published: AtomicU64,
    pub(crate) publish_errors: AtomicU64,
    pub(crate) republishes: AtomicU64,
    pub(crate) in_flight: AtomicU32,
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

    /// Batches handed to the producer and not yet acknowledged (at most [`MAX_IN_FLIGHT`](crate::MAX_IN_FLIGHT)).
    #[must_use]
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }
}

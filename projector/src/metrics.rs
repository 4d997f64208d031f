//! The projector's `/metrics`: lag from PostgreSQL positions, applied events, parked events.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::future::BoxFuture;
use service_runtime::metrics::{Collect, Exposition};
use sqlx::PgPool;
use tokio::sync::Mutex;

use crate::live::{self, LiveStatus};
use crate::{events, parked};

/// Collects the projector's metrics on every scrape.
#[derive(Debug)]
pub struct ProjectorMetrics {
    status: Arc<LiveStatus>,
    pool: PgPool,
    db: mongodb::Database,
    last_scrape: Mutex<(Instant, u64)>,
}

impl ProjectorMetrics {
    /// Metrics of the projector whose counters are `status`.
    #[must_use]
    pub fn new(status: Arc<LiveStatus>, pool: PgPool, db: mongodb::Database) -> Self {
        Self {
            status,
            pool,
            db,
            last_scrape: Mutex::new((Instant::now(), 0)),
        }
    }
}

impl Collect for ProjectorMetrics {
    fn collect<'a>(&'a self, out: &'a mut Exposition) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let applied = self.status.applied.load(Ordering::Relaxed);
            out.counter(
                "tasktrail_projector_events_applied_total",
                "Events applied to the read models by this member.",
                applied,
            );
            {
                let mut last = self.last_scrape.lock().await;
                let elapsed = last.0.elapsed().as_secs_f64();
                #[expect(
                    clippy::cast_precision_loss,
                    reason = "a rate; counts stay far below 2^53"
                )]
                let rate = if elapsed > 0.0 {
                    applied.saturating_sub(last.1) as f64 / elapsed
                } else {
                    0.0
                };
                *last = (Instant::now(), applied);
                out.gauge(
                    "tasktrail_projector_events_applied_per_second",
                    "Events applied per second since the previous scrape.",
                    rate,
                );
            }
            out.counter(
                "tasktrail_projector_batch_failures_total",
                "Batches that failed and were retried.",
                self.status.failures.load(Ordering::Relaxed),
            );
            out.counter(
                "tasktrail_projector_undecodable_messages_total",
                "Kafka messages that were not event envelopes (skipped).",
                self.status.undecodable.load(Ordering::Relaxed),
            );
            match live::applied_position(&self.db).await {
                Ok(applied_position) => {
                    match events::last_position(&self.pool).await {
                        #[expect(
                            clippy::cast_precision_loss,
                            reason = "Prometheus samples are floats"
                        )]
                        Ok(last) => out.gauge(
                            "tasktrail_projector_lag_events",
                            "Last global position in the event store minus the last applied one.",
                            (last - applied_position).max(0) as f64,
                        ),
                        Err(error) => out.error("tasktrail_projector_lag_events", &error),
                    }
                    match events::age_after(&self.pool, applied_position).await {
                        Ok(seconds) => out.gauge(
                            "tasktrail_projector_lag_seconds",
                            "Age of the oldest event after the last applied position.",
                            seconds,
                        ),
                        Err(error) => out.error("tasktrail_projector_lag_seconds", &error),
                    }
                }
                Err(error) => out.error("tasktrail_projector_lag_events", &error),
            }
            match parked::count(&self.db).await {
                #[expect(clippy::cast_precision_loss, reason = "Prometheus samples are floats")]
                Ok(count) => out.gauge(
                    "tasktrail_projector_parked",
                    "Aggregates parked behind a poison event.",
                    count as f64,
                ),
                Err(error) => out.error("tasktrail_projector_parked", &error),
            }
        })
    }
}

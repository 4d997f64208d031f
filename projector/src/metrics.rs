//! The projector's `/metrics`: lag (see [`crate::lag`]), applied events, parked events.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::future::BoxFuture;
use service_runtime::metrics::{Collect, Exposition};
use tokio::sync::Mutex;

use crate::lag::LagProbe;
use crate::live::LiveStatus;
use crate::parked;

/// Collects the projector's metrics on every scrape.
#[derive(Debug)]
pub struct ProjectorMetrics {
    status: Arc<LiveStatus>,
    lag: LagProbe,
    db: mongodb::Database,
    last_scrape: Mutex<(Instant, u64)>,
}

impl ProjectorMetrics {
    /// Metrics of the projector whose counters are `status`.
    #[must_use]
    pub fn new(status: Arc<LiveStatus>, lag: LagProbe, db: mongodb::Database) -> Self {
        Self {
            status,
            lag,
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
                "tasktrail_projector_batches_total",
                "Batches committed by this member (events applied / batches: the mean of events applied per batch).",
                self.status.batches.load(Ordering::Relaxed),
            );
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
            match self.lag.measure().await {
                Ok(lag) => {
                    #[expect(clippy::cast_precision_loss, reason = "Prometheus samples are floats")]
                    out.gauge(
                        "tasktrail_projector_lag_events",
                        "Events in the event store not applied yet: unpublished ones plus, per Kafka partition, the relay's last offset minus the group's committed offset.",
                        lag.events as f64,
                    );
                    match lag.seconds {
                        Some(seconds) => out.gauge(
                            "tasktrail_projector_lag_seconds",
                            "Age of the oldest event not applied yet.",
                            seconds,
                        ),
                        None => out.error(
                            "tasktrail_projector_lag_seconds",
                            &"a trailing partition's first message could not be read from Kafka",
                        ),
                    }
                }
                Err(error) => out.error("tasktrail_projector_lag_events", &format!("{error:#}")),
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

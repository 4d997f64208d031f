//! The relay's `/metrics` ([`RelayMetrics`]) and its `/readyz` check ([`LagBound`]).

use std::sync::Arc;

use sqlx::PgPool;

use crate::{RelayStatus, lag};

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

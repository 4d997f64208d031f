//! The Kafka broker's `/readyz` check, used by every service that talks to Kafka.

use std::sync::Arc;

use futures::future::BoxFuture;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use service_runtime::health::CHECK_TIMEOUT;

/// A Kafka broker answers a metadata request.
pub struct Health(Arc<BaseConsumer>);

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("kafka::Health")
    }
}

impl Health {
    /// A metadata-only client for `brokers`; it connects lazily, so this works with Kafka down.
    ///
    /// # Errors
    /// A broker list librdkafka refuses.
    pub fn connect(brokers: &str) -> anyhow::Result<Self> {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "tasktrail-readiness")
            .create()?;
        Ok(Self(Arc::new(consumer)))
    }
}

impl service_runtime::health::Check for Health {
    fn name(&self) -> &'static str {
        "kafka"
    }
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        let consumer = Arc::clone(&self.0);
        Box::pin(async move {
            // librdkafka's metadata call blocks; keep it off the async workers.
            tokio::task::spawn_blocking(move || {
                consumer
                    .fetch_metadata(None, CHECK_TIMEOUT)
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())?
        })
    }
}

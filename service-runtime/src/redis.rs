//! The Redis connection every service shares (auth state and the read models' copies): one
//! multiplexed connection that reconnects by itself, and its `/readyz` check. Behind the
//! `redis` feature, so that a crate that never talks to Redis does not build its client.

use std::time::Duration;

use anyhow::Context as _;
use futures::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::settings::RedisSettings;

/// Connects lazily (on first use), so a service starts while Redis is down; every command fails
/// fast (within about a second) while it stays down, and the manager reconnects once it is back.
pub fn connect(settings: &RedisSettings) -> anyhow::Result<ConnectionManager> {
    let client =
        redis::Client::open(settings.url.expose()).context("invalid TASKTRAIL_REDIS__URL")?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config)
        .context("creating the Redis connection manager")
}

/// Redis answers `PING` (a `/readyz` check).
#[derive(Clone)]
pub struct Health(pub ConnectionManager);

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("redis::Health")
    }
}

impl crate::health::Check for Health {
    fn name(&self) -> &'static str {
        "redis"
    }
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let mut connection = self.0.clone();
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }
}

//! The Redis connection every service shares: one multiplexed connection that reconnects by itself.

use std::time::Duration;

use anyhow::Context as _;
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

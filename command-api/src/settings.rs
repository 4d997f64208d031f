//! The command API's settings (`TASKTRAIL_*`, see `.env.example`).

use auth::AuthSettings;
use auth::rate_limit::RateLimitSettings;
use serde::Deserialize;
use service_runtime::settings::{DatabaseSettings, HttpSettings, KafkaSettings, RedisSettings};
use service_runtime::telemetry::LogSettings;

/// The port the command API listens on unless `TASKTRAIL_HTTP__PORT` says otherwise.
pub const DEFAULT_PORT: u16 = 8081;

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub http: HttpSettings,
    #[serde(default)]
    pub database: DatabaseSettings,
    #[serde(default)]
    pub redis: RedisSettings,
    #[serde(default)]
    pub kafka: KafkaSettings,
    #[serde(default)]
    pub auth: AuthSettings,
    #[serde(default)]
    pub rate_limit: RateLimitSettings,
    #[serde(default)]
    pub query_api: QueryApiSettings,
    #[serde(default)]
    pub relay: RelayConfig,
    #[serde(default)]
    pub commands: CommandsConfig,
    #[serde(default)]
    pub storage: attachment_store::StorageSettings,
    #[serde(default)]
    pub log: LogSettings,
}

/// How commands run (`TASKTRAIL_COMMANDS__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CommandsConfig {
    /// Aggregates of each type kept in memory, so a command on a recently used one loads
    /// nothing, and as many projects' access (owner, members, archived) for task commands
    /// (0: none). The commit's optimistic lock and its access check still decide, so this is
    /// safe with several command-api replicas; a stale entry costs one extra load. Memory: a
    /// user or task is well under 1 KiB, a project and its access grow with its members: 10,000
    /// of each stay in the low tens of MiB.
    pub cache_capacity: usize,
}

impl Default for CommandsConfig {
    fn default() -> Self {
        Self {
            cache_capacity: event_store::DEFAULT_CACHE_CAPACITY,
        }
    }
}

/// Where clients read what a command changed: the base of the `Location` header.
/// `TASKTRAIL_QUERY_API__PUBLIC_URL`.
#[derive(Debug, Clone, Deserialize)]
pub struct QueryApiSettings {
    #[serde(default = "default_query_api_url")]
    pub public_url: String,
}

impl Default for QueryApiSettings {
    fn default() -> Self {
        Self {
            public_url: default_query_api_url(),
        }
    }
}

fn default_query_api_url() -> String {
    "http://127.0.0.1:8082".to_owned()
}

/// The outbox relay this service hosts (`TASKTRAIL_RELAY__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RelayConfig {
    /// Run the relay in this process. Every instance may run it: one is active, the others wait.
    pub enabled: bool,
    /// Events read and published per batch (1..=10000).
    pub batch_size: i64,
    /// Polling fallback when no notification arrives, in milliseconds (>= 10).
    pub poll_interval_ms: u64,
    /// Under load, the least time between two reads of the events table, in milliseconds
    /// (0..=100): the commits of this window are published as one batch.
    pub batch_window_ms: u64,
    /// How often the relay checks that Kafka still has its topics, in milliseconds (>= 100).
    pub topic_check_interval_ms: u64,
    /// `/readyz` reports the relay as behind beyond this many unpublished events…
    pub max_lag_events: i64,
    /// …or when the oldest unpublished event is older than this many seconds.
    pub max_lag_secs: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            batch_size: 2000,
            poll_interval_ms: 1000,
            batch_window_ms: 5,
            topic_check_interval_ms: 5000,
            max_lag_events: 10_000,
            max_lag_secs: 60,
        }
    }
}

impl RelayConfig {
    /// Refuses values that cannot work, naming the variable.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=10_000).contains(&self.batch_size),
            "TASKTRAIL_RELAY__BATCH_SIZE must be between 1 and 10000 (got {})",
            self.batch_size
        );
        anyhow::ensure!(
            self.poll_interval_ms >= 10,
            "TASKTRAIL_RELAY__POLL_INTERVAL_MS must be at least 10 (got {})",
            self.poll_interval_ms
        );
        anyhow::ensure!(
            self.batch_window_ms <= 100,
            "TASKTRAIL_RELAY__BATCH_WINDOW_MS must be at most 100 (got {})",
            self.batch_window_ms
        );
        anyhow::ensure!(
            self.topic_check_interval_ms >= 100,
            "TASKTRAIL_RELAY__TOPIC_CHECK_INTERVAL_MS must be at least 100 (got {})",
            self.topic_check_interval_ms
        );
        anyhow::ensure!(
            self.max_lag_events >= 0,
            "TASKTRAIL_RELAY__MAX_LAG_EVENTS must not be negative (got {})",
            self.max_lag_events
        );
        Ok(())
    }
}

impl Settings {
    /// Defaults, then `TASKTRAIL_CONFIG_FILE`, then the environment.
    pub fn load() -> anyhow::Result<Self> {
        service_runtime::settings::load(&[("http.port", &DEFAULT_PORT.to_string())])
    }
}

//! The query API's settings (`TASKTRAIL_*`, see `.env.example`).

use std::time::Duration;

use auth::AuthSettings;
use auth::rate_limit::RateLimitSettings;
use serde::Deserialize;
use service_runtime::settings::{DatabaseSettings, HttpSettings, MongoSettings, RedisSettings};
use service_runtime::telemetry::LogSettings;

/// The port the query API listens on unless `TASKTRAIL_HTTP__PORT` says otherwise.
pub const DEFAULT_PORT: u16 = 8082;

/// Everything the query API reads at start.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Where it listens.
    pub http: HttpSettings,
    /// Read only for a task's history (its events) and revoked tokens; lists never touch the
    /// event store.
    #[serde(default)]
    pub database: DatabaseSettings,
    /// The document read models.
    #[serde(default)]
    pub mongo: MongoSettings,
    /// The hot read models (users, projects, statistics), revocations and rate limits.
    #[serde(default)]
    pub redis: RedisSettings,
    /// How tokens are verified (the query API never issues them).
    #[serde(default)]
    pub auth: AuthSettings,
    /// Requests per caller and window, shared with the command API's counters in Redis.
    #[serde(default)]
    pub rate_limit: RateLimitSettings,
    /// Read-your-writes (`min_version`).
    #[serde(default)]
    pub read: ReadSettings,
    /// `GET /stream`.
    #[serde(default)]
    pub stream: StreamSettings,
    /// Attachment storage: only to sign download URLs.
    #[serde(default)]
    pub storage: attachment_store::StorageSettings,
    /// Logging.
    #[serde(default)]
    pub log: LogSettings,
}

/// `TASKTRAIL_READ__*`: how long a request with `min_version` waits for the read model.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ReadSettings {
    /// The longest wait for `min_version` before answering 409 `read_model_behind`
    /// (`TASKTRAIL_READ__MIN_VERSION_TIMEOUT_MS`, 0..=60000).
    pub min_version_timeout_ms: u64,
    /// How often the read model is read again while waiting when no batch is announced
    /// (`TASKTRAIL_READ__POLL_INTERVAL_MS`, >= 1): a fallback; the projector's announcements
    /// wake a wait at once.
    pub poll_interval_ms: u64,
}

impl Default for ReadSettings {
    fn default() -> Self {
        Self {
            min_version_timeout_ms: 5000,
            poll_interval_ms: 100,
        }
    }
}

impl ReadSettings {
    /// The bound of a `min_version` wait.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.min_version_timeout_ms)
    }

    /// The pause between two polls of a `min_version` wait.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    /// Refuses values that cannot work, naming the variable.
    ///
    /// # Errors
    /// A timeout over a minute or a zero poll interval.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.min_version_timeout_ms <= 60_000,
            "TASKTRAIL_READ__MIN_VERSION_TIMEOUT_MS must be at most 60000 (got {})",
            self.min_version_timeout_ms
        );
        anyhow::ensure!(
            self.poll_interval_ms >= 1,
            "TASKTRAIL_READ__POLL_INTERVAL_MS must be at least 1"
        );
        Ok(())
    }
}

/// `TASKTRAIL_STREAM__*`: the server-sent events of `GET /stream`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StreamSettings {
    /// Seconds between two heartbeats of an idle stream (`HEARTBEAT_SECS`, 1..=300, default
    /// 15). Each heartbeat also checks the token again: a revoked token, a deactivated user or a
    /// changed password ends the stream within this time.
    pub heartbeat_secs: u64,
    /// Changes a stream may fall behind the feed before it is ended as too slow
    /// (`BUFFER`, 16..=100000, default 1024); its client reconnects with `Last-Event-ID` and
    /// resumes. Shared by every stream of the process: one slow client never holds the others.
    pub buffer: usize,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            heartbeat_secs: 15,
            buffer: 1024,
        }
    }
}

impl StreamSettings {
    /// The pause between two heartbeats.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs)
    }

    /// Refuses values that cannot work, naming the variable.
    ///
    /// # Errors
    /// A heartbeat or buffer out of range.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=300).contains(&self.heartbeat_secs),
            "TASKTRAIL_STREAM__HEARTBEAT_SECS must be between 1 and 300 (got {})",
            self.heartbeat_secs
        );
        anyhow::ensure!(
            (16..=100_000).contains(&self.buffer),
            "TASKTRAIL_STREAM__BUFFER must be between 16 and 100000 (got {})",
            self.buffer
        );
        Ok(())
    }
}

impl Settings {
    /// Defaults, then `TASKTRAIL_CONFIG_FILE`, then the environment.
    ///
    /// # Errors
    /// Unreadable or invalid settings.
    pub fn load() -> anyhow::Result<Self> {
        service_runtime::settings::load(&[("http.port", &DEFAULT_PORT.to_string())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_defaults_and_validation() {
        let read = ReadSettings::default();
        assert_eq!(read.timeout(), Duration::from_secs(5));
        read.validate().expect("defaults are valid");
        let too_long = ReadSettings {
            min_version_timeout_ms: 60_001,
            ..ReadSettings::default()
        };
        assert!(too_long.validate().is_err());
        let no_poll = ReadSettings {
            poll_interval_ms: 0,
            ..ReadSettings::default()
        };
        assert!(no_poll.validate().is_err());
    }
}

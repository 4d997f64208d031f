//! The query API's settings (`TASKTRAIL_*`, see `.env.example`).

use serde::Deserialize;
use service_runtime::settings::{DatabaseSettings, HttpSettings, MongoSettings, RedisSettings};
use service_runtime::telemetry::LogSettings;

/// The port the query API listens on unless `TASKTRAIL_HTTP__PORT` says otherwise.
pub const DEFAULT_PORT: u16 = 8082;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub http: HttpSettings,
    /// Read only for a task's history (its events); lists never touch the event store.
    #[serde(default)]
    pub database: DatabaseSettings,
    #[serde(default)]
    pub mongo: MongoSettings,
    #[serde(default)]
    pub redis: RedisSettings,
    #[serde(default)]
    pub log: LogSettings,
}

impl Settings {
    /// Defaults, then `TASKTRAIL_CONFIG_FILE`, then the environment.
    pub fn load() -> anyhow::Result<Self> {
        service_runtime::settings::load(&[("http.port", &DEFAULT_PORT.to_string())])
    }
}

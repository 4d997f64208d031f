//! The command API's settings (`TASKTRAIL_*`, see `.env.example`).

use serde::Deserialize;
use service_runtime::settings::{DatabaseSettings, HttpSettings, KafkaSettings, RedisSettings};
use service_runtime::telemetry::LogSettings;

/// The port the command API listens on unless `TASKTRAIL_HTTP__PORT` says otherwise.
pub const DEFAULT_PORT: u16 = 8081;

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
    pub log: LogSettings,
}

impl Settings {
    /// Defaults, then `TASKTRAIL_CONFIG_FILE`, then the environment.
    pub fn load() -> anyhow::Result<Self> {
        service_runtime::settings::load(&[("http.port", &DEFAULT_PORT.to_string())])
    }
}

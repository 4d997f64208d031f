//! The projector's settings (`TASKTRAIL_*`, see `.env.example`).

use serde::Deserialize;
use service_runtime::settings::{
    DatabaseSettings, HttpSettings, KafkaSettings, MongoSettings, RedisSettings,
};
use service_runtime::telemetry::LogSettings;

/// The port of the projector's `/healthz`, `/readyz` and `/metrics` unless `TASKTRAIL_HTTP__PORT` says otherwise.
pub const DEFAULT_PORT: u16 = 8083;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub http: HttpSettings,
    /// The event store: filling gaps and replays read it.
    #[serde(default)]
    pub database: DatabaseSettings,
    #[serde(default)]
    pub kafka: KafkaSettings,
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

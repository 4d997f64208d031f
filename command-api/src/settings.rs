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
    pub log: LogSettings,
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

impl Settings {
    /// Defaults, then `TASKTRAIL_CONFIG_FILE`, then the environment.
    pub fn load() -> anyhow::Result<Self> {
        service_runtime::settings::load(&[("http.port", &DEFAULT_PORT.to_string())])
    }
}

//! Typed settings: built-in defaults, then an optional file named by `TASKTRAIL_CONFIG_FILE`
//! (TOML, YAML or JSON), then environment variables `TASKTRAIL_<SECTION>__<KEY>`.
//!
//! Each service composes its own settings struct from the sections below and loads it with
//! [`load`]. The defaults point at the native servers that `scripts/services up` starts, so
//! a developer needs no configuration at all.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The prefix of every environment variable the services read.
pub const ENV_PREFIX: &str = "TASKTRAIL";

/// Loads `T` from `defaults`, the optional `TASKTRAIL_CONFIG_FILE` and `TASKTRAIL_*` variables.
///
/// `defaults` are the service's own (dotted keys such as `("http.port", "8081")`); nested keys in
/// the environment are separated by a double underscore: `TASKTRAIL_DATABASE__URL`.
pub fn load<T: DeserializeOwned>(defaults: &[(&str, &str)]) -> anyhow::Result<T> {
    let mut builder = config::Config::builder();
    for (key, value) in defaults {
        builder = builder
            .set_default(*key, *value)
            .with_context(|| format!("default for {key}"))?;
    }
    if let Ok(path) = std::env::var(format!("{ENV_PREFIX}_CONFIG_FILE")) {
        builder = builder.add_source(config::File::with_name(&path).required(true));
    }
    builder
        .add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true),
        )
        .build()
        .context("reading settings")?
        .try_deserialize()
        .context("invalid settings (see .env.example for every TASKTRAIL_* variable)")
}

/// A secret string: never printed by `Debug` or `Display`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call this only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where an HTTP service listens. `TASKTRAIL_HTTP__HOST`, `TASKTRAIL_HTTP__PORT` (0 picks a free port),
/// and which browser origins may call it: `TASKTRAIL_HTTP__CORS_ALLOWED_ORIGINS`, a
/// comma-separated list of origins such as `https://app.example.com` (empty, the default: no
/// CORS headers, so browsers refuse cross-origin calls).
#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    #[serde(default = "localhost")]
    pub host: IpAddr,
    pub port: u16,
    #[serde(default)]
    pub cors_allowed_origins: String,
}

impl HttpSettings {
    pub fn with_port(port: u16) -> Self {
        Self {
            host: localhost(),
            port,
            cors_allowed_origins: String::new(),
        }
    }

    /// The allowed CORS origins, each checked to be `scheme://host[:port]`.
    ///
    /// # Errors
    /// The first entry that is not an origin, naming the variable.
    pub fn cors_origins(&self) -> anyhow::Result<Vec<axum::http::HeaderValue>> {
        self.cors_allowed_origins
            .split(',')
            .map(str::trim)
            .filter(|origin| !origin.is_empty())
            .map(|origin| {
                let is_origin = origin.parse::<axum::http::Uri>().ok().is_some_and(|uri| {
                    uri.scheme().is_some()
                        && uri.host().is_some()
                        && uri.path_and_query().is_none_or(|p| p.as_str() == "/")
                        && !origin.ends_with('/')
                });
                anyhow::ensure!(
                    is_origin,
                    "TASKTRAIL_HTTP__CORS_ALLOWED_ORIGINS: {origin:?} is not an origin \
                     (scheme://host[:port], no path)"
                );
                axum::http::HeaderValue::from_str(origin)
                    .context("TASKTRAIL_HTTP__CORS_ALLOWED_ORIGINS")
            })
            .collect()
    }

    pub fn address(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }
}

fn localhost() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

/// PostgreSQL, the event store and the only source of truth. `TASKTRAIL_DATABASE__URL`, `__MAX_CONNECTIONS`.
#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    #[serde(default = "default_database_url")]
    pub url: Secret,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Seconds to wait for a connection from the pool before failing the request with 503.
    #[serde(default = "default_acquire_timeout_secs")]
    pub acquire_timeout_secs: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: default_database_url(),
            max_connections: default_max_connections(),
            acquire_timeout_secs: default_acquire_timeout_secs(),
        }
    }
}

impl DatabaseSettings {
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_secs(self.acquire_timeout_secs)
    }
}

fn default_database_url() -> Secret {
    Secret::new("postgres://postgres@127.0.0.1:5432/tasktrail")
}
fn default_max_connections() -> u32 {
    16
}
fn default_acquire_timeout_secs() -> u64 {
    3
}

/// Redis: rate limits, revoked tokens and the hot read models. `TASKTRAIL_REDIS__URL`, `__KEY_PREFIX`.
#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    #[serde(default = "default_redis_url")]
    pub url: Secret,
    /// Prepended to every key, so several deployments (or tests) can share one server.
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: default_redis_url(),
            key_prefix: default_prefix(),
        }
    }
}

fn default_redis_url() -> Secret {
    Secret::new("redis://127.0.0.1:6379")
}

fn default_prefix() -> String {
    "tasktrail".to_owned()
}

/// Kafka: the event stream between the write and the read side.
/// `TASKTRAIL_KAFKA__BROKERS`, `__TOPIC_PREFIX`, `__PARTITIONS`, `__REPLICATION_FACTOR`.
#[derive(Debug, Clone, Deserialize)]
pub struct KafkaSettings {
    #[serde(default = "default_brokers")]
    pub brokers: String,
    /// Topics are `<prefix>.<aggregate type>`, e.g. `tasktrail.task`.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    #[serde(default = "default_replication_factor")]
    pub replication_factor: i32,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: default_brokers(),
            topic_prefix: default_prefix(),
            partitions: default_partitions(),
            replication_factor: default_replication_factor(),
        }
    }
}

fn default_brokers() -> String {
    "127.0.0.1:9092".to_owned()
}
fn default_partitions() -> i32 {
    3
}
fn default_replication_factor() -> i32 {
    1
}

/// MongoDB: the document read models. `TASKTRAIL_MONGO__URL`, `__DATABASE`.
#[derive(Debug, Clone, Deserialize)]
pub struct MongoSettings {
    #[serde(default = "default_mongo_url")]
    pub url: Secret,
    #[serde(default = "default_prefix")]
    pub database: String,
}

impl Default for MongoSettings {
    fn default() -> Self {
        Self {
            url: default_mongo_url(),
            database: default_prefix(),
        }
    }
}

fn default_mongo_url() -> Secret {
    Secret::new(
        "mongodb://127.0.0.1:27017/?directConnection=true&retryWrites=false&serverSelectionTimeoutMS=3000",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_not_printed() {
        let settings = DatabaseSettings {
            url: Secret::new("postgres://user:hunter2@db/x"),
            ..DatabaseSettings::default()
        };
        let printed = format!("{settings:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert_eq!(settings.url.expose(), "postgres://user:hunter2@db/x");
    }
}

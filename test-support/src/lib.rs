//! What the end-to-end tests share. Every test gets its own PostgreSQL database (cloned from a
//! migrated template), Kafka topic prefix, MongoDB database and Redis key prefix, so tests run in
//! parallel and leave nothing behind (STYLE.md, rule 14).
//!
//! The servers are the real ones that `scripts/services up` starts; their addresses come from the
//! same `TASKTRAIL_*` variables the services read (defaults: the native servers on 127.0.0.1).
//! A test that finds a server down fails with a message naming the command that starts it.
//!
//! [`workload`] generates valid event streams for the property tests and the benchmark;
//! [`fixture`] holds a store written by an earlier build, to prove it still reads. The
//! Kafka helpers are behind the `kafka` feature, so the event store's tests build no Kafka client.

#[cfg(feature = "kafka")]
pub mod broker;
pub mod fixture;
mod postgres;
pub mod sse;
pub mod workload;

use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;
use service_runtime::settings::{DatabaseSettings, KafkaSettings, MongoSettings, RedisSettings};

pub use postgres::{TestDatabase, xids_across_a_digit_boundary};

/// The command that starts every server the tests need.
pub const START_SERVERS: &str = "scripts/services up && source .services/env";

/// The server addresses, from `TASKTRAIL_*` variables or the native defaults.
#[derive(Debug, Clone, Deserialize)]
pub struct Servers {
    #[serde(default)]
    pub database: DatabaseSettings,
    #[serde(default)]
    pub redis: RedisSettings,
    #[serde(default)]
    pub kafka: KafkaSettings,
    #[serde(default)]
    pub mongo: MongoSettings,
    #[serde(default)]
    pub storage: attachment_store::StorageSettings,
}

impl Servers {
    /// The tests' Redis, with every key under `prefix`.
    #[must_use]
    pub fn redis_with_prefix(&self, prefix: &str) -> RedisSettings {
        RedisSettings {
            key_prefix: prefix.to_owned(),
            ..self.redis.clone()
        }
    }

    /// The tests' attachment storage (the bucket `scripts/services` made), with every key
    /// under `prefix`. Panics, naming the command that starts it, when none is configured.
    #[must_use]
    pub fn storage_with_prefix(&self, prefix: &str) -> attachment_store::StorageSettings {
        assert!(
            self.storage.configured(),
            "no attachment storage is configured (TASKTRAIL_STORAGE__ACCESS_KEY_ID); start it with: {START_SERVERS}"
        );
        attachment_store::StorageSettings {
            prefix: prefix.to_owned(),
            ..self.storage.clone()
        }
    }

    /// The tests' MongoDB, using the database `name`.
    #[must_use]
    pub fn mongo_database(&self, name: &str) -> MongoSettings {
        MongoSettings {
            database: name.to_owned(),
            ..self.mongo.clone()
        }
    }
}

/// The servers of this test run (read once).
pub fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| {
        service_runtime::settings::load(&[])
            .unwrap_or_else(|error| panic!("test settings: {error:#}"))
    })
}

/// A name no other test (or test run) uses: `<label>_<random>`, lowercase, safe for database
/// names, topic prefixes and key prefixes.
pub fn unique_name(label: &str) -> String {
    format!("{label}_{}", uuid::Uuid::new_v4().simple())
}

/// Panics with a message that names the server, its address and how to start it.
pub fn server_down(server: &str, address: &str, error: impl std::fmt::Display) -> ! {
    panic!(
        "{server} is not reachable at {address}: {error}\n\
         The end-to-end tests need the real servers; start them with `{START_SERVERS}`."
    )
}

/// How long a test waits for something that should happen soon (a message, a projection).
pub const EVENTUALLY: Duration = Duration::from_secs(30);

/// Retries `check` every 50 ms until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Drops `value` (e.g. a Kafka consumer, whose close can hang on the dev broker) on a thread of
/// its own and waits at most `timeout` for it; past that the thread is left to finish alone.
pub fn drop_within<T: Send + 'static>(value: T, timeout: Duration) {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(value);
        let _ignored = done.send(());
    });
    let _timed_out = finished.recv_timeout(timeout);
}

/// Serves `server` in the background for the rest of the test; returns its base URL.
pub fn spawn(server: service_runtime::http::Server) -> String {
    let url = format!("http://127.0.0.1:{}", server.port());
    tokio::spawn(server.run_until_stopped(std::future::pending()));
    url
}

/// `GET url`, returning the status and the JSON body.
pub async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let body = response
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: body is not JSON: {e}"));
    (status, body)
}

/// An address on which nothing listens (a port that was just bound and released): a dependency
/// that is down, for readiness tests.
pub fn dead_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let address = listener.local_addr().expect("local address");
    drop(listener);
    address.to_string()
}

#[cfg(feature = "kafka")]
/// A consumer in a group of its own that reads from the earliest offset and commits nothing by
/// itself. Close it with [`drop_within`].
pub fn kafka_consumer(group_label: &str) -> rdkafka::consumer::StreamConsumer {
    kafka_consumer_at(&servers().kafka.brokers, group_label)
}

#[cfg(feature = "kafka")]
/// [`kafka_consumer`] for the broker at `brokers` (e.g. a [`broker::PrivateBroker`]).
pub fn kafka_consumer_at(brokers: &str, group_label: &str) -> rdkafka::consumer::StreamConsumer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique_name(group_label))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        // The dev broker holds a group's first join for about the session timeout: a short one
        // makes the join take ~5 s instead of ~23 s.
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .unwrap_or_else(|e| panic!("creating a Kafka consumer: {e}"))
}

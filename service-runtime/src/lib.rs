//! How every tasktrail process starts, logs, reports its health and stops.
//!
//! - [`settings`]: typed settings from defaults, an optional file and `TASKTRAIL_*` variables.
//! - [`telemetry`]: `tracing` subscriber, pretty or JSON.
//! - [`shutdown`]: a future that resolves on SIGTERM or SIGINT.
//! - [`error`]: the JSON error body of every API and [`error::HttpError`], the error both answer with.
//! - [`extract`]: the extractors both APIs share (JSON body, path, query), rejecting with it.
//! - [`health`]: `GET /healthz` and `GET /readyz` with one check per dependency.
//! - [`metrics`]: `GET /metrics` in the Prometheus text format.
//! - [`http`]: binding, request ids, request spans and graceful serving.
//! - [`openapi`]: the modifiers every OpenAPI document uses (errors, bearer auth) and `/docs`.
//! - [`redis`] (feature `redis`): the shared Redis connection, lazy so a service starts while
//!   Redis is down, and its check.
//!
//! It depends on no other server's driver: PostgreSQL's pool and check live in `event-store`,
//! MongoDB's in `read-model`, Kafka's in `relay`.

pub mod error;
pub mod extract;
pub mod health;
pub mod http;
pub mod metrics;
pub mod openapi;
#[cfg(feature = "redis")]
pub mod redis;
pub mod settings;
pub mod shutdown;
pub mod telemetry;

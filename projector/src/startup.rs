//! Builds the projector's process from its settings.

use std::sync::Arc;
use std::time::Duration;

use service_runtime::health::Readiness;
use service_runtime::http::Server;
use service_runtime::metrics::Metrics;

use crate::lag::LagProbe;
use crate::live::{self, LiveStatus};
use crate::metrics::ProjectorMetrics;
use crate::settings::Settings;
use crate::store::Store;

/// Connects (lazily) to the event store, MongoDB and Redis.
///
/// # Errors
/// An invalid URL.
pub async fn store(settings: &Settings) -> anyhow::Result<Store> {
    let pool = event_store::connect_lazy(&settings.database)?;
    let mongo = read_model::mongo::connect(&settings.mongo).await?;
    let redis = service_runtime::redis::connect(&settings.redis)?;
    Ok(Store {
        db: mongo.database(&settings.mongo.database),
        redis,
        prefix: settings.redis.key_prefix.clone(),
        pool,
        stream_max_len: settings.projector.stream_max_len,
    })
}

/// The projector (`projector run`): its HTTP side (`/healthz`, `/readyz`, `/metrics`), bound
/// and ready to serve, hosting the Kafka consumer and the deadline job. Dependencies connect
/// lazily: one that is down shows on `/readyz`, and the consumer retries.
///
/// # Errors
/// An invalid setting or a port that cannot be bound.
pub async fn build(settings: Settings) -> anyhow::Result<Server> {
    let store = store(&settings).await?;
    let status = Arc::new(LiveStatus::default());
    let readiness = Readiness::new()
        .with(relay::kafka::Health::connect(&settings.kafka.brokers)?)
        .with(read_model::mongo::Health(store.db.client().clone()))
        .with(service_runtime::redis::Health(store.redis.clone()))
        .with(event_store::Postgres(store.pool.clone()));
    let lag = LagProbe::new(
        store.pool.clone(),
        &settings.kafka.brokers,
        &settings.projector.group_id,
        relay::topics::names(&settings.kafka.topic_prefix),
    )?;
    let metrics = Metrics::new().with(ProjectorMetrics::new(
        Arc::clone(&status),
        lag,
        store.db.clone(),
    ));
    let router = service_runtime::http::operations(readiness, metrics);
    let mut server = Server::bind(&settings.http, router).await?;
    let consumer_store = store.clone();
    let brokers = settings.kafka.brokers.clone();
    let prefix = settings.kafka.topic_prefix.clone();
    let projector = settings.projector.clone();
    server.spawn_task("projector", move |stop| {
        live::run(consumer_store, brokers, prefix, projector, status, stop)
    });
    let interval = Duration::from_secs(settings.projector.deadline_interval_secs.max(1));
    server.spawn_task("deadline job", move |stop| {
        live::deadline_job(store, interval, stop)
    });
    Ok(server)
}

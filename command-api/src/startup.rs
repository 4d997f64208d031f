//! Builds the command API from its settings and runs it until shutdown.

use axum::Router;
use service_runtime::health::{self, Readiness};
use service_runtime::http::Server;

use crate::settings::Settings;

/// Applies the migrations (PostgreSQL must be up: the command API cannot work without its
/// schema), connects to Redis and Kafka lazily (one that is down shows on `/readyz`), and binds.
pub async fn build(settings: Settings) -> anyhow::Result<Server> {
    let pool = event_store::connect_lazy(&settings.database)?;
    event_store::migrate(&pool).await?;
    let redis = service_runtime::redis::connect(&settings.redis)?;
    let readiness = Readiness::new()
        .with(health::Postgres(pool))
        .with(health::Redis(redis))
        .with(health::Kafka::connect(&settings.kafka.brokers)?);
    let router = Router::new().merge(health::router(readiness));
    Server::bind(&settings.http, router).await
}

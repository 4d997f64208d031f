//! Builds the projector's process from its settings.

use axum::Router;
use service_runtime::health::{self, Readiness};
use service_runtime::http::Server;

use crate::settings::Settings;

/// The projector's HTTP side (`/healthz`, `/readyz`), bound and ready to serve.
/// Dependencies connect lazily: one that is down shows on `/readyz`.
pub async fn build(settings: Settings) -> anyhow::Result<Server> {
    let pool = event_store::connect_lazy(&settings.database)?;
    let mongo = service_runtime::mongo::connect(&settings.mongo).await?;
    let redis = service_runtime::redis::connect(&settings.redis)?;
    let readiness = Readiness::new()
        .with(health::Kafka::connect(&settings.kafka.brokers)?)
        .with(health::Mongo(mongo))
        .with(health::Redis(redis))
        .with(health::Postgres(pool));
    let router = Router::new().merge(health::router(readiness));
    Server::bind(&settings.http, router).await
}

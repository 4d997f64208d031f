//! The MongoDB client of the read side and its `/readyz` check.

use anyhow::Context as _;
use futures::future::BoxFuture;
use service_runtime::settings::MongoSettings;

/// Parses the URL and builds a client; it connects on first use, so a service starts while
/// MongoDB is down. Put `serverSelectionTimeoutMS` in the URL to bound how long a call waits.
pub async fn connect(settings: &MongoSettings) -> anyhow::Result<mongodb::Client> {
    let options = mongodb::options::ClientOptions::parse(settings.url.expose())
        .await
        .context("invalid TASKTRAIL_MONGO__URL")?;
    mongodb::Client::with_options(options).context("creating the MongoDB client")
}

/// MongoDB answers `ping` (a `/readyz` check).
#[derive(Debug, Clone)]
pub struct Health(pub mongodb::Client);

impl service_runtime::health::Check for Health {
    fn name(&self) -> &'static str {
        "mongodb"
    }
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.0
                .database("admin")
                .run_command(mongodb::bson::doc! { "ping": 1 })
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }
}

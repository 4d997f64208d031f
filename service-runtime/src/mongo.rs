//! The MongoDB client of the read side.

use anyhow::Context as _;

use crate::settings::MongoSettings;

/// Parses the URL and builds a client; it connects on first use, so a service starts while
/// MongoDB is down. Put `serverSelectionTimeoutMS` in the URL to bound how long a call waits.
pub async fn connect(settings: &MongoSettings) -> anyhow::Result<mongodb::Client> {
    let options = mongodb::options::ClientOptions::parse(settings.url.expose())
        .await
        .context("invalid TASKTRAIL_MONGO__URL")?;
    mongodb::Client::with_options(options).context("creating the MongoDB client")
}

use anyhow::Context as _;
use tasktrail_query_api::settings::Settings;
use tasktrail_query_api::startup;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    service_runtime::telemetry::init(&settings.log);
    let server = startup::build(settings)
        .await
        .context("starting the query API")?;
    server
        .run_until_stopped(service_runtime::shutdown::signal())
        .await
}

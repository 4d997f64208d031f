use tasktrail_query_api::settings::Settings;
use tasktrail_query_api::startup;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    service_runtime::telemetry::init(&settings.log);
    service_runtime::http::run(startup::build(settings), "query API").await
}

use tasktrail_query_api::settings::Settings;
use tasktrail_query_api::startup;

/// mimalloc, as in the command API (see its `main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    service_runtime::telemetry::init(&settings.log);
    service_runtime::http::run(startup::build(settings), "query API").await
}

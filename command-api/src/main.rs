use tasktrail_command_api::settings::Settings;
use tasktrail_command_api::startup;

const USAGE: &str = "usage: command-api [migrate]\n  (no argument)  serve the command API\n  migrate        apply the database migrations and exit";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    service_runtime::telemetry::init(&settings.log);
    match std::env::args().nth(1).as_deref() {
        None => service_runtime::http::run(startup::build(settings), "command API").await,
        Some("migrate") => {
            let pool = event_store::connect_lazy(&settings.database)?;
            event_store::migrate(&pool).await
        }
        Some("-h" | "--help") => {
            tracing::info!("{USAGE}");
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown argument {other:?}\n{USAGE}"),
    }
}

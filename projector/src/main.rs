use anyhow::Context as _;
use clap::Parser as _;
use tasktrail_projector::cli::{Cli, Command};
use tasktrail_projector::settings::Settings;
use tasktrail_projector::startup;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load()?;
    service_runtime::telemetry::init(&settings.log);
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            let server = startup::build(settings)
                .await
                .context("starting the projector")?;
            server
                .run_until_stopped(service_runtime::shutdown::signal())
                .await
        }
    }
}

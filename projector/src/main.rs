use std::io::Write as _;

use anyhow::Context as _;
use clap::Parser as _;
use tasktrail_projector::cli::{Cli, Command, ParkedCommand};
use tasktrail_projector::parked::{self, Retried};
use tasktrail_projector::replay::{self, ReplayOptions};
use tasktrail_projector::settings::Settings;
use tasktrail_projector::startup;
use tokio_util::sync::CancellationToken;

/// mimalloc, as in the command API (see its `main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load()?;
    service_runtime::telemetry::init(&settings.log);
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => service_runtime::http::run(startup::build(settings), "projector").await,
        Command::Replay {
            projection,
            dry_run,
            quiet,
        } => {
            let store = startup::store(&settings).await?;
            let options = ReplayOptions {
                projection,
                dry_run,
                progress: !quiet,
                stop: CancellationToken::new(),
            };
            tokio::spawn(stop_on_signal(options.stop.clone()));
            let report = replay::replay(&store, &settings.projector, options).await;
            close(store).await;
            let report = report.context("replay failed")?;
            let mut err = std::io::stderr().lock();
            writeln!(
                err,
                "replayed {} events in {:.1} s ({:.0} events/s) into generation {}",
                report.events,
                report.elapsed.as_secs_f64(),
                report.rate(),
                report.generation
            )?;
            if dry_run {
                let mut out = std::io::stdout().lock();
                for difference in &report.differences {
                    writeln!(out, "{difference}")?;
                }
                if !report.differences.is_empty() {
                    writeln!(err, "{} differences", report.differences.len())?;
                    drop(out);
                    drop(err);
                    std::process::exit(1);
                }
                writeln!(err, "no differences")?;
            }
            Ok(())
        }
        Command::Parked { command } => {
            let store = startup::store(&settings).await?;
            let result = parked_command(&store, command).await;
            close(store).await;
            result
        }
    }
}

/// Ends the MongoDB client's server sessions before the process exits: a client merely dropped
/// at the end of `main` leaves that to a background task, which the runtime's shutdown cuts
/// off (and the driver panics in it).
async fn close(store: tasktrail_projector::store::Store) {
    let client = store.db.client().clone();
    drop(store);
    client.shutdown().await;
}

async fn parked_command(
    store: &tasktrail_projector::store::Store,
    command: ParkedCommand,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        ParkedCommand::List => {
            let all = parked::list(&store.db).await?;
            if all.is_empty() {
                writeln!(out, "no parked events")?;
            }
            for p in all {
                writeln!(
                    out,
                    "{} {} seq={} pos={} {} held={} parked_at={} reason: {}",
                    p.aggregate_type,
                    p.aggregate_id,
                    p.sequence,
                    p.global_position,
                    p.event_type,
                    p.held.len(),
                    p.parked_at.to_rfc3339(),
                    p.reason
                )?;
            }
            Ok(())
        }
        ParkedCommand::Retry { aggregate_id } => {
            report(&mut out, parked::retry(store, &aggregate_id).await?)
        }
        ParkedCommand::Drop { aggregate_id } => {
            report(&mut out, parked::drop_event(store, &aggregate_id).await?)
        }
    }
}

fn report(out: &mut impl std::io::Write, retried: Retried) -> anyhow::Result<()> {
    match retried {
        Retried::Applied(applied) => {
            writeln!(out, "applied {applied} events; no longer parked")?;
            Ok(())
        }
        Retried::StillParked(reason) => anyhow::bail!("still parked: {reason}"),
    }
}

/// The first SIGINT or SIGTERM stops the replay after the batch it is applying (its checkpoint
/// commits with that batch); a second one ends the process at once (the checkpoint still holds).
async fn stop_on_signal(stop: CancellationToken) {
    service_runtime::shutdown::signal().await;
    let _ignored = writeln!(
        std::io::stderr(),
        "stopping after the current batch; signal again to quit at once"
    );
    stop.cancel();
    service_runtime::shutdown::signal().await;
    std::process::exit(130);
}

//! `tasktrail-bench`: measures tasktrail against its baselines on one machine, in one run, and
//! writes `bench/results/latest.json`, `latest.md` and `latency.csv` (scripts/bench draws the
//! PNG chart from it). Run it through `scripts/bench`, which starts the servers and builds the
//! release binaries first.
//!
//! `main` runs the phases in order, each in its own module: [`baseline_phase`], [`load_phase`],
//! [`drain_phase`], [`replay_phase`] and [`stored_phase`]. They live in `src/main/`, named with
//! `#[path]`: this crate root's modules would otherwise be looked up in `src/`, beside the
//! library's.

#[path = "main/attachments_phase.rs"]
mod attachments_phase;
#[path = "main/baseline_phase.rs"]
mod baseline_phase;
#[path = "main/catch_up.rs"]
mod catch_up;
#[path = "main/cli.rs"]
mod cli;
#[path = "main/drain_phase.rs"]
mod drain_phase;
#[path = "main/load_phase.rs"]
mod load_phase;
#[path = "main/replay_phase.rs"]
mod replay_phase;
#[path = "main/stored_phase.rs"]
mod stored_phase;
#[path = "main/stream_phase.rs"]
mod stream_phase;

use std::path::PathBuf;

use clap::Parser;

use tasktrail_bench::report::{self, Report};
use tasktrail_bench::services::{self, Target, fresh_database};

use crate::cli::Cli;

/// The command API's log filter: debug for the relay's batch timings (read, publish, checkpoint).
const RELAY_DEBUG: &str = "info,relay=debug";

/// What every phase reads: the command line, the run's name (`HHMMSS`), where the services'
/// logs go, the PostgreSQL server's URL and the run's servers.
#[derive(Debug)]
struct Setup {
    cli: Cli,
    run: String,
    logs: PathBuf,
    server_url: String,
    target: Target,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let run = chrono::Utc::now().format("%H%M%S").to_string();
    std::fs::create_dir_all(cli.out.join("logs"))?;
    let logs = cli.out.join("logs");
    let server_url = services::database_server_url();
    let target = Target::from_env(
        &format!("bench{run}"),
        fresh_database(&server_url, "tasktrail_bench").await?,
    );
    let mut report = Report::new(cli.quick, cli.phase(), cli.clients);
    report.servers = services::server_versions(&target).await;
    let setup = Setup {
        cli,
        run,
        logs,
        server_url,
        target,
    };

    let measured = measure(&setup, &mut report).await;
    // Whether the phases finished or not: a failed run leaves nothing behind either.
    cleanup(&setup.target).await;
    measured?;
    report.finish(&setup.cli.out)
}

/// Every phase, in order.
async fn measure(setup: &Setup, report: &mut Report) -> anyhow::Result<()> {
    let baselines = baseline_phase::measure(setup, report).await?;
    let running = load_phase::measure(setup, &baselines, report).await?;
    drain_phase::measure(setup, &baselines, running, report).await?;
    replay_phase::measure(setup, &baselines, report).await?;
    stored_phase::measure(setup, report).await
}

/// Drops the run's Kafka topics, MongoDB database and Redis keys (its PostgreSQL databases stay
/// until the next run, for a look at what was measured).
async fn cleanup(target: &Target) {
    match target.delete_topics().await {
        Ok(deleted) => report::progress(&format!("cleanup: deleted the run's {deleted} topics")),
        Err(error) => report::progress(&format!("cleanup: the run's topics stay ({error:#})")),
    }
    if let Ok(client) = mongodb::Client::with_uri_str(&target.mongo_url).await {
        let _ignored = client.database(&target.mongo_database).drop().await;
    }
    if let Ok(client) = redis::Client::open(target.redis_url.as_str())
        && let Ok(mut redis) = client.get_multiplexed_async_connection().await
    {
        for prefix in [
            target.redis_prefix.clone(),
            format!("{}_replay", target.redis_prefix),
        ] {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}:*"))
                .query_async(&mut redis)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _ignored: redis::RedisResult<()> =
                    redis::cmd("DEL").arg(keys).query_async(&mut redis).await;
            }
        }
    }
}

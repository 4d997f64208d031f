//! Replay: `projector replay` rebuilding the read models from a seeded event store, of the
//! default size and of a large one.

use anyhow::Context as _;

use tasktrail_bench::report::{Report, progress as say};
use tasktrail_bench::services::{self, Target, event_store_tables, fresh_database};

use crate::Setup;
use crate::baseline_phase::Baselines;

/// Measures the replays and adds them to `report`.
pub(crate) async fn measure(
    setup: &Setup,
    base: &Baselines,
    report: &mut Report,
) -> anyhow::Result<()> {
    let Setup {
        cli,
        run,
        logs,
        server_url,
        target,
    } = setup;
    let Baselines { mongo, .. } = *base;
    for (label, events) in [
        ("replay", Some(cli.pick(cli.replay_events, 100_000, 3_000))),
        (
            "replay (large store)",
            cli.large_replay_events
                .or((!cli.quick).then_some(1_000_000))
                .filter(|events| *events > 0),
        ),
    ] {
        let Some(events) = events else { continue };
        say(&format!("product: {label} of {events} events"));
        let rate = replay(server_url, target, events, run, logs).await?;
        report.product(
            &format!("{label}, {events} events"),
            rate,
            "events/s",
            Some(("MongoDB bulk upsert", mongo)),
        );
    }
    Ok(())
}

/// Seeds a store of `events`, runs `projector replay --quiet` on it, returns its events/s.
async fn replay(
    server_url: &str,
    target: &Target,
    events: usize,
    run: &str,
    logs: &std::path::Path,
) -> anyhow::Result<f64> {
    let database_url = fresh_database(server_url, "tasktrail_bench_replay").await?;
    let pool = sqlx::PgPool::connect(&database_url).await?;
    event_store_tables(&pool).await?;
    let workload = test_support::workload::workload(100, 400, events);
    test_support::workload::insert(&pool, &workload).await?;
    pool.close().await;
    let replay_target = Target {
        database_url,
        mongo_database: format!("bench{run}_replay"),
        redis_prefix: format!("bench{run}_replay"),
        ..target.clone()
    };
    let output =
        services::run_to_end("projector", &["replay", "--quiet"], &replay_target, logs).await?;
    let rate = output
        .lines()
        .find_map(|line| line.split_once(" events/s)").map(|(head, _)| head))
        .and_then(|head| head.rsplit('(').next())
        .and_then(|n| n.trim().parse().ok())
        .with_context(|| format!("no rate in the replay's output:\n{output}"))?;
    let client = mongodb::Client::with_uri_str(&target.mongo_url).await?;
    client
        .database(&replay_target.mongo_database)
        .drop()
        .await?;
    Ok(rate)
}

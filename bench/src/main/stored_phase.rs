//! Commands with a full event store versus an empty one (relay off in both): whether the
//! store's size slows the write path. Both stores are seeded first, then sampled in turn.

use sqlx::Connection as _;
use tasktrail_bench::product::{self, Api};
use tasktrail_bench::report::{Report, progress as say};
use tasktrail_bench::services::{Service, Target, event_store_tables, fresh_database};

use crate::Setup;

/// Samples of each store, taken in turn (empty, full, empty, …): one sample of each moved by
/// up to a fifth between two runs of the same code on a shared 2-core machine.
const ROUNDS: usize = 3;

/// Measures `create task` on both stores, [`ROUNDS`] times each in turn, and adds the median
/// rate of each to `report` (the samples go into a note).
pub(crate) async fn measure(setup: &Setup, report: &mut Report) -> anyhow::Result<()> {
    let (cli, run, logs) = (&setup.cli, &setup.run, &setup.logs);
    let (server_url, target) = (&setup.server_url, &setup.target);
    let phase = cli.phase();
    let stored = cli.pick(cli.stored_events, 1_000_000, 20_000);
    say(&format!(
        "product: create task with {stored} events stored vs empty, {ROUNDS} samples of each"
    ));
    let mut stores = Vec::new();
    for (label, events, name) in [
        ("empty store", 0, "tasktrail_bench_stored_empty"),
        ("full store", stored, "tasktrail_bench_stored_full"),
    ] {
        let database_url = fresh_database(server_url, name).await?;
        let pool = sqlx::PgPool::connect(&database_url).await?;
        event_store_tables(&pool).await?;
        let mut seeded = 0;
        let mut seed = 100;
        while seeded < events {
            let batch = test_support::workload::workload(seed, 200, (events - seeded).min(100_000));
            test_support::workload::insert(&pool, &batch).await?;
            seeded += batch.len();
            seed += 1;
        }
        // A store that grew to this size over months has been vacuumed and analyzed as it
        // grew. Seeded in seconds, it has not: autovacuum would visit the million new rows
        // while the rate is measured, on the same 2 cores, and its cost would count as the
        // store's size.
        sqlx::query("VACUUM (ANALYZE) events")
            .execute(&pool)
            .await?;
        pool.close().await;
        stores.push((label, seeded, database_url));
    }
    // Likewise the seeding's pages are written out now, not during a sample.
    let mut connection = sqlx::PgConnection::connect(&stores[0].2).await?;
    if let Err(error) = sqlx::query("CHECKPOINT").execute(&mut connection).await {
        say(&format!(
            "stored: no CHECKPOINT after the seeding ({error}); its writes may be flushed \
             while the rate is measured"
        ));
    }
    connection.close().await?;

    // Each sample adds its creates to its store: the empty one holds only what its earlier
    // samples wrote (a few tens of thousands of events at most).
    let mut samples = vec![Vec::new(); stores.len()];
    for round in 0..ROUNDS {
        for ((_, seeded, database_url), rates) in stores.iter().zip(&mut samples) {
            let stored_target = Target {
                database_url: database_url.clone(),
                ..target.clone()
            };
            let service = Service::start(
                "command-api-stored",
                &[],
                &stored_target,
                &[("TASKTRAIL_RELAY__ENABLED", "false".to_owned())],
                logs,
            )
            .await?;
            let api = Api::new(&service.url, "");
            let mut actors = Vec::new();
            for n in 0..cli.clients {
                actors.push(api.actor(&format!("{run}s{seeded}r{round}"), n).await?);
            }
            let (result, _) = product::create_tasks(&api, &actors, phase).await;
            rates.push(result.per_second);
            drop(service);
        }
    }
    let mut stored_rates = Vec::new();
    let mut described = Vec::new();
    for ((label, seeded, _), rates) in stores.iter().zip(&mut samples) {
        described.push(format!(
            "{label} {}",
            rates
                .iter()
                .map(|rate| format!("{rate:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        rates.sort_by(f64::total_cmp);
        stored_rates.push((*label, *seeded, rates[rates.len() / 2]));
    }
    report.note(format!(
        "create task with {stored} events stored: the samples in turn (cmd/s): {}; the table \
         gives the median of each",
        described.join("; ")
    ));
    report.stored(&stored_rates);
    Ok(())
}

//! Commands with a full event store versus an empty one (relay off in both): whether the
//! store's size slows the write path.

use tasktrail_bench::product::{self, Api};
use tasktrail_bench::report::{Report, progress as say};
use tasktrail_bench::services::{Service, Target, event_store_tables, fresh_database};

use crate::Setup;

/// Measures `create task` on both stores and adds the rates to `report`.
pub(crate) async fn measure(setup: &Setup, report: &mut Report) -> anyhow::Result<()> {
    let (cli, run, logs) = (&setup.cli, &setup.run, &setup.logs);
    let (server_url, target) = (&setup.server_url, &setup.target);
    let phase = cli.phase();
    let stored = cli.pick(cli.stored_events, 1_000_000, 20_000);
    say(&format!(
        "product: create task with {stored} events stored vs empty"
    ));
    let mut stored_rates = Vec::new();
    for (label, events) in [("empty store", 0), ("full store", stored)] {
        let database_url = fresh_database(server_url, "tasktrail_bench_stored").await?;
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
        // A store that grew to this size over months has been vacuumed, analyzed and
        // checkpointed as it grew. Seeded in seconds, it has not: autovacuum would visit the
        // million new rows, and the checkpoint write the seeding's pages, during the 10 s
        // measured below, on the same 2 cores, and their cost would count as the store's size.
        sqlx::query("VACUUM (ANALYZE) events")
            .execute(&pool)
            .await?;
        if let Err(error) = sqlx::query("CHECKPOINT").execute(&pool).await {
            say(&format!(
                "stored: no CHECKPOINT after the seeding ({error}); its writes may be flushed \
                 while the rate is measured"
            ));
        }
        pool.close().await;
        let stored_target = Target {
            database_url,
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
            actors.push(api.actor(&format!("{run}s{seeded}"), n).await?);
        }
        let (result, _) = product::create_tasks(&api, &actors, phase).await;
        stored_rates.push((label, seeded, result.per_second));
        drop(service);
    }
    report.stored(&stored_rates);
    Ok(())
}

//! The relay's backlog drain (events written while the command API was down), then the
//! projector's catch-up over the backlog that leaves in Kafka.

use std::time::{Duration, Instant};

use tasktrail_bench::report::{Report, progress as say};
use tasktrail_bench::services::Service;

use crate::baseline_phase::Baselines;
use crate::catch_up::catch_up;
use crate::load_phase::Running;
use crate::{RELAY_DEBUG, Setup};

/// Measures the drain and the catch-up with the services of the load phase, adds the figures
/// to `report`, and stops the services.
pub(crate) async fn measure(
    setup: &Setup,
    base: &Baselines,
    running: Running,
    report: &mut Report,
) -> anyhow::Result<()> {
    let Setup {
        cli, logs, target, ..
    } = setup;
    let Baselines {
        kafka,
        ref relay_records_label,
        kafka_relay_shaped,
        mongo,
        ..
    } = *base;
    let Running {
        mut command,
        query,
        projector,
    } = running;
    say("product: relay backlog drain");
    let drain = cli.pick(cli.drain_events, 50_000, 5_000);
    command.kill();
    // The projector stays down until the relay drained: then the whole drain is a backlog in
    // Kafka, and its catch-up is measured over it.
    drop(projector);
    {
        let pool = sqlx::PgPool::connect(&target.database_url).await?;
        let events = test_support::workload::workload(7, 50, drain);
        test_support::workload::insert(&pool, &events).await?;
        pool.close().await;
    }
    let started = Instant::now();
    command = Service::start(
        "command-api",
        &[],
        target,
        &[("TASKTRAIL_LOG__FILTER", RELAY_DEBUG.to_owned())],
        logs,
    )
    .await?;
    loop {
        if command
            .metric("tasktrail_relay_lag_events")
            .await
            .unwrap_or(f64::MAX)
            == 0.0
            && command
                .metric("tasktrail_relay_events_published_total")
                .await
                .unwrap_or(0.0)
                > 0.0
        {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the relay did not drain in 10 min"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    #[expect(clippy::cast_precision_loss, reason = "event counts")]
    let drained = drain as f64 / started.elapsed().as_secs_f64();
    report.product(
        "relay backlog drain",
        drained,
        "events/s",
        Some(("rdkafka producer (300 B, acks=all, idempotent)", kafka)),
    );
    report.ratio_extra(
        "relay backlog drain",
        relay_records_label,
        kafka_relay_shaped,
    );

    say(&format!(
        "product: projector catch-up over a backlog of {drain} events in Kafka"
    ));
    let projector = Service::start("projector", &["run"], target, &[], logs).await?;
    let (applied, elapsed, behind) = catch_up(&projector, Duration::from_secs(60)).await?;
    anyhow::ensure!(
        behind <= 0.0,
        "the projector stalled {behind} events behind"
    );
    report.product(
        &format!("projector catch-up (live, from Kafka), a backlog of {drain} events"),
        applied / elapsed.as_secs_f64(),
        "events/s",
        Some(("MongoDB bulk upsert", mongo)),
    );
    drop(projector);
    drop(query);
    drop(command);
    Ok(())
}

//! The baselines, measured first: what the same machine does without tasktrail (pgbench, an
//! rdkafka producer, redis-benchmark, a bare axum endpoint, MongoDB bulk upserts).

use tasktrail_bench::baselines::{self, Pgbench};
use tasktrail_bench::load::Throughput;
use tasktrail_bench::report::{Report, progress as say};
use tasktrail_bench::services::event_store_tables;

use crate::Setup;

/// The baselines the product's figures are set against.
#[derive(Debug)]
pub(crate) struct Baselines {
    /// `pgbench` INSERT, 32 clients.
    pub(crate) pg32: Pgbench,
    /// rdkafka producer (300 B, acks=all, idempotent), msgs/s.
    pub(crate) kafka: f64,
    /// The name of [`Baselines::kafka_relay_shaped`] in the report.
    pub(crate) relay_records_label: String,
    /// rdkafka producer of the relay's records, msgs/s.
    pub(crate) kafka_relay_shaped: f64,
    /// redis-benchmark GET, req/s.
    pub(crate) redis: f64,
    /// The axum JSON endpoint.
    pub(crate) axum: Throughput,
    /// MongoDB bulk upsert, docs/s.
    pub(crate) mongo: f64,
}

/// Measures the baselines and adds them to `report`.
pub(crate) async fn measure(setup: &Setup, report: &mut Report) -> anyhow::Result<Baselines> {
    let Setup {
        cli, logs, target, ..
    } = setup;
    let phase = cli.phase();
    say("baselines: pgbench");
    {
        let pool = sqlx::PgPool::connect(&target.database_url).await?;
        event_store_tables(&pool).await?;
        sqlx::raw_sql("DROP TABLE IF EXISTS bench_events; CREATE TABLE bench_events (LIKE events INCLUDING ALL)")
            .execute(&pool)
            .await?;
        pool.close().await;
    }
    let secs = phase.as_secs().max(2);
    let pg32 = baselines::pgbench(&target.database_url, 32, secs, logs)?;
    let pg1 = baselines::pgbench(&target.database_url, 1, secs, logs)?;
    say("baselines: rdkafka producer");
    let kafka = baselines::kafka_producer(target, if cli.quick { 20_000 } else { 200_000 }).await?;
    let relay_records = baselines::relay_records(1000);
    #[expect(clippy::cast_precision_loss, reason = "byte counts")]
    let relay_record_bytes = relay_records
        .iter()
        .map(|r| {
            r.payload.len()
                + r.headers
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>()
        })
        .sum::<usize>() as f64
        / relay_records.len() as f64;
    let relay_records_label =
        format!("rdkafka producer, the relay's records ({relay_record_bytes:.0} B with 2 headers)");
    let kafka_relay_shaped = baselines::produce(
        target,
        "baseline_relay",
        if cli.quick { 20_000 } else { 100_000 },
        &relay_records,
    )
    .await?;
    say("baselines: redis-benchmark GET");
    let redis = baselines::redis_get(
        &target.redis_url,
        32,
        if cli.quick { 20_000 } else { 200_000 },
    )?;
    say("baselines: axum JSON endpoint");
    let axum = baselines::axum_json(cli.clients, phase).await?;
    say("baselines: MongoDB bulk upsert");
    let mongo = baselines::mongo_bulk_upsert(target, if cli.quick { 1_000 } else { 5_000 }).await?;
    report.baseline("pgbench INSERT, 32 clients", pg32.tps, "rows/s");
    report.baseline(
        "pgbench INSERT, 1 client, average latency",
        pg1.latency_avg_ms,
        "ms",
    );
    report.baseline(
        "rdkafka producer (300 B, acks=all, idempotent)",
        kafka,
        "msgs/s",
    );
    report.baseline(&relay_records_label, kafka_relay_shaped, "msgs/s");
    report.baseline("redis-benchmark GET", redis, "req/s");
    report.baseline("axum JSON endpoint", axum.per_second, "req/s");
    report.baseline("MongoDB bulk upsert", mongo, "docs/s");
    Ok(Baselines {
        pg32,
        kafka,
        relay_records_label,
        kafka_relay_shaped,
        redis,
        axum,
        mongo,
    })
}

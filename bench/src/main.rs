//! `tasktrail-bench`: measures tasktrail against its baselines on one machine, in one run, and
//! writes `bench/results/latest.json`, `latest.md` and `latency.csv` (scripts/bench draws the
//! PNG chart from it). Run it through `scripts/bench`, which starts the servers and builds the
//! release binaries first.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;

use tasktrail_bench::product::Api;
use tasktrail_bench::report::Report;
use tasktrail_bench::services::{self, Service, Target, event_store_tables, fresh_database};
use tasktrail_bench::{baselines, product, report};

/// The command API's log filter: debug for the relay's batch timings (read, publish, checkpoint).
const RELAY_DEBUG: &str = "info,relay=debug";

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "tasktrail-bench",
    about = "tasktrail against its baselines, in one run"
)]
struct Cli {
    /// Short phases and small stores (seconds, for CI); the figures are rough.
    #[arg(long)]
    quick: bool,
    /// Seconds of each load phase (default 10, 2 with --quick).
    #[arg(long)]
    seconds: Option<u64>,
    /// Concurrent clients of the closed-loop phases.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Events in the store the replay rebuilds (default 100000, 3000 with --quick).
    #[arg(long)]
    replay_events: Option<usize>,
    /// Also replay a store of this many events (default 1000000, none with --quick; 0: none).
    #[arg(long)]
    large_replay_events: Option<usize>,
    /// Tasks added to one project for the list query (default 10000, 2000 with --quick).
    #[arg(long)]
    project_tasks: Option<usize>,
    /// Events already stored for "commands with a full store" (default 1000000, 20000 with --quick).
    #[arg(long)]
    stored_events: Option<usize>,
    /// Events the relay drains from a backlog (default 50000, 5000 with --quick).
    #[arg(long)]
    drain_events: Option<usize>,
    /// Where the results go.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

impl Cli {
    fn phase(&self) -> Duration {
        Duration::from_secs(self.seconds.unwrap_or(if self.quick { 2 } else { 10 }))
    }

    fn pick(&self, value: Option<usize>, full: usize, quick: usize) -> usize {
        value.unwrap_or(if self.quick { quick } else { full })
    }
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
    let phase = cli.phase();
    let say = |what: &str| report::progress(what);

    // --- baselines ---------------------------------------------------------------------
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
    let pg32 = baselines::pgbench(&target.database_url, 32, secs, &logs)?;
    let pg1 = baselines::pgbench(&target.database_url, 1, secs, &logs)?;
    say("baselines: rdkafka producer");
    let kafka =
        baselines::kafka_producer(&target, if cli.quick { 20_000 } else { 200_000 }).await?;
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
        &target,
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
    let mongo =
        baselines::mongo_bulk_upsert(&target, if cli.quick { 1_000 } else { 5_000 }).await?;
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

    // --- the services ------------------------------------------------------------------
    // (migrations first: the projector and query API expect the tables)
    say("starting command-api, query-api, projector");
    let mut command = Service::start(
        "command-api",
        &[],
        &target,
        &[
            ("TASKTRAIL_RELAY__POLL_INTERVAL_MS", "200".to_owned()),
            ("TASKTRAIL_LOG__FILTER", RELAY_DEBUG.to_owned()),
        ],
        &logs,
    )
    .await?;
    let query = Service::start("query-api", &[], &target, &[], &logs).await?;
    // info: its partition assignments and revocations, for a catch-up that stalls.
    let projector = Service::start(
        "projector",
        &["run"],
        &target,
        &[(
            "TASKTRAIL_LOG__FILTER",
            "info,tasktrail_projector=debug".to_owned(),
        )],
        &logs,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    report.memory_idle(&[&command, &query, &projector]);
    let api = Api::new(&command.url, &query.url);
    let mut actors = Vec::new();
    for n in 0..cli.clients {
        actors.push(api.actor(&run, n).await?);
    }

    say("product: create task, 32 clients");
    let sampler = report::MemorySampler::start(&[&command, &query, &projector]);
    let (created, tasks) = product::create_tasks(&api, &actors, phase).await;
    say("product: change status, 32 clients");
    let changed = product::change_statuses(&api, &actors, &tasks, phase).await;
    report.memory_load(sampler.stop().await);
    report.product(
        "create task, 32 clients",
        created.per_second,
        "cmd/s",
        Some(("pgbench INSERT, 32 clients", pg32.tps)),
    );
    report.product(
        "change status, 32 clients",
        changed.per_second,
        "cmd/s",
        Some(("pgbench INSERT, 32 clients", pg32.tps)),
    );
    report.errors("create task", created.errors);
    report.errors("change status", changed.errors);

    let rate = (created.per_second / 2.0).max(1.0);
    say(&format!("product: open-loop latency at {rate:.0} cmd/s"));
    let open = product::create_tasks_at(&api, &actors, rate, phase).await;
    report.latency("create task at 50% of max (open loop)", &open);
    report::write_timeline(&cli.out.join("latency.csv"), &open.timeline)?;
    report.errors("open loop", open.errors);

    // Read-your-writes on a caught-up system (the projector's own catch-up rate is measured
    // over a real backlog below, after the relay drain).
    let (_, _, behind) = catch_up(&projector, Duration::from_secs(60)).await?;
    if behind > 0.0 {
        report.note(format!(
            "the projector stalled {behind} events behind (nothing applied for 60 s); \
             read-your-writes below counts the changes it never showed"
        ));
    }

    say(&format!(
        "product: read-your-writes lag, with creates at {rate:.0} cmd/s alongside"
    ));
    let background = product::create_tasks_at(&api, &actors, rate, phase);
    // Samples stop with the load beside them (a sample takes longer under load: 300 of them
    // outlasted the phase, and the ones after it measured an idle system).
    let samples = product::read_your_writes(
        &api,
        &actors,
        &tasks,
        if cli.quick { 20 } else { 300 },
        phase,
    );
    let (background, samples) = tokio::join!(background, samples);
    let (lag, missed) = samples?;
    report.read_your_writes(&lag.summary(), rate);
    report.errors("read-your-writes: not visible within 10 s", missed);
    report.errors("read-your-writes: creates alongside", background.errors);

    say("product: query throughput");
    let by_id =
        product::query_load(&api, &actors, phase, |a| format!("/users/{}", a.user_id)).await;
    let big = &actors[0];
    let fill = cli.pick(cli.project_tasks, 10_000, 2_000);
    say(&format!(
        "product: {fill} more tasks in one project, for the list query"
    ));
    let filled = product::fill_project(&api, big, cli.clients, fill as u64).await;
    report.errors("filling a project", filled.errors);
    let (_, _, behind) = catch_up(&projector, Duration::from_secs(60)).await?;
    anyhow::ensure!(
        behind <= 0.0,
        "the projector stalled {behind} events behind"
    );
    let listed = product::query_one(
        &api,
        big,
        cli.clients,
        phase,
        format!("/tasks?project_id={}&limit=50", big.project_id),
    )
    .await;
    let driver = baselines::mongo_task_page(&target, &big.project_id, cli.clients, phase).await?;
    report.baseline(
        "MongoDB driver: the same first page of 50 tasks",
        driver.per_second,
        "req/s",
    );
    report.product(
        "GET /users/{id} (Redis)",
        by_id.per_second,
        "req/s",
        Some(("redis-benchmark GET", redis)),
    );
    report.ratio_extra(
        "GET /users/{id} (Redis)",
        "axum JSON endpoint",
        axum.per_second,
    );
    report.product(
        &format!(
            "GET /tasks?project_id=&limit=50, a project of {} tasks (MongoDB)",
            filled.ok + 1
        ),
        listed.per_second,
        "req/s",
        Some((
            "MongoDB driver: the same first page of 50 tasks",
            driver.per_second,
        )),
    );
    report.ratio_extra(
        &format!(
            "GET /tasks?project_id=&limit=50, a project of {} tasks (MongoDB)",
            filled.ok + 1
        ),
        "axum JSON endpoint",
        axum.per_second,
    );
    report.errors("GET /users/{id}", by_id.errors);
    report.errors("GET /tasks", listed.errors);

    // --- relay backlog drain: events written while the relay was down -------------------
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
        &target,
        &[("TASKTRAIL_LOG__FILTER", RELAY_DEBUG.to_owned())],
        &logs,
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
        &relay_records_label,
        kafka_relay_shaped,
    );

    say(&format!(
        "product: projector catch-up over a backlog of {drain} events in Kafka"
    ));
    let projector = Service::start("projector", &["run"], &target, &[], &logs).await?;
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

    // --- replay --------------------------------------------------------------------------
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
        let rate = replay(&server_url, &target, events, &run, &logs).await?;
        report.product(
            &format!("{label}, {events} events"),
            rate,
            "events/s",
            Some(("MongoDB bulk upsert", mongo)),
        );
    }

    // --- commands with a full store versus an empty one (relay off in both) ----------------
    let stored = cli.pick(cli.stored_events, 1_000_000, 20_000);
    say(&format!(
        "product: create task with {stored} events stored vs empty"
    ));
    let mut stored_rates = Vec::new();
    for (label, events) in [("empty store", 0), ("full store", stored)] {
        let database_url = fresh_database(&server_url, "tasktrail_bench_stored").await?;
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
            &logs,
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

    report.finish(&cli.out)?;
    cleanup(&target).await;
    Ok(())
}

/// Waits for the projector's lag to reach 0, or until it applied nothing for `stall`: the
/// events it applied meanwhile, the time, and the lag left.
async fn catch_up(projector: &Service, stall: Duration) -> anyhow::Result<(f64, Duration, f64)> {
    let applied_total = "tasktrail_projector_events_applied_total";
    let before = projector.metric(applied_total).await?;
    let started = Instant::now();
    let (mut last, mut last_change) = (before, Instant::now());
    loop {
        let lag = projector.metric("tasktrail_projector_lag_events").await?;
        let applied = projector.metric(applied_total).await?;
        if applied > last {
            (last, last_change) = (applied, Instant::now());
        }
        if lag <= 0.0 || last_change.elapsed() > stall {
            let elapsed = if lag <= 0.0 {
                started.elapsed()
            } else {
                last_change - started
            };
            return Ok((
                applied - before,
                elapsed.max(Duration::from_millis(1)),
                lag.max(0.0),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

/// Drops the run's MongoDB database and Redis keys (its PostgreSQL databases stay until the
/// next run, for a look at what was measured).
async fn cleanup(target: &Target) {
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

//! The product under load: the three services started, then commands (closed and open loop),
//! read-your-writes and queries, each set against its baseline.

use std::time::Duration;

use tasktrail_bench::baselines;
use tasktrail_bench::product::{self, Api};
use tasktrail_bench::report::{self, Report, progress as say};
use tasktrail_bench::services::{CpuSnapshot, Service};

use crate::baseline_phase::Baselines;
use crate::catch_up::catch_up;
use crate::{RELAY_DEBUG, Setup};

/// The services the load phase started, handed on to the relay drain.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) command: Service,
    pub(crate) query: Service,
    pub(crate) projector: Service,
}

/// Starts the services, measures the product under load and adds the figures to `report`.
pub(crate) async fn measure(
    setup: &Setup,
    base: &Baselines,
    report: &mut Report,
) -> anyhow::Result<Running> {
    let Setup {
        cli,
        run,
        logs,
        target,
        ..
    } = setup;
    let Baselines {
        pg32, redis, axum, ..
    } = *base;
    let phase = cli.phase();
    // (migrations first: the projector and query API expect the tables)
    say("starting command-api, query-api, projector");
    let command = Service::start(
        "command-api",
        &[],
        target,
        &[
            ("TASKTRAIL_RELAY__POLL_INTERVAL_MS", "200".to_owned()),
            ("TASKTRAIL_LOG__FILTER", RELAY_DEBUG.to_owned()),
        ],
        logs,
    )
    .await?;
    let query = Service::start("query-api", &[], target, &[], logs).await?;
    // info: its partition assignments and revocations, for a catch-up that stalls.
    let projector = Service::start(
        "projector",
        &["run"],
        target,
        &[(
            "TASKTRAIL_LOG__FILTER",
            "info,tasktrail_projector=debug".to_owned(),
        )],
        logs,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    report.memory_idle(&[&command, &query, &projector]);
    let api = Api::new(&command.url, &query.url);
    let mut actors = Vec::new();
    for n in 0..cli.clients {
        actors.push(api.actor(run, n).await?);
    }

    say("product: create task, 32 clients");
    let sampler = report::MemorySampler::start(&[&command, &query, &projector]);
    let cpu = CpuSnapshot::take();
    let (created, tasks) = product::create_tasks(&api, &actors, phase).await;
    report.cpu_per_command("create task, 32 clients", &cpu.since(), created.ok);
    say("product: change status, 32 clients");
    let cpu = CpuSnapshot::take();
    let changed = product::change_statuses(&api, &actors, &tasks, phase).await;
    report.cpu_per_command("change status, 32 clients", &cpu.since(), changed.ok);
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
    // The closed-loop phases write faster than the read side projects on 2 cores: their
    // backlog, applied in batches of thousands, would take the CPU from the first seconds of
    // the open loop (a stall of half a second in the run of 41e5585). A fixed rate is measured
    // from a caught-up system, as read-your-writes is.
    settle(&projector, report, "the open-loop latency").await?;
    say(&format!("product: open-loop latency at {rate:.0} cmd/s"));
    let open = product::create_tasks_at(&api, &actors, rate, phase).await;
    report.latency("create task at 50% of max (open loop)", &open);
    report::write_timeline(&cli.out.join("latency.csv"), &open.timeline)?;
    report.errors("open loop", open.errors);

    // Read-your-writes on a caught-up system (the projector's own catch-up rate is measured
    // over a real backlog below, after the relay drain).
    settle(&projector, report, "read-your-writes").await?;

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
    let driver = baselines::mongo_task_page(target, &big.project_id, cli.clients, phase).await?;
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
    // The stream's latency is one change at a time, measured on a quiet system: the list
    // queries above may leave the MongoDB server working on requests whose clients are gone.
    say("product: letting the list queries drain before the stream");
    tokio::time::sleep(Duration::from_secs(5)).await;
    catch_up(&projector, Duration::from_secs(60)).await?;
    crate::stream_phase::measure(&api, &actors[0], &query, cli.quick, report).await?;
    crate::attachments_phase::measure(&api, &actors[0], cli.clients, phase, cli.quick, report)
        .await?;
    Ok(Running {
        command,
        query,
        projector,
    })
}

/// Waits for the projector to apply everything written so far, before `measurement`; notes it
/// in `report` if the projector stalled instead (nothing applied for 60 s).
async fn settle(projector: &Service, report: &mut Report, measurement: &str) -> anyhow::Result<()> {
    let (_, _, behind) = catch_up(projector, Duration::from_secs(60)).await?;
    if behind > 0.0 {
        report.note(format!(
            "before {measurement}: the projector stalled {behind} events behind (nothing applied \
             for 60 s)"
        ));
    }
    Ok(())
}

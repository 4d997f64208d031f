//! `GET /stream`: how soon a change reaches a client (command accepted → event received, one
//! change at a time), and what 1,000 idle streams cost one query API.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use tasktrail_bench::load::Latencies;
use tasktrail_bench::product::{Actor, Api};
use tasktrail_bench::report::{Report, progress as say};
use tasktrail_bench::services::{CpuSnapshot, Service};
use test_support::sse::EventStream;

/// Idle streams held at once.
const IDLE_STREAMS: usize = 1000;
const WAIT: Duration = Duration::from_secs(10);

/// Measures the stream against the running `query` service and adds the figures to `report`.
pub(crate) async fn measure(
    api: &Api,
    actor: &Actor,
    query: &Service,
    quick: bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    let url = format!("{}/stream", api.query);
    say("product: command accepted → event on GET /stream");
    let (status, stream) = EventStream::open(&api.http, &url, &actor.token, None).await?;
    let mut stream = stream.with_context(|| format!("GET /stream answered {status}"))?;
    let (task, _) = api.create_task(actor, 0).await?;
    let mut latencies = Latencies::default();
    let mut missed = 0;
    let samples = if quick { 30 } else { 300 };
    let cpu = CpuSnapshot::take();
    for n in 0..samples {
        let priority = if n % 2 == 0 { "high" } else { "low" };
        let version = api.set_priority(actor, &task, priority).await?;
        let accepted = Instant::now();
        let seen = stream
            .next_where(WAIT, |event| {
                let data = event.json();
                data["id"] == task.as_str() && data["version"] == version
            })
            .await;
        match seen {
            Some(_) => latencies.push(accepted.elapsed()),
            None => missed += 1,
        }
    }
    let cpu = cpu.since();
    let summary = latencies.summary();
    report.note(format!(
        "GET /stream latency: the machine was {:.0}% busy while it was measured (one change at a \
         time); most CPU: {}",
        cpu.busy * 100.0,
        cpu.top(3)
            .iter()
            .map(|(name, cores)| format!("{name} {:.0}% of a core", cores * 100.0))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    report.product(
        "command accepted → event on GET /stream, p50",
        summary.p50_ms,
        "ms",
        None,
    );
    report.product(
        "command accepted → event on GET /stream, p99",
        summary.p99_ms,
        "ms",
        None,
    );
    report.errors("stream: change not received within 10 s", missed);
    drop(stream);

    say(&format!(
        "product: {IDLE_STREAMS} idle streams on one query API"
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = query.rss_mib();
    // A client of its own: one connection per stream, none shared with the other phases.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let mut streams = Vec::with_capacity(IDLE_STREAMS);
    for _ in 0..IDLE_STREAMS {
        let (status, stream) = EventStream::open(&http, &url, &actor.token, None).await?;
        streams.push(stream.with_context(|| format!("GET /stream answered {status}"))?);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = query.rss_mib();
    // One change reaches every one of them.
    let version = api.set_priority(actor, &task, "urgent").await?;
    let accepted = Instant::now();
    let mut reached = 0;
    for stream in &mut streams {
        let seen = stream
            .next_where(WAIT, |event| {
                let data = event.json();
                data["id"] == task.as_str() && data["version"] == version
            })
            .await;
        reached += usize::from(seen.is_some());
    }
    let fan_out = accepted.elapsed();
    drop(streams);
    #[expect(clippy::cast_precision_loss, reason = "a thousand")]
    let per_stream_kib = (held - before).max(0.0) * 1024.0 / IDLE_STREAMS as f64;
    report.product(
        &format!("query-api resident memory per idle stream ({IDLE_STREAMS} held)"),
        per_stream_kib,
        "KiB",
        None,
    );
    #[expect(clippy::cast_precision_loss, reason = "milliseconds")]
    let fan_out_ms = fan_out.as_millis() as f64;
    report.product(
        &format!("one change to all {IDLE_STREAMS} streams (last one received)"),
        fan_out_ms,
        "ms",
        None,
    );
    report.note(format!(
        "GET /stream: {IDLE_STREAMS} idle streams took the query API from {before:.0} MiB to \
         {held:.0} MiB; one change reached {reached} of them"
    ));
    report.errors(
        "stream: idle streams the change did not reach",
        u64::try_from(IDLE_STREAMS - reached).unwrap_or(0),
    );
    Ok(())
}

//! Waiting for the projector to catch up, timed.

use std::time::{Duration, Instant};

use tasktrail_bench::services::Service;

/// Waits for the projector's lag to reach 0, or until it applied nothing for `stall`: the
/// events it applied meanwhile, the time, and the lag left.
pub(crate) async fn catch_up(
    projector: &Service,
    stall: Duration,
) -> anyhow::Result<(f64, Duration, f64)> {
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

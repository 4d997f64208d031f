//! Load generation: a closed loop (N clients back to back, for a time) and an open loop (a fixed
//! rate, latency measured from each request's scheduled start, so a stall is not hidden).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Latencies in microseconds, sorted on demand.
#[derive(Debug, Default, Clone)]
pub struct Latencies(Vec<u64>);

impl Latencies {
    pub fn push(&mut self, latency: Duration) {
        self.0
            .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn extend(&mut self, other: Self) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `q` quantile (0..=1) in milliseconds; 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "an index into a vector far smaller than 2^52"
        )]
        let index = ((sorted.len() - 1) as f64 * q).round() as usize;
        #[expect(clippy::cast_precision_loss, reason = "microseconds")]
        let ms = sorted[index] as f64 / 1000.0;
        ms
    }

    pub fn summary(&self) -> Percentiles {
        Percentiles {
            count: self.len(),
            p50_ms: self.quantile_ms(0.50),
            p99_ms: self.quantile_ms(0.99),
            p999_ms: self.quantile_ms(0.999),
            max_ms: self.quantile_ms(1.0),
        }
    }
}

/// What the report shows of a latency distribution.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// The result of a closed loop.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Throughput {
    pub clients: usize,
    pub seconds: f64,
    pub ok: u64,
    pub errors: u64,
    pub per_second: f64,
    pub latency: Percentiles,
}

/// `clients` workers call `request(client, n)` back to back for `duration` (or until `max`
/// requests in all); a request is ok when it returns `Ok`.
pub async fn closed_loop<F, Fut>(
    clients: usize,
    duration: Duration,
    max: u64,
    request: F,
) -> Throughput
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let request = Arc::new(request);
    let issued = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for client in 0..clients {
        let request = Arc::clone(&request);
        let issued = Arc::clone(&issued);
        let errors = Arc::clone(&errors);
        workers.push(tokio::spawn(async move {
            let mut latencies = Latencies::default();
            while started.elapsed() < duration {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= max {
                    break;
                }
                let sent = Instant::now();
                match request(client, n).await {
                    Ok(()) => latencies.push(sent.elapsed()),
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies = Latencies::default();
    for worker in workers {
        if let Ok(part) = worker.await {
            latencies.extend(part);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let ok = latencies.len() as u64;
    #[expect(clippy::cast_precision_loss, reason = "request counts")]
    let per_second = ok as f64 / seconds;
    Throughput {
        clients,
        seconds,
        ok,
        errors: errors.load(Ordering::Relaxed),
        per_second,
        latency: latencies.summary(),
    }
}

/// The result of an open loop, with one `(seconds since start, latency ms)` point per request.
#[derive(Debug, Clone, Serialize)]
pub struct OpenLoop {
    pub rate: f64,
    pub seconds: f64,
    pub ok: u64,
    pub errors: u64,
    pub latency: Percentiles,
    #[serde(skip)]
    pub timeline: Vec<(f64, f64)>,
}

/// Starts `request(n)` at a fixed `rate` per second for `duration`, each in its own task; the
/// latency of a request counts from when it was due, not from when it got sent.
pub async fn open_loop<F, Fut>(rate: f64, duration: Duration, request: F) -> OpenLoop
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut n = 0_u64;
    loop {
        let due = started + interval.mul_f64(n as f64);
        if due.duration_since(started) >= duration {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let call = request(n);
        tasks.push(tokio::spawn(async move {
            let result = call.await;
            (due.duration_since(started), due.elapsed(), result.is_ok())
        }));
        n += 1;
    }
    let mut latencies = Latencies::default();
    let mut timeline = Vec::new();
    let mut errors = 0;
    for task in tasks {
        match task.await {
            Ok((at, latency, true)) => {
                latencies.push(latency);
                timeline.push((at.as_secs_f64(), latency.as_secs_f64() * 1000.0));
            }
            _ => errors += 1,
        }
    }
    OpenLoop {
        rate,
        seconds: duration.as_secs_f64(),
        ok: latencies.len() as u64,
        errors,
        latency: latencies.summary(),
        timeline,
    }
}

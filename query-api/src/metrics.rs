//! The query API's `/metrics`: requests by route and status, and where reads were served from
//! (Redis hits, misses and fallbacks to MongoDB), and `read_model_behind` answers.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use futures::future::BoxFuture;
use service_runtime::metrics::{Collect, Exposition};

use crate::consistency::Consistency;
use crate::store::ReadStore;

/// Requests answered, by route template and status.
#[derive(Debug, Clone, Default)]
pub struct RequestCounts(Arc<Mutex<BTreeMap<(String, u16), u64>>>);

impl RequestCounts {
    fn add(&self, route: String, status: u16) {
        if let Ok(mut counts) = self.0.lock() {
            *counts.entry((route, status)).or_default() += 1;
        }
    }

    fn snapshot(&self) -> Vec<((String, u16), u64)> {
        self.0
            .lock()
            .map(|counts| counts.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    }
}

/// Middleware (as a `route_layer`, so the route template is known) counting every answer.
pub async fn track(State(counts): State<RequestCounts>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    counts.add(route, response.status().as_u16());
    response
}

/// Everything `/metrics` shows for the query API.
#[derive(Debug, Clone)]
pub struct QueryMetrics {
    /// Requests by route and status.
    pub requests: RequestCounts,
    /// The read models (their read counters).
    pub store: ReadStore,
    /// The read-your-writes waits (their timeouts).
    pub consistency: Consistency,
}

impl Collect for QueryMetrics {
    fn collect<'a>(&'a self, out: &'a mut Exposition) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let snapshot = self.requests.snapshot();
            let total: u64 = snapshot.iter().map(|(_, n)| n).sum();
            out.counter(
                "tasktrail_query_requests_total",
                "Requests the query API answered (all routes).",
                total,
            );
            let statuses: Vec<(String, String, f64)> = snapshot
                .iter()
                .map(|((route, status), n)| {
                    #[expect(
                        clippy::cast_precision_loss,
                        reason = "Prometheus samples are floats; counts stay far below 2^53"
                    )]
                    let n = *n as f64;
                    (route.clone(), status.to_string(), n)
                })
                .collect();
            let labels: Vec<[(&str, &str); 2]> = statuses
                .iter()
                .map(|(route, status, _)| [("route", route.as_str()), ("status", status.as_str())])
                .collect();
            let samples: Vec<(&[(&str, &str)], f64)> = labels
                .iter()
                .zip(&statuses)
                .map(|(labels, (_, _, n))| (labels.as_slice(), *n))
                .collect();
            out.gauges(
                "tasktrail_query_requests_by_route",
                "Requests answered since start, by route template and status (a running total).",
                &samples,
            );
            let counters = self.store.counters();
            out.counter(
                "tasktrail_query_redis_hits_total",
                "Reads answered from the Redis read models.",
                counters.redis_hits.load(Ordering::Relaxed),
            );
            out.counter(
                "tasktrail_query_redis_misses_total",
                "Reads that found nothing in Redis and went to MongoDB.",
                counters.redis_misses.load(Ordering::Relaxed),
            );
            out.counter(
                "tasktrail_query_read_model_fallbacks_total",
                "Reads served from MongoDB because Redis failed or was slow.",
                counters.redis_fallbacks.load(Ordering::Relaxed),
            );
            out.counter(
                "tasktrail_query_read_model_behind_total",
                "Requests answered 409 read_model_behind (min_version not reached in time).",
                self.consistency.behind.load(Ordering::Relaxed),
            );
        })
    }
}

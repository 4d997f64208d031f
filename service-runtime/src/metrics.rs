//! `GET /metrics` in the Prometheus text format (version 0.0.4).
//!
//! A service registers one or more [`Collect`]ors; each request asks every collector to write
//! its current values into an [`Exposition`]. Values come from where the truth is (counters the
//! service keeps, positions read from PostgreSQL), never from a background sampler, so a scrape
//! always shows the present.
//!
//! ```text
//! # HELP tasktrail_relay_lag_events Committed events the relay has not published yet.
//! # TYPE tasktrail_relay_lag_events gauge
//! tasktrail_relay_lag_events 0
//! ```

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use futures::future::BoxFuture;

/// The `Content-Type` of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Something that reports metrics on every scrape.
pub trait Collect: Send + Sync {
    /// Writes the current values. A value that cannot be read (its server is down) is left out,
    /// after reporting why through [`Exposition::error`].
    fn collect<'a>(&'a self, out: &'a mut Exposition) -> BoxFuture<'a, ()>;
}

/// The text of one scrape.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
    errors: u64,
}

impl Exposition {
    /// A gauge: a value that goes up and down.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, help, "gauge");
        self.sample(name, &[], value);
    }

    /// A counter: a total that only grows while the process lives.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, help, "counter");
        #[expect(
            clippy::cast_precision_loss,
            reason = "Prometheus samples are floats; counts stay far below 2^53"
        )]
        self.sample(name, &[], value as f64);
    }

    /// A gauge with one sample per label set, e.g. `[("projection", "tasks")]`.
    pub fn gauges(&mut self, name: &str, help: &str, samples: &[(&[(&str, &str)], f64)]) {
        self.family(name, help, "gauge");
        for (labels, value) in samples {
            self.sample(name, labels, *value);
        }
    }

    /// Notes that a value could not be read; shown as `tasktrail_metrics_collect_errors`.
    pub fn error(&mut self, metric: &str, error: &dyn std::fmt::Display) {
        tracing::warn!(metric, error = %error, "metrics: a value could not be read");
        self.errors += 1;
    }

    fn family(&mut self, name: &str, help: &str, kind: &str) {
        let _infallible = writeln!(self.text, "# HELP {name} {help}");
        let _infallible = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (index, (key, label)) in labels.iter().enumerate() {
                if index > 0 {
                    self.text.push(',');
                }
                let escaped = label
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _infallible = write!(self.text, "{key}=\"{escaped}\"");
            }
            self.text.push('}');
        }
        let _infallible = writeln!(self.text, " {value}");
    }

    /// The finished text (with the collect-error counter last).
    #[must_use]
    pub fn finish(mut self) -> String {
        let errors = self.errors;
        self.counter(
            "tasktrail_metrics_collect_errors",
            "Values that could not be read during this scrape.",
            errors,
        );
        self.text
    }
}

/// The collectors of one service.
#[derive(Clone, Default)]
pub struct Metrics {
    collectors: Vec<Arc<dyn Collect>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("collectors", &self.collectors.len())
            .finish()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn with(mut self, collector: impl Collect + 'static) -> Self {
        self.collectors.push(Arc::new(collector));
        self
    }

    /// Runs every collector in order and returns the text.
    pub async fn render(&self) -> String {
        let mut out = Exposition::default();
        for collector in &self.collectors {
            collector.collect(&mut out).await;
        }
        out.finish()
    }
}

/// `GET /metrics`, to merge into a service's router.
pub fn router(metrics: Metrics) -> Router {
    Router::new()
        .route("/metrics", get(serve))
        .with_state(metrics)
}

async fn serve(State(metrics): State<Metrics>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        metrics.render().await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl Collect for Fixed {
        fn collect<'a>(&'a self, out: &'a mut Exposition) -> BoxFuture<'a, ()> {
            Box::pin(async move {
                out.gauge("a_gauge", "A gauge.", 1.5);
                out.counter("a_total", "A counter.", 7);
                out.gauges(
                    "by_label",
                    "Labelled.",
                    &[(&[("name", "x\"y")], 2.0), (&[("name", "z")], 3.0)],
                );
                out.error("missing", &"server down");
            })
        }
    }

    #[tokio::test]
    async fn renders_the_prometheus_text_format() {
        let text = Metrics::new().with(Fixed).render().await;
        assert_eq!(
            text,
            "# HELP a_gauge A gauge.\n# TYPE a_gauge gauge\na_gauge 1.5\n\
             # HELP a_total A counter.\n# TYPE a_total counter\na_total 7\n\
             # HELP by_label Labelled.\n# TYPE by_label gauge\n\
             by_label{name=\"x\\\"y\"} 2\nby_label{name=\"z\"} 3\n\
             # HELP tasktrail_metrics_collect_errors Values that could not be read during this scrape.\n\
             # TYPE tasktrail_metrics_collect_errors counter\ntasktrail_metrics_collect_errors 1\n"
        );
    }
}

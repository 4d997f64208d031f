//! `GET /healthz` (the process is up) and `GET /readyz` (every dependency answers).
//!
//! `/readyz` runs each [`Check`] concurrently with a short timeout and answers 200 when all pass,
//! or 503 with the name and reason of each one that failed:
//!
//! ```json
//! { "status": "unavailable", "checks": { "postgres": "ok", "kafka": "down: timed out after 2s" } }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::future::{BoxFuture, join_all};
use serde_json::json;

/// How long one dependency may take to answer before it counts as down.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// One dependency whose reachability `/readyz` reports.
pub trait Check: Send + Sync {
    /// The name shown in the `/readyz` body, e.g. `postgres`.
    fn name(&self) -> &'static str;
    /// `Ok(())` when the dependency answered; otherwise why not.
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// The checks of one service.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<Arc<dyn Check>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.checks.iter().map(|c| c.name()).collect();
        f.debug_struct("Readiness").field("checks", &names).finish()
    }
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn with(mut self, check: impl Check + 'static) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// Runs every check concurrently; each result is `"ok"` or `"down: <reason>"`.
    pub async fn report(&self) -> (bool, BTreeMap<&'static str, String>) {
        let results = join_all(self.checks.iter().map(|check| async move {
            let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check.check()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(reason)) => Err(reason),
                Err(_) => Err(format!("timed out after {}s", CHECK_TIMEOUT.as_secs())),
            };
            (check.name(), outcome)
        }))
        .await;
        let ready = results.iter().all(|(_, outcome)| outcome.is_ok());
        let checks = results
            .into_iter()
            .map(|(name, outcome)| match outcome {
                Ok(()) => (name, "ok".to_owned()),
                Err(reason) => {
                    tracing::warn!(dependency = name, %reason, "readiness check failed");
                    (name, format!("down: {reason}"))
                }
            })
            .collect();
        (ready, checks)
    }
}

/// `/healthz` and `/readyz`, to merge into a service's router.
pub fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(readiness)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    let (ready, checks) = readiness.report().await;
    let (status, word) = if ready {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (status, Json(json!({ "status": word, "checks": checks }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    struct Fixed(&'static str, Result<(), &'static str>);

    impl Check for Fixed {
        fn name(&self) -> &'static str {
            self.0
        }
        fn check(&self) -> BoxFuture<'_, Result<(), String>> {
            let outcome = self.1.map_err(str::to_owned);
            Box::pin(async move { outcome })
        }
    }

    async fn get(app: Router, path: &str) -> (StatusCode, serde_json::Value) {
        let response = app
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        (status, serde_json::from_slice(&body).expect("json"))
    }

    #[tokio::test]
    async fn ready_when_every_check_passes() {
        let app = router(
            Readiness::new()
                .with(Fixed("a", Ok(())))
                .with(Fixed("b", Ok(()))),
        );
        let (status, body) = get(app, "/readyz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({ "status": "ready", "checks": { "a": "ok", "b": "ok" } })
        );
    }

    #[tokio::test]
    async fn unavailable_names_the_failed_dependency() {
        let app = router(
            Readiness::new()
                .with(Fixed("a", Ok(())))
                .with(Fixed("kafka", Err("refused"))),
        );
        let (status, body) = get(app.clone(), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["checks"]["kafka"], "down: refused");
        assert_eq!(body["checks"]["a"], "ok");
        let (status, _) = get(app, "/healthz").await;
        assert_eq!(status, StatusCode::OK);
    }
}

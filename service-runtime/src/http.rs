//! Binding and serving an axum router the same way in every service.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::MatchedPath;
use axum::http::{HeaderName, HeaderValue, Method, Request, header};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::settings::HttpSettings;

/// The header that carries the request id from the client (or from us) through logs and events.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Binds the listener now, so a port-0 setting yields a known port before serving starts.
pub async fn bind(settings: &HttpSettings) -> anyhow::Result<TcpListener> {
    let address = settings.address();
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))
}

/// JSON 404 for unknown paths and 405 for known paths with another method, in the API's error body.
pub fn with_json_fallbacks(router: Router) -> Router {
    use crate::error::ErrorBody;
    use axum::http::StatusCode;
    router
        .fallback(|| async { ErrorBody::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ErrorBody::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
}

/// The longest client request id kept (a UUID is 36 characters).
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// Whether a client's `x-request-id` (or correlation / causation id) is kept: a UUID, or a
/// token of 1 to [`MAX_REQUEST_ID_LEN`] characters of `A-Z a-z 0-9 . _ -`. Anything else is
/// replaced by a new UUID before it reaches a log line or an event's metadata.
pub fn is_safe_request_id(value: &str) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Drops a client request id that [`is_safe_request_id`] refuses (a new one is then made up).
async fn drop_unsafe_request_id(mut request: axum::extract::Request) -> axum::extract::Request {
    let unsafe_id = request
        .headers()
        .get_all(REQUEST_ID_HEADER)
        .iter()
        .enumerate()
        .any(|(i, value)| i > 0 || !value.to_str().is_ok_and(is_safe_request_id));
    if unsafe_id {
        request.headers_mut().remove(REQUEST_ID_HEADER);
    }
    request
}

/// `X-Content-Type-Options: nosniff` and `Cache-Control: no-store` on every answer (unless a
/// handler set its own `Cache-Control`): answers carry users' data and must not be cached by
/// browsers or proxies. CORS only for the configured origins (none by default).
///
/// # Errors
/// A configured CORS origin that is not one.
pub fn with_security_headers(router: Router, settings: &HttpSettings) -> anyhow::Result<Router> {
    let origins = settings.cors_origins()?;
    let mut router = router
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    if !origins.is_empty() {
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([
                    Method::GET,
                    Method::POST,
                    Method::PUT,
                    Method::PATCH,
                    Method::DELETE,
                ])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::IF_MATCH,
                    HeaderName::from_static(REQUEST_ID_HEADER),
                ])
                .expose_headers([
                    header::LOCATION,
                    header::ETAG,
                    header::RETRY_AFTER,
                    HeaderName::from_static(REQUEST_ID_HEADER),
                ]),
        );
    }
    Ok(router)
}

/// Answers `Connection: close` when the handler answered without reading the whole request
/// body (a 401 or 413 before the body, say): the connection cannot carry another request after
/// unread bytes, and saying so lets the client open a new one instead of finding this one reset
/// under its next request. A body read to its end (by an extractor, or drained by the rate
/// limiter) leaves the connection kept alive.
async fn close_if_body_unread(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use futures::StreamExt as _;

    let headers = request.headers();
    let has_body = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map_or_else(
            || headers.contains_key(header::TRANSFER_ENCODING),
            |n| n > 0,
        );
    if !has_body {
        return next.run(request).await;
    }
    let finished = Arc::new(AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let flag = Arc::clone(&finished);
    let tracked = body
        .into_data_stream()
        .chain(futures::stream::poll_fn(move |_| {
            flag.store(true, Ordering::Relaxed);
            std::task::Poll::Ready(None)
        }));
    let request = axum::extract::Request::from_parts(parts, axum::body::Body::from_stream(tracked));
    let mut response = next.run(request).await;
    if !finished.load(Ordering::Relaxed) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Adds request ids (kept from the client's `x-request-id` when [`is_safe_request_id`], else
/// made up) and a span per request.
pub fn with_observability(router: Router) -> Router {
    let header = HeaderName::from_static(REQUEST_ID_HEADER);
    router
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let path = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or_else(|| request.uri().path(), MatchedPath::as_str);
                let request_id = request
                    .headers()
                    .get(REQUEST_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!("request", method = %request.method(), path, request_id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(SetRequestIdLayer::new(header, MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_unsafe_request_id))
        .layer(axum::middleware::from_fn(close_if_body_unread))
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let address = listener.local_addr().context("listener address")?;
    tracing::info!(%address, "listening");
    // Connection info lets handlers and middleware see the peer address (rate limits per IP).
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server failed")
}

/// The operations routes every service has: `/healthz`, `/readyz` (with `readiness`'s checks)
/// and `/metrics`.
pub fn operations(readiness: crate::health::Readiness, metrics: crate::metrics::Metrics) -> Router {
    Router::new()
        .merge(crate::health::router(readiness))
        .merge(crate::metrics::router(metrics))
}

/// A service's `main`: awaits `build` (the service's `startup::build`; `what` names the service
/// in its error) and serves until SIGTERM or SIGINT.
///
/// # Errors
/// The service could not start, or serving failed.
pub async fn run(
    build: impl Future<Output = anyhow::Result<Server>>,
    what: &str,
) -> anyhow::Result<()> {
    let server = build
        .await
        .with_context(|| format!("starting the {what}"))?;
    server.run_until_stopped(crate::shutdown::signal()).await
}

/// A bound, ready-to-serve HTTP service, with the background tasks it hosts (e.g. the relay):
/// what each service's `startup::build` returns.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    router: Router,
    /// Cancelled when the server stops; every background task watches it.
    stop: CancellationToken,
    /// Aborted when dropped: a server whose future is dropped (a killed service in a test, a
    /// failed start) leaves no task running behind it.
    tasks: JoinSet<()>,
}

/// How long a stopping server waits for its background tasks to finish.
pub const TASK_STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl Server {
    /// Binds `settings`' address now (a port-0 setting yields a known [`Server::port`]).
    pub async fn bind(settings: &HttpSettings, router: Router) -> anyhow::Result<Self> {
        Ok(Self {
            listener: bind(settings).await?,
            router: with_observability(with_security_headers(
                with_json_fallbacks(router),
                settings,
            )?),
            stop: CancellationToken::new(),
            tasks: JoinSet::new(),
        })
    }

    /// Starts a long-running task now; it gets a token that is cancelled when the server stops,
    /// and the server waits (at most [`TASK_STOP_TIMEOUT`]) for it. An error it returns is logged.
    pub fn spawn_task<F, Fut>(&mut self, name: &'static str, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let running = task(self.stop.child_token());
        self.tasks.spawn(async move {
            match running.await {
                Ok(()) => tracing::info!(task = name, "background task stopped"),
                Err(error) => tracing::error!(
                    task = name,
                    error = format!("{error:#}"),
                    "background task failed"
                ),
            }
        });
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |a| a.port())
    }

    /// Serves until `shutdown` resolves, then lets requests in flight finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = self.stop.clone();
        let served = serve(self.listener, self.router, async move {
            shutdown.await;
            stop.cancel();
        })
        .await;
        self.stop.cancel();
        let mut tasks = self.tasks;
        let finished = async move { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(TASK_STOP_TIMEOUT, finished)
            .await
            .is_err()
        {
            tracing::warn!("background tasks did not stop within {TASK_STOP_TIMEOUT:?}");
        }
        served
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uuids_and_short_plain_tokens_are_kept_as_request_ids() {
        for kept in ["7f1c0f3e-4b5e-4c1d-9a55-3b8f1e2d4c6a", "req-1", "a.b_c-D9"] {
            assert!(is_safe_request_id(kept), "{kept}");
        }
        let long = "a".repeat(MAX_REQUEST_ID_LEN + 1);
        for refused in [
            "",
            "<script>",
            "a b",
            "a\u{0}b",
            "ünï",
            "a/b",
            long.as_str(),
        ] {
            assert!(!is_safe_request_id(refused), "{refused:?}");
        }
    }

    #[test]
    fn cors_origins_are_checked() {
        let mut settings = HttpSettings::with_port(0);
        assert!(settings.cors_origins().expect("none").is_empty());
        settings.cors_allowed_origins = "https://app.example.com, http://localhost:3000".into();
        assert_eq!(settings.cors_origins().expect("two").len(), 2);
        settings.cors_allowed_origins = "https://app.example.com/path".into();
        assert!(settings.cors_origins().is_err());
        settings.cors_allowed_origins = "*".into();
        assert!(settings.cors_origins().is_err());
    }
}

//! Builds the query API from its settings and runs it until shutdown.

use std::sync::Arc;

use auth::rate_limit::{self, RateLimiter};
use auth::{Authenticator, Revocations, Tokens};
use axum::Router;
use service_runtime::health::Readiness;
use service_runtime::http::Server;
use service_runtime::metrics::Metrics;
use tokio_util::sync::CancellationToken;

use crate::consistency::Consistency;
use crate::metrics::{QueryMetrics, RequestCounts};
use crate::settings::Settings;
use crate::state::AppState;
use crate::store::ReadStore;
use crate::stream::Feed;
use crate::{openapi, routes};

/// The whole application (routes, docs, health, metrics), the revocations whose
/// maintenance the server runs and the switch that ends open streams. Connects to every
/// dependency lazily: one that is down shows on `/readyz` and in the answers that need it,
/// never as a failure to start.
///
/// # Errors
/// Invalid settings (a URL, the auth keys, the rate limit or read settings).
pub async fn app(settings: &Settings) -> anyhow::Result<App> {
    settings.rate_limit.validate()?;
    settings.read.validate()?;
    settings.stream.validate()?;
    let pool = event_store::connect_lazy(&settings.database)?;
    let mongo = read_model::mongo::connect(&settings.mongo).await?;
    let redis = service_runtime::redis::connect(&settings.redis)?;
    let prefix = settings.redis.key_prefix.clone();

    let tokens = Arc::new(Tokens::verify_only(&settings.auth)?);
    let revocations = Revocations::new(redis.clone(), pool.clone(), prefix.clone());
    let authenticator = Authenticator::new(Arc::clone(&tokens), revocations.clone());
    let limiter = RateLimiter::new(redis.clone(), prefix.clone(), &settings.rate_limit, tokens);
    let store = ReadStore::new(
        mongo.database(&settings.mongo.database),
        redis.clone(),
        prefix,
    );
    let feed = Feed::new(
        redis.clone(),
        store.clone(),
        &settings.redis.key_prefix,
        settings.stream.buffer,
    );
    feed.follow(settings.redis.url.expose())?;
    let shutdown = CancellationToken::new();
    let consistency = Consistency::new(&settings.read);
    consistency.listen(settings.redis.url.expose(), &settings.redis.key_prefix)?;
    let requests = RequestCounts::default();
    let metrics = Metrics::new().with(QueryMetrics {
        requests: requests.clone(),
        store: store.clone(),
        consistency: consistency.clone(),
    });
    let readiness = Readiness::new()
        .with(read_model::mongo::Health(mongo))
        .with(service_runtime::redis::Health(redis))
        .with(event_store::Postgres(pool.clone()));
    let attachments = attachment_store::AttachmentStore::from_settings(&settings.storage)
        .map_err(|error| anyhow::anyhow!("invalid attachment storage settings: {error}"))?;
    let state = AppState {
        store,
        pool,
        attachments,
        authenticator,
        consistency,
        feed,
        heartbeat: settings.stream.heartbeat(),
        shutdown: shutdown.clone(),
    };
    let queries = routes::router()
        .route_layer(axum::middleware::from_fn_with_state(
            requests,
            crate::metrics::track,
        ))
        .layer(axum::middleware::from_fn_with_state(
            limiter,
            rate_limit::middleware,
        ))
        .with_state(state);
    let router = Router::new()
        .merge(queries)
        .merge(openapi::router())
        .merge(service_runtime::http::operations(readiness, metrics));
    Ok(App {
        router,
        revocations,
        shutdown,
    })
}

/// What [`app`] builds.
#[derive(Debug)]
pub struct App {
    /// Every route.
    pub router: Router,
    /// The revocations whose maintenance the server runs.
    pub revocations: Revocations,
    /// Ends the open streams (`GET /stream`) when cancelled.
    pub shutdown: CancellationToken,
}

/// [`app`], bound to its address, with the revocation maintenance running in the background.
///
/// # Errors
/// Invalid settings, or the address cannot be bound.
pub async fn build(settings: Settings) -> anyhow::Result<Server> {
    let App {
        router,
        revocations,
        shutdown,
    } = app(&settings).await?;
    let mut server = Server::bind(&settings.http, router).await?;
    // Copies logouts recorded while Redis was down into Redis, and purges expired ones.
    revocations.maintain_beside(&mut server);
    // Open streams never end by themselves: they end when the server stops, so that its
    // graceful shutdown does not wait for them.
    server.spawn_task("streams", |stop| async move {
        stop.cancelled().await;
        shutdown.cancel();
        Ok(())
    });
    Ok(server)
}

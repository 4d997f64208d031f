//! Builds the command API from its settings.

use std::sync::Arc;
use std::time::Duration;

use attachment_store::AttachmentStore;
use auth::rate_limit::{self, RateLimiter};
use auth::{Authenticator, LoginThrottle, Revocations, Tokens};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use domain::Task;
use event_store::{CommandBus, Registry};
use relay::{LagBound, Relay, RelayMetrics, RelaySettings};
use service_runtime::health::Readiness;
use service_runtime::http::Server;
use service_runtime::metrics::Metrics;

use crate::attachments::{self, Cleaner};
use crate::settings::{BODY_LIMIT_BYTES, Settings};
use crate::state::{AppState, Commands};
use crate::{openapi, routes};

/// The whole application (routes, docs, health, metrics) and what runs beside it: the outbox
/// relay (unless disabled) and the revocations whose maintenance the server runs.
pub struct App {
    pub router: Router,
    pub relay: Option<Relay>,
    /// The attachment cleaner, when storage is configured.
    pub cleaner: Option<Cleaner>,
    /// The attachment store and the task commands, for the periodic orphan sweep.
    pub sweep: Option<(AttachmentStore, Arc<Commands<Task>>)>,
    pub revocations: Revocations,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("relay", &self.relay.is_some())
            .field("cleaner", &self.cleaner.is_some())
            .finish_non_exhaustive()
    }
}

/// Applies the migrations (PostgreSQL must be up: the command API cannot work without its
/// schema) and builds the [`App`]; Redis and Kafka are connected lazily (one that is down shows
/// on `/readyz`).
///
/// # Errors
/// PostgreSQL unreachable, or invalid settings (a URL, the auth keys, the rate limit, the relay).
pub async fn app(settings: &Settings) -> anyhow::Result<App> {
    let pool = event_store::connect_lazy(&settings.database)?;
    event_store::migrate(&pool).await?;
    let redis = service_runtime::redis::connect(&settings.redis)?;
    let prefix = settings.redis.key_prefix.clone();

    settings.rate_limit.validate()?;
    settings.relay.validate()?;
    let attachments = AttachmentStore::from_settings(&settings.storage)
        .map_err(|error| anyhow::anyhow!("invalid attachment storage settings: {error}"))?;
    if attachments.is_none() {
        tracing::warn!(
            "{}: attachment routes answer 503",
            AttachmentStore::NOT_CONFIGURED
        );
    }
    let tokens = Arc::new(Tokens::from_settings(&settings.auth)?);
    let revocations = Revocations::new(redis.clone(), pool.clone(), prefix.clone());
    let authenticator = Authenticator::new(Arc::clone(&tokens), revocations.clone());
    let login_throttle = LoginThrottle::new(redis.clone(), prefix.clone(), &settings.rate_limit);
    let limiter = RateLimiter::new(
        redis.clone(),
        prefix,
        &settings.rate_limit,
        Arc::clone(&tokens),
    );

    let maintained = revocations.clone();
    let registry =
        Registry::new(pool.clone()).with_access_cache_capacity(settings.commands.cache_capacity);
    let query_api: Arc<str> = settings.query_api.public_url.trim_end_matches('/').into();
    let state = AppState {
        users: Arc::new(Commands::new(
            CommandBus::new(pool.clone(), registry.user_services())
                .with_cache_capacity(settings.commands.cache_capacity),
            "users",
            Arc::clone(&query_api),
        )),
        projects: Arc::new(Commands::new(
            CommandBus::new(pool.clone(), registry.project_services())
                .with_cache_capacity(settings.commands.cache_capacity),
            "projects",
            Arc::clone(&query_api),
        )),
        tasks: Arc::new(Commands::new(
            CommandBus::new(pool.clone(), registry.task_services())
                .with_cache_capacity(settings.commands.cache_capacity),
            "tasks",
            query_api,
        )),
        registry,
        attachments: attachments.clone(),
        tokens,
        revocations,
        authenticator,
        login_throttle,
    };
    let cleaner = attachments.clone().map(|store| {
        Cleaner::new(
            store,
            &settings.kafka.brokers,
            &settings.kafka.topic_prefix,
            &settings
                .storage
                .cleaner_group_for(&settings.kafka.topic_prefix),
        )
    });
    let sweep = attachments
        .filter(|_| settings.storage.sweep_interval_secs > 0)
        .map(|store| (store, Arc::clone(&state.tasks)));

    let relay_config = &settings.relay;
    let relay = relay_config.enabled.then(|| {
        Relay::new(
            pool.clone(),
            settings.kafka.brokers.clone(),
            RelaySettings {
                topic_prefix: settings.kafka.topic_prefix.clone(),
                batch_size: relay_config.batch_size,
                poll_interval: Duration::from_millis(relay_config.poll_interval_ms),
                batch_window: Duration::from_millis(relay_config.batch_window_ms),
                partitions: settings.kafka.partitions,
                replication_factor: settings.kafka.replication_factor,
                topic_check_interval: Duration::from_millis(relay_config.topic_check_interval_ms),
                ..RelaySettings::default()
            },
        )
    });
    // Lag is read from PostgreSQL, so every instance reports the cluster's relay, hosted or not.
    let metrics = Metrics::new().with(RelayMetrics::new(
        pool.clone(),
        relay.as_ref().map(Relay::status),
    ));
    #[expect(
        clippy::cast_precision_loss,
        reason = "a bound in seconds; exact far beyond any sensible value"
    )]
    let max_seconds = relay_config.max_lag_secs as f64;
    let readiness = Readiness::new()
        .with(event_store::Postgres(pool.clone()))
        .with(service_runtime::redis::Health(redis))
        .with(relay::kafka::Health::connect(&settings.kafka.brokers)?)
        .with(LagBound {
            pool,
            max_events: relay_config.max_lag_events,
            max_seconds,
        });
    let commands = routes::router()
        .layer(axum::middleware::from_fn_with_state(
            limiter,
            rate_limit::middleware,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .with_state(state);
    let router = Router::new()
        .merge(commands)
        .merge(openapi::router())
        .merge(service_runtime::http::operations(readiness, metrics));
    Ok(App {
        router,
        relay,
        cleaner,
        sweep,
        revocations: maintained,
    })
}

/// [`app`], bound to its address, with the relay and the revocation maintenance running in the
/// background.
///
/// # Errors
/// As [`app`], or the address cannot be bound.
pub async fn build(settings: Settings) -> anyhow::Result<Server> {
    let App {
        router,
        relay,
        cleaner,
        sweep,
        revocations,
    } = app(&settings).await?;
    let mut server = Server::bind(&settings.http, router).await?;
    // The outbox relay: one active per database (the others wait on an advisory lock).
    if let Some(relay) = relay {
        server.spawn_task("relay", |stop| relay.run(stop.cancelled_owned()));
    }
    // Deletes the files of removed attachments and deleted tasks, after their events.
    if let Some(cleaner) = cleaner {
        server.spawn_task("attachment cleaner", |stop| cleaner.run(stop));
    }
    // Deletes files whose attachment event never came.
    if let Some((store, tasks)) = sweep {
        let interval = Duration::from_secs(settings.storage.sweep_interval_secs);
        let grace = settings.storage.orphan_grace();
        server.spawn_task("attachment sweep", move |stop| async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return Ok(()),
                    _ = ticks.tick() => {}
                }
                match attachments::sweep(&store, &tasks, grace).await {
                    Ok(swept) => tracing::debug!(?swept, "attachment sweep: done"),
                    Err(error) => {
                        tracing::warn!(?error, "attachment sweep: failed; trying again later");
                    }
                }
            }
        });
    }
    // Copies logouts recorded while Redis was down into Redis, and purges expired ones.
    revocations.maintain_beside(&mut server);
    Ok(server)
}

//! The PostgreSQL event store, the only source of truth of tasktrail.
//!
//! This crate owns the connection pool and the schema (`migrations/` at the workspace root,
//! embedded at compile time), and the write side's persistence:
//!
//! - [`PgEventRepository`]: the cqrs-es event repository over the `events` table. A commit is
//!   one transaction: one multi-row `INSERT` of its events and the matching update of the
//!   write-side registry; then a `pg_notify('tasktrail_events', '')` ([`NOTIFY_CHANNEL`]) wakes
//!   the relay ([`wake`]).
//! - [`Registry`]: look-ups in the write-side registry (`user_registry`, `project_registry`,
//!   `project_members`): the aggregates' `Services` and login's [`Credentials`].
//! - [`CommandBus`]: load an aggregate, check the expected version, decide, commit; returns
//!   the new version ([`Committed`]) or a [`CommandError`].
//! - [`Metadata`]: who and which request, stored with every event.
//! - [`read`]: every read of the `events` table outside the repository (the relay's batches,
//!   the projector's gap filling and replay, the task history), as one [`read::Envelope`].
//! - [`Postgres`]: the `/readyz` check of PostgreSQL.

mod command_bus;
mod error;
mod metadata;
pub mod read;
mod registry;
mod repository;
pub mod wake;

use std::time::Duration;

use anyhow::Context as _;
use futures::future::BoxFuture;
use service_runtime::settings::DatabaseSettings;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection as _, PgPool};

pub use command_bus::{CommandBus, CommandError, Committed, DEFAULT_CACHE_CAPACITY};
pub use error::UniqueViolation;
pub use metadata::Metadata;
pub use registry::{Credentials, Registry};
pub use repository::PgEventRepository;
pub use wake::NOTIFY_CHANNEL;

/// Every migration in `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// A pooled connection idle for at least this long is pinged before it is handed out.
pub const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// A pool that connects lazily: a service starts (and reports 503 on `/readyz`) while PostgreSQL is down.
///
/// sqlx pings a connection when the pool takes it back, and by default once more before it hands
/// it out again: a round trip before every statement. This pool skips the second ping for a
/// connection that came back less than [`PING_WHEN_IDLE_FOR`] ago; one idle for longer (a
/// database restart may have closed it meanwhile) is still pinged, and replaced if it is dead.
pub fn connect_lazy(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout())
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_WHEN_IDLE_FOR {
                    connection.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_lazy(settings.url.expose())
        .context("invalid TASKTRAIL_DATABASE__URL")
}

/// Applies the pending migrations. Safe to run from several processes at once (sqlx takes an
/// advisory lock) and again on every start (applied ones are skipped).
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("applying database migrations")?;
    tracing::info!("database schema is up to date");
    Ok(())
}

/// PostgreSQL answers `SELECT 1` (a `/readyz` check).
#[derive(Debug, Clone)]
pub struct Postgres(pub PgPool);

impl service_runtime::health::Check for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .execute(&self.0)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }
}

//! The PostgreSQL event store, the only source of truth of tasktrail.
//!
//! This crate owns the connection pool and the schema (`migrations/` at the workspace root,
//! embedded at compile time).

use anyhow::Context as _;
use service_runtime::settings::DatabaseSettings;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

/// Every migration in `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// A pool that connects lazily: a service starts (and reports 503 on `/readyz`) while PostgreSQL is down.
pub fn connect_lazy(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout())
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

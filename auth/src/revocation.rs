//! Revoked tokens: `POST /auth/logout` stops a token at once on every replica of both APIs.
//!
//! - PostgreSQL (`revoked_tokens`, migration `20261123000003`) is the durable record: a revocation
//!   is acknowledged only once its row is committed.
//! - Redis holds a copy, `"{prefix}:revoked:{jti}"` with a TTL until the token's `exp`, so the check
//!   on every request is one `EXISTS`.
//! - [`Revocations::is_revoked`] asks Redis first; if Redis errors or is slow it asks PostgreSQL,
//!   so Redis being down neither lets a revoked token through nor fails requests. Only when both
//!   are down does it fail (the extractor answers 503).
//! - A revocation made while Redis was down (or lost by a Redis restart) is missing from Redis
//!   until [`Revocations::resync`] copies the unexpired rows back; [`Revocations::run_maintenance`]
//!   does that periodically (and purges expired rows), bounding the window.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use uuid::Uuid;

use crate::claims::Claims;
use crate::throttle::Throttle;

/// How long a request waits for Redis before asking PostgreSQL instead.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// Rows copied to Redis per pipeline in [`Revocations::resync`].
const RESYNC_BATCH: usize = 500;

/// The revocation store could not answer (or, for [`Revocations::revoke`], could not record).
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    #[error("PostgreSQL (revoked_tokens) failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("Redis failed: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis did not answer within {0:?}")]
    RedisTimeout(Duration),
}

/// The shared record of revoked tokens. Cheap to clone.
#[derive(Clone)]
pub struct Revocations {
    pub(crate) redis: ConnectionManager,
    pub(crate) pool: PgPool,
    pub(crate) key_prefix: Arc<str>,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

pub(crate) static REDIS_DOWN: Throttle = Throttle::new(10);

impl Revocations {
    /// `key_prefix` is the deployment's Redis prefix (`TASKTRAIL_REDIS__KEY_PREFIX`).
    pub fn new(redis: ConnectionManager, pool: PgPool, key_prefix: impl Into<String>) -> Self {
        Self {
            redis,
            pool,
            key_prefix: Arc::from(key_prefix.into()),
        }
    }

    /// The Redis key that marks `jti` revoked.
    pub fn key(&self, jti: Uuid) -> String {
        format!("{}:revoked:{jti}", self.key_prefix)
    }

    /// Revokes the token of `claims`: durably in PostgreSQL (idempotent), then best-effort in
    /// Redis with a TTL until `exp`.
    ///
    /// # Errors
    /// [`RevocationError::Database`] if PostgreSQL did not record it (answer 503: the token still
    /// works). A Redis failure is only logged.
    pub async fn revoke(&self, claims: &Claims) -> Result<(), RevocationError> {
        sqlx::query(
            "INSERT INTO revoked_tokens (jti, expires_at, user_id) VALUES ($1, $2, $3)
             ON CONFLICT (jti) DO NOTHING",
        )
        .bind(claims.jti)
        .bind(claims.expires_at())
        .bind(claims.sub)
        .execute(&self.pool)
        .await?;
        let ttl = claims.seconds_left();
        if ttl > 0 {
            let mut redis = self.redis.clone();
            let mut set = redis::cmd("SET");
            set.arg(self.key(claims.jti)).arg(1).arg("EX").arg(ttl);
            if let Err(error) = with_timeout(set.query_async::<()>(&mut redis)).await {
                tracing::warn!(
                    %error,
                    jti = %claims.jti,
                    "revocation recorded in PostgreSQL but not in Redis; it is copied there at the next resync"
                );
            }
        }
        Ok(())
    }

    /// Whether `jti` was revoked: Redis first, PostgreSQL if Redis fails or is slow.
    ///
    /// # Errors
    /// [`RevocationError::Database`] when Redis failed and PostgreSQL failed too.
    pub async fn is_revoked(&self, jti: Uuid) -> Result<bool, RevocationError> {
        let mut redis = self.redis.clone();
        let mut exists = redis::cmd("EXISTS");
        exists.arg(self.key(jti));
        match with_timeout(exists.query_async::<bool>(&mut redis)).await {
            Ok(revoked) => return Ok(revoked),
            Err(error) => {
                if REDIS_DOWN.ready() {
                    tracing::warn!(%error, "Redis cannot say whether a token was revoked; asking PostgreSQL (logged at most every 10 s)");
                }
            }
        }
        let revoked: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $1)")
                .bind(jti)
                .fetch_one(&self.pool)
                .await?;
        Ok(revoked)
    }

    /// Copies every unexpired revocation from PostgreSQL into Redis; returns how many.
    ///
    /// # Errors
    /// A [`RevocationError`] if either store fails.
    pub async fn resync(&self) -> Result<usize, RevocationError> {
        let rows: Vec<(Uuid, DateTime<Utc>)> =
            sqlx::query_as("SELECT jti, expires_at FROM revoked_tokens WHERE expires_at > now()")
                .fetch_all(&self.pool)
                .await?;
        let now = Utc::now();
        let mut redis = self.redis.clone();
        for batch in rows.chunks(RESYNC_BATCH) {
            let mut pipe = redis::pipe();
            for (jti, expires_at) in batch {
                let ttl = u64::try_from((*expires_at - now).num_seconds()).unwrap_or(0);
                if ttl > 0 {
                    pipe.cmd("SET")
                        .arg(self.key(*jti))
                        .arg(1)
                        .arg("EX")
                        .arg(ttl)
                        .ignore();
                }
            }
            pipe.query_async::<()>(&mut redis).await?;
        }
        Ok(rows.len())
    }

    /// Deletes the rows of tokens that have expired (they are refused anyway); returns how many.
    ///
    /// # Errors
    /// [`RevocationError::Database`] if PostgreSQL fails.
    pub async fn purge_expired(&self) -> Result<u64, RevocationError> {
        let deleted = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < now()")
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(deleted)
    }

    /// Runs [`Revocations::run_maintenance`] every [`MAINTENANCE_PERIOD`] beside `server`, until
    /// the server stops.
    pub fn maintain_beside(self, server: &mut service_runtime::http::Server) {
        server.spawn_task("revocation maintenance", |stop| async move {
            self.run_maintenance(MAINTENANCE_PERIOD, stop.cancelled_owned())
                .await;
            Ok(())
        });
    }

    /// Every `period` until `shutdown`: [`Revocations::resync`] then
    /// [`Revocations::purge_expired`]. Failures are logged and retried next period. Spawn it
    /// once per API process: `tokio::spawn(revocations.clone().run_maintenance(period, shutdown))`.
    pub async fn run_maintenance(
        self,
        period: Duration,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = ticks.tick() => {}
            }
            match self.resync().await {
                Ok(copied) => tracing::debug!(copied, "revocations copied to Redis"),
                Err(error) => tracing::warn!(%error, "copying revocations to Redis failed"),
            }
            match self.purge_expired().await {
                Ok(deleted) => tracing::debug!(deleted, "expired revocations purged"),
                Err(error) => tracing::warn!(%error, "purging expired revocations failed"),
            }
        }
    }
}

/// How often an API copies revocations recorded only in PostgreSQL (Redis was down) to Redis
/// and purges the expired ones.
pub const MAINTENANCE_PERIOD: Duration = Duration::from_secs(60);

/// Bounds a Redis call by [`REDIS_TIMEOUT`].
pub(crate) async fn with_timeout<T>(
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, RevocationError> {
    match tokio::time::timeout(REDIS_TIMEOUT, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(RevocationError::RedisTimeout(REDIS_TIMEOUT)),
    }
}

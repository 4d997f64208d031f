//! The Redis side of [`ReadStore`]: JSON copies and statistics hashes read with a timeout, a
//! miss filled read-through, and Redis outages counted and logged once.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ReadStore, StoreError};

/// How long a read waits for Redis before it goes to MongoDB instead.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// How long a copy the query API put into Redis (read-through, after a miss) lives.
pub const READ_THROUGH_TTL: Duration = Duration::from_secs(3600);

/// What Redis had.
pub(super) enum Cached<T> {
    Hit(T),
    Miss,
    Unavailable,
}

impl ReadStore {
    /// Writes `value` to `key` if the key is absent, expiring after [`READ_THROUGH_TTL`].
    pub(super) async fn fill<T: Serialize>(&self, key: &str, value: &T) {
        let Ok(json) = serde_json::to_string(value) else {
            return;
        };
        let mut redis = self.inner.redis.clone();
        let mut command = redis::cmd("SET");
        command
            .arg(key)
            .arg(json)
            .arg("NX")
            .arg("EX")
            .arg(READ_THROUGH_TTL.as_secs());
        let _filled: Option<Option<String>> = self
            .redis_call(command.query_async::<Option<String>>(&mut redis))
            .await;
    }

    /// The statistics hash `key(prefix, generation, id)` as numbers; `None` when Redis failed
    /// or holds no such hash (then compute from MongoDB).
    ///
    /// # Errors
    /// MongoDB unreachable (to learn the generation).
    pub async fn stats_hash(
        &self,
        key: fn(&str, u64, &str) -> String,
        id: &str,
    ) -> Result<Option<HashMap<String, i64>>, StoreError> {
        let generation = self.generation().await?;
        let key = key(&self.inner.prefix, generation, id);
        let mut redis = self.inner.redis.clone();
        let mut command = redis::cmd("HGETALL");
        command.arg(&key);
        let fields = self
            .redis_call(command.query_async::<HashMap<String, String>>(&mut redis))
            .await;
        Ok(fields.filter(|fields| !fields.is_empty()).map(|fields| {
            fields
                .into_iter()
                .filter_map(|(field, value)| value.parse().ok().map(|n| (field, n)))
                .collect()
        }))
    }

    /// A JSON document from Redis: a miss, a failure (counted, logged once) or a value of
    /// another shape (logged, treated as a miss) all send the read to MongoDB.
    pub(super) async fn redis_json<T: DeserializeOwned>(&self, key: &str) -> Cached<T> {
        let mut redis = self.inner.redis.clone();
        let mut command = redis::cmd("GET");
        command.arg(key);
        let Some(found) = self
            .redis_call(command.query_async::<Option<String>>(&mut redis))
            .await
        else {
            return Cached::Unavailable;
        };
        let counters = &self.inner.counters;
        let Some(json) = found else {
            counters.redis_misses.fetch_add(1, Ordering::Relaxed);
            return Cached::Miss;
        };
        match serde_json::from_str(&json) {
            Ok(value) => {
                counters.redis_hits.fetch_add(1, Ordering::Relaxed);
                Cached::Hit(value)
            }
            Err(error) => {
                tracing::warn!(key, %error, "a Redis read model is malformed; reading MongoDB");
                counters.redis_misses.fetch_add(1, Ordering::Relaxed);
                Cached::Unavailable
            }
        }
    }

    /// Runs a Redis call with [`REDIS_TIMEOUT`]; a failure is counted as a fallback and logged
    /// only when Redis goes down (and again when it is back).
    async fn redis_call<T>(&self, call: impl Future<Output = redis::RedisResult<T>>) -> Option<T> {
        let outcome = match tokio::time::timeout(REDIS_TIMEOUT, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer within {REDIS_TIMEOUT:?}")),
        };
        match outcome {
            Ok(value) => {
                if self.inner.redis_down.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis answers again; reading the hot read models from it");
                }
                Some(value)
            }
            Err(error) => {
                self.inner
                    .counters
                    .redis_fallbacks
                    .fetch_add(1, Ordering::Relaxed);
                if !self.inner.redis_down.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%error, "Redis is unavailable; serving reads from MongoDB until it is back");
                }
                None
            }
        }
    }
}

//! [`ReadStore`]: reads of the read models of the active generation: Redis first for the hot
//! entities (users, projects) and the statistics hashes, MongoDB for everything else and
//! whenever Redis misses or fails.
//!
//! Redis being down never fails a request: the read goes to MongoDB, the fallback is counted
//! (`/metrics`), and the outage is logged once when it starts and once when it ends. MongoDB
//! being down is a [`StoreError::MongoUnavailable`] (503 naming mongodb).
//!
//! By job: `hot` (users and projects: Redis, then MongoDB), `cache` (the Redis reads, the
//! read-through fill and the outage log), `mongo` (queries of the active generation's
//! collections), `related` (the names and counters lists show beside their documents) and
//! `error` ([`StoreError`]).

mod cache;
mod error;
mod hot;
mod mongo;
mod related;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use mongodb::{Collection, Database};
use read_model::ActiveGeneration;
use redis::aio::ConnectionManager;

pub use cache::{READ_THROUGH_TTL, REDIS_TIMEOUT};
pub use error::StoreError;
pub use mongo::{decode, field};
pub use related::TaskNames;

/// Counters of where reads were served from, for `/metrics`.
#[derive(Debug, Default)]
pub struct ReadCounters {
    /// Reads answered from Redis.
    pub redis_hits: AtomicU64,
    /// Reads that found nothing in Redis and went to MongoDB.
    pub redis_misses: AtomicU64,
    /// Reads that went to MongoDB because Redis failed or was slow.
    pub redis_fallbacks: AtomicU64,
}

/// The read models of the active generation. Cheap to clone.
#[derive(Clone)]
pub struct ReadStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    redis: ConnectionManager,
    prefix: String,
    generation: ActiveGeneration,
    redis_down: AtomicBool,
    counters: ReadCounters,
}

impl std::fmt::Debug for ReadStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadStore")
            .field("database", &self.inner.db.name())
            .field("key_prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

impl ReadStore {
    /// Reads `db` (MongoDB) and `redis` under `key_prefix`.
    pub fn new(db: Database, redis: ConnectionManager, key_prefix: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                generation: ActiveGeneration::new(db.clone()),
                db,
                redis,
                prefix: key_prefix.into(),
                redis_down: AtomicBool::new(false),
                counters: ReadCounters::default(),
            }),
        }
    }

    /// Where reads were served from.
    pub fn counters(&self) -> &ReadCounters {
        &self.inner.counters
    }

    /// The active generation (cached for at most a second).
    ///
    /// # Errors
    /// MongoDB unreachable.
    pub async fn generation(&self) -> Result<u64, StoreError> {
        Ok(self.inner.generation.get().await?)
    }

    /// The collection `name(generation)` of the active generation.
    ///
    /// # Errors
    /// MongoDB unreachable.
    pub async fn collection<T: Send + Sync>(
        &self,
        name: fn(u64) -> String,
    ) -> Result<Collection<T>, StoreError> {
        let generation = self.generation().await?;
        Ok(self.inner.db.collection(&name(generation)))
    }
}

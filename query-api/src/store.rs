//! [`ReadStore`]: reads of the read models of the active generation: Redis first for the hot
//! entities (users, projects) and the statistics hashes, MongoDB for everything else and
//! whenever Redis misses or fails.
//!
//! Redis being down never fails a request: the read goes to MongoDB, the fallback is counted
//! (`/metrics`), and the outage is logged once when it starts and once when it ends. MongoDB
//! being down is a [`StoreError::MongoUnavailable`] (503 naming mongodb).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::TryStreamExt as _;
use mongodb::bson::{Bson, Document, doc};
use mongodb::{Collection, Database};
use read_model::documents::{ProjectView, TaskView, UserView};
use read_model::names::StatsOwner;
use read_model::{ActiveGeneration, keys};
use redis::aio::ConnectionManager;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How long a read waits for Redis before it goes to MongoDB instead.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// How long a copy the query API put into Redis (read-through, after a miss) lives.
pub const READ_THROUGH_TTL: Duration = Duration::from_secs(3600);

/// The names tasks show ([`ReadStore::task_names`]).
#[derive(Debug, Default)]
pub struct TaskNames {
    /// Project names by project id.
    pub projects: HashMap<String, String>,
    /// Usernames by user id.
    pub users: HashMap<String, String>,
}

/// What Redis had.
enum Cached<T> {
    Hit(T),
    Miss,
    Unavailable,
}

/// A read that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// MongoDB could not be reached (503 naming mongodb).
    #[error("MongoDB unavailable: {0}")]
    MongoUnavailable(String),
    /// PostgreSQL could not be reached (503 naming postgres).
    #[error("PostgreSQL unavailable: {0}")]
    PostgresUnavailable(String),
    /// A bug or a malformed document (500, logged).
    #[error("{0}")]
    Internal(String),
}

impl From<mongodb::error::Error> for StoreError {
    fn from(error: mongodb::error::Error) -> Self {
        use mongodb::error::ErrorKind;
        match *error.kind {
            ErrorKind::Command(_)
            | ErrorKind::BsonDeserialization(_)
            | ErrorKind::BsonSerialization(_)
            | ErrorKind::InvalidArgument { .. } => Self::Internal(format!("MongoDB: {error}")),
            _ => Self::MongoUnavailable(error.to_string()),
        }
    }
}

impl From<read_model::Error> for StoreError {
    fn from(error: read_model::Error) -> Self {
        match error {
            read_model::Error::Mongo(error) => error.into(),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::PostgresUnavailable(error.to_string()),
            other => Self::Internal(format!("PostgreSQL: {other}")),
        }
    }
}

impl From<event_store::read::ReadError> for StoreError {
    fn from(error: event_store::read::ReadError) -> Self {
        match error {
            event_store::read::ReadError::Database { source, .. } => source.into(),
            other => Self::Internal(other.to_string()),
        }
    }
}

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

    /// A user: Redis first, then MongoDB (filling Redis on a miss); with `min_version`,
    /// whichever copy is newer.
    ///
    /// # Errors
    /// MongoDB unreachable (only asked when Redis has nothing new enough).
    pub async fn user(
        &self,
        id: &str,
        min_version: Option<u64>,
    ) -> Result<Option<UserView>, StoreError> {
        self.hot(
            keys::user,
            read_model::names::users,
            id,
            min_version,
            |u: &UserView| u.version,
        )
        .await
    }

    /// A project: Redis first (`project:{id}`), then MongoDB (filling Redis on a miss); with
    /// `min_version`, whichever copy is newer.
    ///
    /// # Errors
    /// MongoDB unreachable (only asked when Redis has nothing new enough).
    pub async fn project(
        &self,
        id: &str,
        min_version: Option<u64>,
    ) -> Result<Option<ProjectView>, StoreError> {
        self.hot(
            keys::project,
            read_model::names::projects,
            id,
            min_version,
            |p: &ProjectView| p.version,
        )
        .await
    }

    /// A hot entity: the Redis copy if it is new enough, else the MongoDB one (or the newer of
    /// both). A Redis miss is filled read-through with `SET NX EX`: never over a copy the
    /// projector wrote meanwhile (its guarded writes replace ours), and expiring, so a key of a
    /// generation that a replay has dropped meanwhile does not linger.
    async fn hot<T>(
        &self,
        key: fn(&str, u64, &str) -> String,
        collection: fn(u64) -> String,
        id: &str,
        min_version: Option<u64>,
        version: impl Fn(&T) -> i64,
    ) -> Result<Option<T>, StoreError>
    where
        T: DeserializeOwned + Serialize + Clone,
    {
        let generation = self.generation().await?;
        let key = key(&self.inner.prefix, generation, id);
        let cached = self.redis_json::<T>(&key).await;
        let (cached, missed) = match cached {
            Cached::Hit(value) => (Some(value), false),
            Cached::Miss => (None, true),
            Cached::Unavailable => (None, false),
        };
        if let Some(value) = cached
            .as_ref()
            .filter(|v| new_enough(version(v), min_version))
        {
            return Ok(Some(value.clone()));
        }
        let stored: Option<T> = self
            .inner
            .db
            .collection::<Document>(&collection(generation))
            .find_one(doc! { "_id": id })
            .await?
            .map(decode)
            .transpose()?;
        if missed && let Some(value) = &stored {
            self.fill(&key, value).await;
        }
        Ok(newer(cached, stored, version))
    }

    /// Writes `value` to `key` if the key is absent, expiring after [`READ_THROUGH_TTL`].
    async fn fill<T: Serialize>(&self, key: &str, value: &T) {
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

    /// Up to `limit` documents of `collection` matching `filter`, in `sort` order.
    ///
    /// # Errors
    /// MongoDB unreachable, or a document of another shape.
    pub async fn find(
        &self,
        collection: fn(u64) -> String,
        filter: Document,
        sort: Document,
        limit: i64,
    ) -> Result<Vec<Document>, StoreError> {
        let collection = self.collection::<Document>(collection).await?;
        let cursor = collection.find(filter).sort(sort).limit(limit).await?;
        Ok(cursor.try_collect().await?)
    }

    /// The first document of `collection` matching `filter` (in `sort` order).
    ///
    /// # Errors
    /// MongoDB unreachable, or a document of another shape.
    pub async fn find_one<T>(
        &self,
        collection: fn(u64) -> String,
        filter: Document,
        sort: Document,
    ) -> Result<Option<T>, StoreError>
    where
        T: DeserializeOwned,
    {
        let collection = self.collection::<Document>(collection).await?;
        collection
            .find_one(filter)
            .sort(sort)
            .await?
            .map(decode)
            .transpose()
    }

    /// The names `tasks` show: their projects' names and their assignees' usernames, read with
    /// one query per collection. They are not stored in the tasks, so renaming a project writes
    /// one document however many tasks it has, and every task shows the new name at once.
    ///
    /// # Errors
    /// MongoDB unreachable.
    pub async fn task_names(&self, tasks: &[TaskView]) -> Result<TaskNames, StoreError> {
        let mut project_ids: Vec<&str> = tasks.iter().map(|t| t.project_id.as_str()).collect();
        let mut user_ids: Vec<&str> = tasks
            .iter()
            .filter_map(|t| t.assignee_id.as_deref())
            .collect();
        for ids in [&mut project_ids, &mut user_ids] {
            ids.sort_unstable();
            ids.dedup();
        }
        let (projects, users) = futures::try_join!(
            self.names_of(read_model::names::projects, &project_ids, "name"),
            self.names_of(read_model::names::users, &user_ids, "username"),
        )?;
        Ok(TaskNames { projects, users })
    }

    /// The counters of these projects' statistics documents (`status:…`, `assignee:…:…`,
    /// `done:…`), by project id: task events move them, the project documents hold no counts. A
    /// project without tasks has none.
    ///
    /// # Errors
    /// MongoDB unreachable.
    pub async fn project_counters(
        &self,
        project_ids: &[&str],
    ) -> Result<HashMap<String, HashMap<String, i64>>, StoreError> {
        let ids: Vec<String> = project_ids
            .iter()
            .map(|id| StatsOwner::Project(id).id())
            .collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let documents = self
            .find_by_ids(read_model::names::stats, &ids, doc! { "fields": 1 })
            .await?;
        Ok(documents
            .iter()
            .filter_map(|d| {
                let Some(StatsOwner::Project(id)) = StatsOwner::parse(d.get_str("_id").ok()?)
                else {
                    return None;
                };
                let counters = d
                    .get_document("fields")
                    .ok()?
                    .iter()
                    .filter_map(|(field, value)| Some((field.clone(), value.as_i64()?)))
                    .collect();
                Some((id.to_owned(), counters))
            })
            .collect())
    }

    /// `field` of the documents of `collection` with these ids, by id.
    async fn names_of(
        &self,
        collection: fn(u64) -> String,
        ids: &[&str],
        field: &str,
    ) -> Result<HashMap<String, String>, StoreError> {
        let documents = self.find_by_ids(collection, ids, doc! { field: 1 }).await?;
        Ok(documents
            .into_iter()
            .filter_map(|d| {
                let id = d.get_str("_id").ok()?.to_owned();
                let name = d.get_str(field).ok()?.to_owned();
                Some((id, name))
            })
            .collect())
    }

    /// The documents of `collection` with these ids (no query for none), with `projection`.
    async fn find_by_ids(
        &self,
        collection: fn(u64) -> String,
        ids: &[&str],
        projection: Document,
    ) -> Result<Vec<Document>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let collection = self.collection::<Document>(collection).await?;
        let cursor = collection
            .find(doc! { "_id": { "$in": ids } })
            .projection(projection)
            .await?;
        Ok(cursor.try_collect().await?)
    }

    /// How many documents of `collection` match `filter`.
    ///
    /// # Errors
    /// MongoDB unreachable.
    pub async fn count(
        &self,
        collection: fn(u64) -> String,
        filter: Document,
    ) -> Result<u64, StoreError> {
        let collection = self.collection::<Document>(collection).await?;
        Ok(collection.count_documents(filter).await?)
    }

    /// The results of an aggregation pipeline on `collection`.
    ///
    /// # Errors
    /// MongoDB unreachable.
    pub async fn aggregate(
        &self,
        collection: fn(u64) -> String,
        pipeline: Vec<Document>,
    ) -> Result<Vec<Document>, StoreError> {
        let collection = self.collection::<Document>(collection).await?;
        let cursor = collection.aggregate(pipeline).await?;
        Ok(cursor.try_collect().await?)
    }

    /// A JSON document from Redis: a miss, a failure (counted, logged once) or a value of
    /// another shape (logged, treated as a miss) all send the read to MongoDB.
    async fn redis_json<T: DeserializeOwned>(&self, key: &str) -> Cached<T> {
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

fn new_enough(version: i64, min_version: Option<u64>) -> bool {
    min_version.is_none_or(|wanted| u64::try_from(version).is_ok_and(|v| v >= wanted))
}

fn newer<T>(a: Option<T>, b: Option<T>, version: impl Fn(&T) -> i64) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if version(&a) >= version(&b) { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The value of `field` in `document` (`Null` when absent): a pagination key.
pub fn field(document: &Document, field: &str) -> Bson {
    document.get(field).cloned().unwrap_or(Bson::Null)
}

/// Deserializes a document read with [`ReadStore::find`] (times from BSON dates, through
/// `read_model::codec`).
///
/// # Errors
/// A document of another shape.
pub fn decode<T: DeserializeOwned>(document: Document) -> Result<T, StoreError> {
    read_model::codec::from_document(document)
        .map_err(|error| StoreError::Internal(format!("malformed read-model document: {error}")))
}

//! The hot entities (users, projects): Redis first, then MongoDB, with a read-your-writes
//! `min_version`.

use mongodb::bson::{Document, doc};
use read_model::documents::{ProjectView, UserView};
use read_model::keys;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::cache::Cached;
use super::{ReadStore, StoreError, decode};

impl ReadStore {
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

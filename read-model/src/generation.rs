//! Which generation of the read models serves reads (`read_model_meta`, `_id: "generation"`).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mongodb::Database;
use mongodb::bson::{Document, doc};
use tokio::sync::Mutex;

use crate::names;

/// How long [`ActiveGeneration`] trusts what it read.
pub const CACHE_FOR: Duration = Duration::from_secs(1);

/// The pointer document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pointer {
    /// The generation that serves reads.
    pub active: u64,
    /// The generation it replaced (dropped by the replay ~10 s after the swap).
    pub previous: Option<u64>,
    /// When the last swap happened.
    pub swapped_at: Option<DateTime<Utc>>,
}

/// Reads and moves the generation pointer.
#[derive(Debug, Clone, Copy)]
pub struct Generation;

impl Generation {
    /// The first generation (what a missing pointer means).
    pub const FIRST: u64 = 1;

    /// The active generation, read now (no cache). A missing pointer means generation 1.
    ///
    /// # Errors
    /// MongoDB unreachable, or a malformed pointer.
    pub async fn active(db: &Database) -> crate::Result<u64> {
        Ok(Self::pointer(db).await?.active)
    }

    /// The whole pointer, read now.
    ///
    /// # Errors
    /// MongoDB unreachable, or a malformed pointer.
    pub async fn pointer(db: &Database) -> crate::Result<Pointer> {
        let found = db
            .collection::<Document>(names::META)
            .find_one(doc! { "_id": names::GENERATION_ID })
            .await?;
        let Some(found) = found else {
            return Ok(Pointer {
                active: Self::FIRST,
                previous: None,
                swapped_at: None,
            });
        };
        let number = |field: &str| -> crate::Result<Option<u64>> {
            match found.get(field) {
                None | Some(mongodb::bson::Bson::Null) => Ok(None),
                Some(value) => {
                    let n = match value {
                        mongodb::bson::Bson::Int32(n) => i64::from(*n),
                        mongodb::bson::Bson::Int64(n) => *n,
                        other => {
                            return Err(crate::Error::Malformed(format!(
                                "read_model_meta.{field} is {other}"
                            )));
                        }
                    };
                    u64::try_from(n).map(Some).map_err(|_| {
                        crate::Error::Malformed(format!("read_model_meta.{field} is {n}"))
                    })
                }
            }
        };
        Ok(Pointer {
            active: number("active")?.unwrap_or(Self::FIRST),
            previous: number("previous")?,
            swapped_at: found
                .get_datetime("swapped_at")
                .ok()
                .map(|date| crate::time::from_bson(*date)),
        })
    }

    /// Points reads at `generation` (remembering the active one as `previous`).
    ///
    /// # Errors
    /// MongoDB unreachable.
    pub async fn swap(db: &Database, generation: u64) -> crate::Result<Pointer> {
        let current = Self::pointer(db).await?;
        let now = Utc::now();
        db.collection::<Document>(names::META)
            .update_one(
                doc! { "_id": names::GENERATION_ID },
                doc! { "$set": {
                    "active": to_i64(generation),
                    "previous": to_i64(current.active),
                    "swapped_at": mongodb::bson::DateTime::from_millis(now.timestamp_millis()),
                } },
            )
            .upsert(true)
            .await?;
        Ok(Pointer {
            active: generation,
            previous: Some(current.active),
            swapped_at: Some(now),
        })
    }
}

fn to_i64(generation: u64) -> i64 {
    i64::try_from(generation).unwrap_or(i64::MAX)
}

/// The active generation, cached for at most [`CACHE_FOR`]: what readers (the query API, the
/// live projector) use on every request or batch.
#[derive(Debug)]
pub struct ActiveGeneration {
    db: Database,
    max_age: Duration,
    cached: Mutex<Option<(Instant, u64)>>,
}

impl ActiveGeneration {
    /// A reader of `db`'s pointer, caching it for [`CACHE_FOR`].
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self::with_max_age(db, CACHE_FOR)
    }

    /// A reader that caches for `max_age` (at most [`CACHE_FOR`]).
    #[must_use]
    pub fn with_max_age(db: Database, max_age: Duration) -> Self {
        Self {
            db,
            max_age: max_age.min(CACHE_FOR),
            cached: Mutex::new(None),
        }
    }

    /// The active generation, read again once the cached value is older than the max age.
    ///
    /// # Errors
    /// MongoDB unreachable, or a malformed pointer.
    pub async fn get(&self) -> crate::Result<u64> {
        let mut cached = self.cached.lock().await;
        if let Some((read_at, generation)) = *cached
            && read_at.elapsed() < self.max_age
        {
            return Ok(generation);
        }
        let generation = Generation::active(&self.db).await?;
        *cached = Some((Instant::now(), generation));
        Ok(generation)
    }
}

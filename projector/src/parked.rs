//! Parked (poison) events: one document per aggregate in `projector_parked`; later events of
//! the aggregate wait behind it (`held`), other aggregates keep flowing. `projector parked
//! list|retry|drop` manage them; a dropped event is remembered in `projector_dropped` and
//! applied as a no-op from then on (by the live projector and by replays).

use std::collections::HashSet;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use domain::AggregateType;
use event_store::read::Envelope;
use futures::TryStreamExt as _;
use mongodb::Database;
use mongodb::bson::{self, Document, doc};
use read_model::{Generation, names};
use serde::{Deserialize, Serialize};

use crate::model::AggregateKey;
use crate::store::{BatchOptions, Store};
use event_store::read;

/// Dropped events: `{ _id: "{type}:{id}:{sequence}", aggregate_type, aggregate_id, sequence }`.
pub const DROPPED: &str = "projector_dropped";

/// One parked aggregate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParkedDoc {
    /// `"{aggregate_type}:{aggregate_id}"`.
    #[serde(rename = "_id")]
    pub id: String,
    /// The aggregate type.
    pub aggregate_type: AggregateType,
    /// The aggregate id.
    pub aggregate_id: String,
    /// The sequence of the poison event.
    pub sequence: i64,
    /// Its global position.
    pub global_position: i64,
    /// Its type.
    pub event_type: String,
    /// Why it cannot be applied.
    pub reason: String,
    /// When it was parked.
    #[serde(with = "read_model::time")]
    pub parked_at: DateTime<Utc>,
    /// Events of the aggregate that arrived behind it.
    #[serde(default)]
    pub held: Vec<Envelope>,
}

/// The `_id` of an aggregate's parked document.
#[must_use]
pub fn parked_id(aggregate_type: AggregateType, aggregate_id: &str) -> String {
    format!("{aggregate_type}:{aggregate_id}")
}

/// Parks an aggregate at `envelope`.
///
/// # Errors
/// MongoDB unreachable.
pub async fn park(
    db: &Database,
    envelope: &Envelope,
    reason: &str,
    held: Vec<Envelope>,
) -> anyhow::Result<()> {
    tracing::error!(
        aggregate_type = %envelope.aggregate_type,
        aggregate_id = envelope.aggregate_id,
        sequence = envelope.sequence,
        event_type = envelope.event_type,
        reason,
        "projector: parked an event that cannot be applied"
    );
    let parked = ParkedDoc {
        id: parked_id(envelope.aggregate_type, &envelope.aggregate_id),
        aggregate_type: envelope.aggregate_type,
        aggregate_id: envelope.aggregate_id.clone(),
        sequence: envelope.sequence,
        global_position: envelope.global_position,
        event_type: envelope.event_type.clone(),
        reason: reason.to_owned(),
        parked_at: read_model::time::truncate(Utc::now()),
        held,
    };
    db.collection::<ParkedDoc>(names::PARKED)
        .replace_one(doc! { "_id": &parked.id }, &parked)
        .upsert(true)
        .await
        .context("parking an event")?;
    Ok(())
}

/// Appends events to a parked aggregate's `held` list.
///
/// # Errors
/// MongoDB unreachable.
pub async fn hold(db: &Database, key: &AggregateKey, envelopes: &[Envelope]) -> anyhow::Result<()> {
    // Encoded as the driver encodes `park`'s (not human-readable: the event id as a UUID, not
    // as text), so that the document reads back as a `ParkedDoc`.
    let held: Vec<bson::Bson> = envelopes
        .iter()
        .map(|envelope| read_model::codec::to_document(envelope).map(bson::Bson::Document))
        .collect::<Result<_, _>>()
        .context("encoding held events")?;
    db.collection::<Document>(names::PARKED)
        .update_one(
            doc! { "_id": parked_id(key.0, &key.1) },
            // A set: a batch retried after a failure holds the same events again.
            doc! { "$addToSet": { "held": { "$each": held } } },
        )
        .await
        .context("holding events behind a parked one")?;
    Ok(())
}

/// Which of `keys` are parked.
///
/// # Errors
/// MongoDB unreachable.
pub async fn parked_among(
    db: &Database,
    keys: &[AggregateKey],
) -> anyhow::Result<HashSet<AggregateKey>> {
    let ids: Vec<String> = keys.iter().map(|(t, i)| parked_id(*t, i)).collect();
    let found: Vec<Document> = db
        .collection::<Document>(names::PARKED)
        .find(doc! { "_id": { "$in": ids } })
        .projection(doc! { "aggregate_type": 1, "aggregate_id": 1 })
        .await
        .context("reading parked aggregates")?
        .try_collect()
        .await
        .context("reading parked aggregates")?;
    Ok(found.iter().filter_map(key_of).collect())
}

/// The `(aggregate_type, aggregate_id)` of a parked or dropped document.
fn key_of(document: &Document) -> Option<AggregateKey> {
    Some((
        document.get_str("aggregate_type").ok()?.parse().ok()?,
        document.get_str("aggregate_id").ok()?.to_owned(),
    ))
}

/// Every parked aggregate.
///
/// # Errors
/// MongoDB unreachable.
pub async fn list(db: &Database) -> anyhow::Result<Vec<ParkedDoc>> {
    db.collection::<ParkedDoc>(names::PARKED)
        .find(doc! {})
        .sort(doc! { "global_position": 1 })
        .await
        .context("listing parked events")?
        .try_collect()
        .await
        .context("listing parked events")
}

/// How many aggregates are parked.
///
/// # Errors
/// MongoDB unreachable.
pub async fn count(db: &Database) -> anyhow::Result<u64> {
    db.collection::<Document>(names::PARKED)
        .count_documents(doc! {})
        .await
        .context("counting parked events")
}

/// Every dropped event.
///
/// # Errors
/// MongoDB unreachable.
pub async fn dropped(db: &Database) -> anyhow::Result<HashSet<(AggregateType, String, i64)>> {
    let found: Vec<Document> = db
        .collection::<Document>(DROPPED)
        .find(doc! {})
        .await
        .context("reading dropped events")?
        .try_collect()
        .await
        .context("reading dropped events")?;
    Ok(found
        .iter()
        .filter_map(|d| {
            let (aggregate_type, aggregate_id) = key_of(d)?;
            Some((aggregate_type, aggregate_id, d.get_i64("sequence").ok()?))
        })
        .collect())
}

async fn find(db: &Database, aggregate_id: &str) -> anyhow::Result<ParkedDoc> {
    db.collection::<ParkedDoc>(names::PARKED)
        .find_one(doc! { "$or": [ { "_id": aggregate_id }, { "aggregate_id": aggregate_id } ] })
        .await
        .context("reading a parked event")?
        .with_context(|| format!("no parked event for aggregate {aggregate_id}"))
}

/// What a retry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retried {
    /// Every event of the aggregate is applied now; it is no longer parked.
    Applied(u64),
    /// It failed again (still parked), with the new reason.
    StillParked(String),
}

/// Applies the parked aggregate's events again, from the event store, to the active generation:
/// un-parks it, then applies every event after its document's version (the held ones included)
/// with the live projector's batch, which parks it again if an event still cannot be applied.
///
/// # Errors
/// No such parked aggregate, or a server unreachable.
pub async fn retry(store: &Store, aggregate_id: &str) -> anyhow::Result<Retried> {
    let parked = find(&store.db, aggregate_id).await?;
    let generation = Generation::active(&store.db).await?;
    let key = (parked.aggregate_type, parked.aggregate_id.clone());
    store
        .db
        .collection::<Document>(names::PARKED)
        .delete_one(doc! { "_id": &parked.id })
        .await
        .context("un-parking")?;
    let version = crate::store::version(&store.db, generation, &key).await?;
    let envelopes = read::of_aggregate(&store.pool, key.0, &key.1, version, i64::MAX).await?;
    let applied = store
        .apply_batch(generation, envelopes, BatchOptions::live())
        .await?;
    match applied.parked.into_iter().next() {
        Some(at) => Ok(Retried::StillParked(at.reason)),
        None => Ok(Retried::Applied(applied.applied)),
    }
}

/// Drops the parked (poison) event for good, then applies the events behind it.
///
/// # Errors
/// No such parked aggregate, or a server unreachable.
pub async fn drop_event(store: &Store, aggregate_id: &str) -> anyhow::Result<Retried> {
    let parked = find(&store.db, aggregate_id).await?;
    let id = format!("{}:{}", parked.id, parked.sequence);
    store
        .db
        .collection::<Document>(DROPPED)
        .update_one(
            doc! { "_id": &id },
            doc! { "$set": {
                "aggregate_type": parked.aggregate_type.as_str(),
                "aggregate_id": &parked.aggregate_id,
                "sequence": parked.sequence,
                "event_type": &parked.event_type,
                "reason": &parked.reason,
                "dropped_at": bson::DateTime::now(),
            } },
        )
        .upsert(true)
        .await
        .context("recording a dropped event")?;
    tracing::warn!(
        aggregate_type = %parked.aggregate_type,
        aggregate_id = parked.aggregate_id,
        sequence = parked.sequence,
        "projector: dropped a parked event"
    );
    retry(store, &parked.aggregate_id).await
}

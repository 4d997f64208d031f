//! The replay's checkpoint in `projector_replay`: the generation it builds, where it stands in
//! commit order and, during its first phase, in aggregate order; a killed replay resumes from it.

use anyhow::Context as _;
use mongodb::bson::{self, Bson, Document, doc};
use read_model::names;

use crate::store::AlsoWrite;
use event_store::read::{AggregateCursor, Position};

use super::CHECKPOINT_ID;
#[derive(Debug, Clone)]
pub(super) struct Checkpoint {
    pub(super) generation: u64,
    /// Where the in-order phase starts (or went on from).
    pub(super) position: Position,
    /// While the first phase (aggregate order) is not done: where it stands.
    pub(super) by_aggregate: Option<AggregateCursor>,
    pub(super) status: String,
}

pub(super) async fn read_checkpoint(db: &mongodb::Database) -> anyhow::Result<Option<Checkpoint>> {
    let found = db
        .collection::<Document>(names::REPLAY)
        .find_one(doc! { "_id": CHECKPOINT_ID })
        .await
        .context("reading the replay checkpoint")?;
    Ok(found.and_then(|d| {
        Some(Checkpoint {
            generation: u64::try_from(d.get_i64("generation").ok()?).ok()?,
            position: Position {
                transaction_id: d.get_str("transaction_id").ok()?.to_owned(),
                global_position: d.get_i64("global_position").ok()?,
            },
            by_aggregate: d.get_document("by_aggregate").ok().and_then(|c| {
                Some(AggregateCursor {
                    below_xmin: c.get_str("below_xmin").ok()?.to_owned(),
                    after: (
                        c.get_str("aggregate_type").ok()?.to_owned(),
                        c.get_str("aggregate_id").ok()?.to_owned(),
                        c.get_i64("sequence").ok()?,
                    ),
                })
            }),
            status: d.get_str("status").ok()?.to_owned(),
        })
    }))
}

/// The checkpoint as a write of the batch that reaches `position` (or, in the first phase,
/// `by_aggregate`).
pub(super) fn checkpoint_write(
    generation: u64,
    position: &Position,
    by_aggregate: Option<&AggregateCursor>,
    status: &str,
) -> AlsoWrite {
    AlsoWrite {
        collection: names::REPLAY.to_owned(),
        id: CHECKPOINT_ID.to_owned(),
        set: checkpoint_fields(generation, position, by_aggregate, status),
    }
}

fn checkpoint_fields(
    generation: u64,
    position: &Position,
    by_aggregate: Option<&AggregateCursor>,
    status: &str,
) -> Document {
    let by_aggregate = by_aggregate.map_or(Bson::Null, |cursor| {
        let (aggregate_type, aggregate_id, sequence) = &cursor.after;
        Bson::Document(doc! {
            "below_xmin": &cursor.below_xmin,
            "aggregate_type": aggregate_type,
            "aggregate_id": aggregate_id,
            "sequence": sequence,
        })
    });
    doc! {
        "generation": i64::try_from(generation).unwrap_or(i64::MAX),
        "transaction_id": &position.transaction_id,
        "global_position": position.global_position,
        "by_aggregate": by_aggregate,
        "status": status,
        "updated_at": bson::DateTime::now(),
    }
}

pub(super) async fn write_checkpoint(
    db: &mongodb::Database,
    generation: u64,
    position: &Position,
    by_aggregate: Option<&AggregateCursor>,
    status: &str,
    fresh: bool,
) -> anyhow::Result<()> {
    let mut set = checkpoint_fields(generation, position, by_aggregate, status);
    if fresh {
        set.insert("started_at", bson::DateTime::now());
    }
    db.collection::<Document>(names::REPLAY)
        .update_one(doc! { "_id": CHECKPOINT_ID }, doc! { "$set": set })
        .upsert(true)
        .await
        .context("writing the replay checkpoint")?;
    Ok(())
}

//! The indexes of a generation's collections (the contract lists them).

use mongodb::bson::{Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Database, IndexModel};

use crate::names;

/// Creates (if missing) the indexes of generation `generation`'s collections.
///
/// Call it before the generation's first write (the projector and the replay do): every write
/// then keeps the indexes in small transactions. An index built over a large collection is one
/// transaction on secantusd-rs, the development server; over a million-event replay's tasks or
/// notifications it outgrew the server's cache, was rolled back and retried without end (ADR 0005).
///
/// # Errors
/// MongoDB unreachable or refusing an index.
pub async fn ensure_indexes(db: &Database, generation: u64) -> crate::Result<()> {
    let plain = |keys: Document| IndexModel::builder().keys(keys).build();
    let unique = |keys: Document| {
        IndexModel::builder()
            .keys(keys)
            .options(IndexOptions::builder().unique(true).build())
            .build()
    };
    let wanted: [(String, Vec<IndexModel>); 4] = [
        (
            names::users(generation),
            vec![
                unique(doc! { "username": 1 }),
                plain(doc! { "username": 1, "_id": 1 }),
                plain(doc! { "username_lower": 1 }),
                plain(doc! { "first_name_lower": 1 }),
                plain(doc! { "last_name_lower": 1 }),
            ],
        ),
        (
            names::projects(generation),
            vec![
                plain(doc! { "owner_id": 1 }),
                plain(doc! { "member_ids": 1 }),
                plain(doc! { "name_lower": 1 }),
                plain(doc! { "created_at": 1, "_id": 1 }),
            ],
        ),
        (
            names::tasks(generation),
            vec![
                // A project's tasks in each order the API offers (their `project_id` prefix
                // also serves the project's filters and statistics). Every index costs each
                // task write, so there is no other.
                plain(doc! { "project_id": 1, "created_at": 1, "_id": 1 }),
                plain(doc! { "project_id": 1, "due_date": 1, "_id": 1 }),
                plain(doc! { "project_id": 1, "updated_at": 1, "_id": 1 }),
                plain(doc! { "project_id": 1, "priority_rank": 1, "_id": 1 }),
                // A project's tasks with a label (a multikey index: one entry per label).
                plain(doc! { "project_id": 1, "labels": 1 }),
                // An assignee's tasks (lists and statistics).
                plain(doc! { "assignee_id": 1, "status": 1 }),
                // Every task, for administrators, in each order.
                plain(doc! { "created_at": 1, "_id": 1 }),
                plain(doc! { "due_date": 1, "_id": 1 }),
                plain(doc! { "updated_at": 1, "_id": 1 }),
                plain(doc! { "priority_rank": 1, "_id": 1 }),
                plain(doc! { "labels": 1 }),
            ],
        ),
        (
            names::notifications(generation),
            vec![plain(doc! { "user_id": 1, "created_at": -1 })],
        ),
    ];
    for (collection, models) in wanted {
        db.collection::<Document>(&collection)
            .create_indexes(models)
            .await?;
    }
    Ok(())
}

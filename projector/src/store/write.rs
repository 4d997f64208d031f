//! Writing what a batch changed, in its transaction: unordered bulk commands of new documents
//! and updates guarded by the version (revision) they were read at.

use std::collections::HashMap;

use anyhow::Context as _;
use mongodb::bson::{Bson, Document, doc};
use mongodb::{ClientSession, Database};
use read_model::changes::Change;
use read_model::names;

use crate::model::Model;

use super::load::Loaded;
use super::{AlsoWrite, BULK_CHUNK, Store};

impl Store {
    /// Writes what changed in the model, in the transaction; returns the statistics written
    /// (with their new revisions) and the changes to announce.
    pub(super) async fn write(
        &self,
        session: &mut ClientSession,
        generation: u64,
        model: &mut Model,
        loaded: &Loaded,
        also: Option<AlsoWrite>,
    ) -> anyhow::Result<Written> {
        let mut changes = Vec::new();
        let dirty = model.take_dirty();
        let notifications = model.take_notifications();

        // Statistics.
        let mut revisions = HashMap::new();
        let mut writes = Writes::default();
        for id in &dirty.stats {
            let stats = model.stats.get(id).cloned().unwrap_or_default();
            let previous = loaded.stats.get(id);
            let revision = previous.and_then(|d| d.get_i64("rev").ok()).unwrap_or(0) + 1;
            let fields: Document = stats
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), Bson::Int64(*v)))
                .collect();
            let document = doc! {
                "_id": id, "fields": fields, "position": stats.position, "rev": revision,
            };
            writes.guarded("rev", previous, document);
            revisions.insert(id.clone(), revision);
        }
        writes
            .run(&self.db, session, &names::stats(generation))
            .await?;

        // Documents, each guarded by the version it was read at.
        let mut writes = Writes::default();
        for id in &dirty.users {
            if let Some(user) = model.user(id) {
                let document = read_model::codec::to_document(&user).context("encoding a user")?;
                writes.guarded("version", loaded.users.get(id), document);
            }
        }
        writes
            .run(&self.db, session, &names::users(generation))
            .await?;
        let mut writes = Writes::default();
        for id in &dirty.projects {
            if let Some(project) = model.project(id) {
                changes.push(Change::of_project(&project).context("encoding a project")?);
                let document =
                    read_model::codec::to_document(&project).context("encoding a project")?;
                writes.guarded("version", loaded.projects.get(id), document);
            }
        }
        writes
            .run(&self.db, session, &names::projects(generation))
            .await?;
        let mut writes = Writes::default();
        for id in &dirty.tasks {
            if let Some(task) = model.task(id) {
                changes.push(Change::of_task(&task).context("encoding a task")?);
                let document = read_model::codec::to_document(&task).context("encoding a task")?;
                writes.guarded("version", loaded.tasks.get(id), document);
            }
        }
        writes
            .run(&self.db, session, &names::tasks(generation))
            .await?;

        // Notifications have deterministic ids and are made only by an event applied in this
        // batch (its aggregate's guarded write is in the same transaction): always new.
        let mut writes = Writes::default();
        for notification in &notifications {
            changes.push(Change::of_notification(notification).context("encoding a notification")?);
            writes.inserts.push(
                read_model::codec::to_document(notification).context("encoding a notification")?,
            );
        }
        writes
            .run(&self.db, session, &names::notifications(generation))
            .await?;

        if let Some(also) = also {
            let command = doc! {
                "update": &also.collection,
                "updates": [{ "q": { "_id": &also.id }, "u": { "$set": also.set }, "upsert": true }],
            };
            write_command(&self.db, session, &also.collection, command).await?;
        }
        Ok(Written { revisions, changes })
    }
}

/// What [`Store::write`] wrote.
pub(super) struct Written {
    /// The statistics written, with their new revisions.
    pub revisions: HashMap<String, i64>,
    /// The projects, tasks and notifications written, for the change feed.
    pub changes: Vec<Change>,
}

/// MongoDB's error code for a duplicate key.
const DUPLICATE_KEY: i32 = 11000;

/// Whether an entry of a reply's `writeErrors` is a duplicate key (a document with the `_id`
/// exists).
pub(super) fn is_duplicate_key(error: &Bson) -> bool {
    error
        .as_document()
        .and_then(|error| error.get_i32("code").ok())
        == Some(DUPLICATE_KEY)
}

/// An insert met a document with its `_id`: the batch read too little (a redelivered creation)
/// or another writer came in between.
#[derive(Debug)]
pub(super) struct DuplicateInsert {
    collection: String,
}

impl std::fmt::Display for DuplicateInsert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: a document with this _id exists", self.collection)
    }
}

impl std::error::Error for DuplicateInsert {}

/// The writes of one collection in a batch: new documents and guarded updates.
#[derive(Debug, Default, PartialEq)]
struct Writes {
    /// Documents the batch did not find when it read: inserted (if one exists after all, the
    /// insert fails on its duplicate `_id` and the batch is retried).
    inserts: Vec<Document>,
    /// Update statements, each guarded by the value its field was read with.
    updates: Vec<Document>,
}

impl Writes {
    /// Writes `after` over the document read as `before`, where `field` still has the value it
    /// was read with, setting only the fields that changed (an index is touched only when its
    /// keys changed); or inserts `after` where nothing was read.
    pub(super) fn guarded(&mut self, field: &str, before: Option<&Document>, after: Document) {
        let Some(before) = before else {
            self.inserts.push(after);
            return;
        };
        let previous = before.get(field).cloned().unwrap_or(Bson::Null);
        let id = before.get("_id").cloned().unwrap_or(Bson::Null);
        let mut changed: Document = after
            .into_iter()
            .filter(|(key, value)| before.get(key) != Some(value))
            .collect();
        if changed.is_empty() {
            // Still a write: two batches that touch one document must conflict.
            changed.insert(field, previous.clone());
        }
        self.updates
            .push(doc! { "q": { "_id": id, field: previous }, "u": { "$set": changed } });
    }

    /// Runs them in the transaction: unordered bulk `insert` commands, then unordered bulk
    /// `update` commands of which every statement must match one document. A duplicate `_id` or
    /// a document another writer changed in between fails the batch, which is retried.
    pub(super) async fn run(
        self,
        db: &Database,
        session: &mut ClientSession,
        collection: &str,
    ) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let (inserts, updates) = (self.inserts.len(), self.updates.len());
        for chunk in self.inserts.chunks(BULK_CHUNK) {
            let command =
                doc! { "insert": collection, "documents": chunk.to_vec(), "ordered": false };
            write_command(db, session, collection, command).await?;
        }
        for chunk in self.updates.chunks(BULK_CHUNK) {
            let command =
                doc! { "update": collection, "updates": chunk.to_vec(), "ordered": false };
            let reply = write_command(db, session, collection, command).await?;
            let matched = reply
                .get_i32("n")
                .map(i64::from)
                .or_else(|_| reply.get_i64("n"))
                .unwrap_or(0);
            anyhow::ensure!(
                usize::try_from(matched).is_ok_and(|n| n == chunk.len()),
                "{collection}: {} of {} documents changed while the batch was applied; retrying",
                chunk
                    .len()
                    .saturating_sub(usize::try_from(matched).unwrap_or(0)),
                chunk.len()
            );
        }
        if inserts + updates > 0 {
            tracing::trace!(
                collection,
                inserts,
                updates,
                elapsed_ms = started.elapsed().as_millis(),
                "projector: bulk write"
            );
        }
        Ok(())
    }
}

/// Runs a write command on `collection` in the transaction; returns its reply. A write error
/// (a duplicate `_id` among them: another writer came in between) fails the batch, which is
/// retried.
async fn write_command(
    db: &Database,
    session: &mut ClientSession,
    collection: &str,
    command: Document,
) -> anyhow::Result<Document> {
    let reply = db
        .run_command(command)
        .session(&mut *session)
        .await
        .with_context(|| format!("writing {collection}"))?;
    if let Ok(errors) = reply.get_array("writeErrors") {
        if errors.iter().all(is_duplicate_key) {
            return Err(DuplicateInsert {
                collection: collection.to_owned(),
            }
            .into());
        }
        anyhow::bail!("writing {collection} (the batch is retried): {errors:?}");
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn a_guarded_write_sets_what_changed_at_the_read_version_or_inserts() {
        let before = doc! { "_id": "a", "title": "old", "status": "pending", "version": 2_i64 };
        let after = doc! { "_id": "a", "title": "new", "status": "pending", "version": 3_i64 };
        let mut writes = Writes::default();
        writes.guarded("version", Some(&before), after.clone());
        writes.guarded("version", Some(&before), before.clone());
        writes.guarded("version", None, after.clone());
        assert_eq!(
            writes,
            Writes {
                inserts: vec![after],
                updates: vec![
                    doc! {
                        "q": { "_id": "a", "version": 2_i64 },
                        "u": { "$set": { "title": "new", "version": 3_i64 } },
                    },
                    // An unchanged document is still written (batches touching it conflict).
                    doc! { "q": { "_id": "a", "version": 2_i64 }, "u": { "$set": { "version": 2_i64 } } },
                ],
            }
        );
    }
}

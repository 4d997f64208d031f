//! [`sweep`]: deletes attachment files that no live attachment owns, once they are older than
//! the grace period (`TASKTRAIL_STORAGE__ORPHAN_GRACE_SECS`). The event store decides: a file
//! is kept only while its task (loaded from its events) has an attachment with its id and key.
//! That covers an upload whose command never came (a crash, a refusal whose delete failed), a
//! presigned upload never completed, and a removal or deletion the cleaner has not handled.

use std::collections::BTreeMap;
use std::time::Duration;

use attachment_store::{AttachmentStore, StoredObject};
use chrono::Utc;
use domain::Task;

use crate::error::ApiError;
use crate::state::Commands;

/// What a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Files older than the grace period that were looked at.
    pub checked: usize,
    /// Files deleted: no live attachment owned them.
    pub deleted: usize,
}

/// Checks every file older than `grace` against its task's events and deletes the orphans.
///
/// # Errors
/// The storage or PostgreSQL is unavailable (the next sweep tries again).
pub async fn sweep(
    store: &AttachmentStore,
    tasks: &Commands<Task>,
    grace: Duration,
) -> Result<Swept, ApiError> {
    let before = Utc::now() - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let objects = store
        .objects_before(before)
        .await
        .map_err(crate::routes::attachments::storage_error)?;
    let mut by_task: BTreeMap<_, Vec<StoredObject>> = BTreeMap::new();
    for object in objects {
        by_task.entry(object.task_id).or_default().push(object);
    }
    let mut swept = Swept::default();
    for (task_id, objects) in by_task {
        let (task, _) = tasks.load(task_id).await?;
        let live = task.state().filter(|state| !state.deleted);
        for object in objects {
            swept.checked += 1;
            let owned = live.is_some_and(|state| {
                state.attachments.get(&object.attachment_id) == Some(&object.key)
            });
            if !owned {
                store
                    .delete(&object.key)
                    .await
                    .map_err(crate::routes::attachments::storage_error)?;
                swept.deleted += 1;
                tracing::info!(
                    key = %object.key,
                    last_modified = %object.last_modified,
                    "attachment sweep: deleted an orphaned file"
                );
            }
        }
    }
    Ok(swept)
}

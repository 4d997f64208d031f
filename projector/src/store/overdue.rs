//! The overdue pass: a notification for every open task past its due date.

use std::collections::HashSet;

use anyhow::Context as _;
use chrono::NaiveDate;
use futures::TryStreamExt as _;
use mongodb::bson::doc;
use read_model::changes::Change;
use read_model::documents::{TaskView, status};
use read_model::names;

use crate::projection::{self};

use super::write::is_duplicate_key;
use super::{BULK_CHUNK, Store};

impl Store {
    /// Writes the overdue notifications of every open task due before `today`; returns how many
    /// tasks are overdue. Notifications have deterministic ids (task and due date), so they are
    /// inserted in unordered bulk commands and one that exists already (a duplicate `_id`) is
    /// left as it is: running the pass again changes nothing. With `announce`, the ones it
    /// inserted go to the change feed (the live generation's pass; a replay's does not).
    ///
    /// # Errors
    /// MongoDB unreachable, or a write error other than a duplicate `_id`.
    pub async fn overdue_pass(
        &self,
        generation: u64,
        today: NaiveDate,
        announce: bool,
    ) -> anyhow::Result<u64> {
        let collection = names::notifications(generation);
        let today_text = today.format("%Y-%m-%d").to_string();
        let mut cursor = self
            .db
            .collection::<TaskView>(&names::tasks(generation))
            .find(doc! {
                "deleted": false,
                "status": { "$in": status::OPEN.to_vec() },
                "due_date": { "$lt": today_text, "$ne": null },
            })
            .await
            .context("finding overdue tasks")?;
        let mut overdue = 0;
        let mut chunk = Vec::with_capacity(BULK_CHUNK);
        let mut made = Vec::with_capacity(BULK_CHUNK);
        loop {
            let task = cursor.try_next().await.context("reading overdue tasks")?;
            if let Some(notification) = task
                .as_ref()
                .and_then(|task| projection::overdue_notification(task, today))
            {
                chunk.push(
                    read_model::codec::to_document(&notification)
                        .context("encoding a notification")?,
                );
                made.push(notification);
                overdue += 1;
            }
            if chunk.len() == BULK_CHUNK || (task.is_none() && !chunk.is_empty()) {
                let command = doc! {
                    "insert": &collection,
                    "documents": std::mem::take(&mut chunk),
                    "ordered": false,
                };
                let reply = self
                    .db
                    .run_command(command)
                    .await
                    .context("inserting overdue notifications")?;
                let errors = reply
                    .get_array("writeErrors")
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let other = errors.iter().find(|error| !is_duplicate_key(error));
                if let Some(error) = other {
                    anyhow::bail!("inserting overdue notifications: {error:?}");
                }
                let made = std::mem::take(&mut made);
                if announce {
                    // Those not refused as duplicates are new.
                    let refused: HashSet<usize> = errors
                        .iter()
                        .filter_map(|error| {
                            usize::try_from(error.as_document()?.get_i32("index").ok()?).ok()
                        })
                        .collect();
                    let changes = made
                        .iter()
                        .enumerate()
                        .filter(|(index, _)| !refused.contains(index))
                        .map(|(_, notification)| Change::of_notification(notification))
                        .collect::<Result<Vec<_>, _>>()
                        .context("encoding a notification")?;
                    self.announce(&changes).await?;
                }
            }
            if task.is_none() {
                return Ok(overdue);
            }
        }
    }
}

//! [`Cleaner`]: a Kafka consumer of the task topic (its own group,
//! `TASKTRAIL_STORAGE__CLEANER_GROUP`) that deletes an attachment's file after its
//! `AttachmentRemoved` event, and a task's files after its `TaskDeleted` event. An offset is
//! stored (and committed within a second) only after the delete succeeded, and deleting twice
//! is harmless, so nothing is left behind by a crash or a storage outage: the cleaner waits and
//! tries again.

use std::time::Duration;

use anyhow::Context as _;
use attachment_store::{AttachmentStore, StoreError};
use domain::{AggregateType, TaskEvent};
use event_store::read::Envelope;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::{Headers as _, Message as _};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The longest pause between two attempts at a delete while the storage is down.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What an event asks of the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleanup {
    /// Delete one object (`AttachmentRemoved`).
    Object(String),
    /// Delete every object of a task (`TaskDeleted`).
    Task(Uuid),
}

/// The cleaner (see the module documentation).
#[derive(Debug)]
pub struct Cleaner {
    store: AttachmentStore,
    brokers: String,
    topic: String,
    group: String,
}

impl Cleaner {
    /// A cleaner of the task topic under `topic_prefix`, in consumer group `group`.
    #[must_use]
    pub fn new(store: AttachmentStore, brokers: &str, topic_prefix: &str, group: &str) -> Self {
        Self {
            store,
            brokers: brokers.to_owned(),
            topic: AggregateType::Task.topic(topic_prefix),
            group: group.to_owned(),
        }
    }

    /// Consumes until `stop` is cancelled.
    ///
    /// # Errors
    /// A consumer configuration librdkafka refuses.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group)
            .set("auto.offset.reset", "earliest")
            // An event's offset is stored once it is handled (its files deleted, or nothing to
            // do), and librdkafka commits the stored offsets every second and on close: a crash
            // handles at most a second of events again, harmlessly. Committing each message on
            // its own cost the broker as much as all the relay's produce requests.
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.commit.interval.ms", "1000")
            // Deleting files can wait a moment: the broker holds a fetch until 64 KiB have
            // come or a second has passed, so under load the cleaner fetches a few times a
            // second rather than once for every few events.
            .set("fetch.min.bytes", "65536")
            .set("fetch.wait.max.ms", "1000")
            .set("topic.metadata.refresh.interval.ms", "2000")
            .create()
            .context("creating the attachment cleaner's Kafka consumer")?;
        consumer
            .subscribe(&[&self.topic])
            .context("subscribing the attachment cleaner")?;
        tracing::info!(topic = %self.topic, group = %self.group, "attachment cleaner: running");
        loop {
            let message = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                message = consumer.recv() => message,
            };
            let message = match message {
                Ok(message) => message,
                Err(error) => {
                    tracing::warn!(%error, "attachment cleaner: reading Kafka failed");
                    tokio::select! {
                        () = stop.cancelled() => return Ok(()),
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            // The relay names each event's type in a header: most events are skipped unread.
            let wanted = message.headers().is_none_or(|headers| {
                headers.iter().all(|header| {
                    header.key != "event_type"
                        || matches!(header.value, Some(b"AttachmentRemoved" | b"TaskDeleted"))
                })
            });
            if let Some(cleanup) = wanted.then(|| cleanup(message.payload())).flatten() {
                let mut failures = 0_u32;
                while let Err(error) = self.clean(&cleanup).await {
                    failures = failures.saturating_add(1);
                    let pause = backoff(failures);
                    tracing::warn!(
                        %error,
                        retry_in_ms = pause.as_millis(),
                        "attachment cleaner: deleting a file failed; retrying"
                    );
                    tokio::select! {
                        () = stop.cancelled() => return Ok(()),
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
            if let Err(error) = consumer.store_offset_from_message(&message) {
                tracing::warn!(%error, "attachment cleaner: storing an offset failed");
            }
        }
    }

    async fn clean(&self, cleanup: &Cleanup) -> Result<(), StoreError> {
        match cleanup {
            Cleanup::Object(key) => {
                self.store.delete(key).await?;
                tracing::info!(
                    key,
                    "attachment cleaner: deleted a removed attachment's file"
                );
            }
            Cleanup::Task(task_id) => {
                let deleted = self.store.delete_task(*task_id).await?;
                if deleted > 0 {
                    tracing::info!(%task_id, deleted, "attachment cleaner: deleted a deleted task's files");
                }
            }
        }
        Ok(())
    }
}

/// What the Kafka message `payload` (an [`Envelope`]) asks of the bucket, if anything. Events
/// of other types are skipped before their payload is decoded; one that cannot be read is
/// logged and skipped (the orphan sweep is the safety net for its file).
#[must_use]
pub fn cleanup(payload: Option<&[u8]>) -> Option<Cleanup> {
    let envelope: Envelope = match serde_json::from_slice(payload?) {
        Ok(envelope) => envelope,
        Err(error) => {
            tracing::warn!(%error, "attachment cleaner: an unreadable message was skipped");
            return None;
        }
    };
    if envelope.aggregate_type != AggregateType::Task
        || !matches!(
            envelope.event_type.as_str(),
            "AttachmentRemoved" | "TaskDeleted"
        )
    {
        return None;
    }
    let task_id: Uuid = envelope.aggregate_id.parse().ok()?;
    let event = envelope
        .upcast()
        .map_err(|error| error.to_string())
        .and_then(|envelope| {
            serde_json::from_value::<TaskEvent>(envelope.payload).map_err(|error| error.to_string())
        });
    match event {
        Ok(TaskEvent::AttachmentRemoved { storage_key, .. }) => Some(Cleanup::Object(storage_key)),
        Ok(TaskEvent::TaskDeleted) => Some(Cleanup::Task(task_id)),
        Ok(_) => None,
        Err(error) => {
            tracing::warn!(%error, %task_id, "attachment cleaner: an undecodable event was skipped");
            None
        }
    }
}

/// 200 ms, 400 ms, … capped at [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(8);
    Duration::from_millis(200 * (1_u64 << exponent)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(event_type: &str, payload: &serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "event_id": Uuid::nil(),
            "aggregate_type": "task",
            "aggregate_id": Uuid::from_u128(7).to_string(),
            "sequence": 3,
            "global_position": 9,
            "event_type": event_type,
            "event_version": "1.0",
            "occurred_at": "2026-12-06T00:00:00Z",
            "payload": payload,
        }))
        .expect("JSON")
    }

    #[test]
    fn removals_and_deletions_ask_for_deletes_and_nothing_else_does() {
        let removed = envelope(
            "AttachmentRemoved",
            &serde_json::json!({"AttachmentRemoved": {
                "attachment_id": Uuid::from_u128(1), "storage_key": "tasks/a/b"}}),
        );
        assert_eq!(
            cleanup(Some(&removed)),
            Some(Cleanup::Object("tasks/a/b".to_owned()))
        );
        let deleted = envelope("TaskDeleted", &serde_json::json!("TaskDeleted"));
        assert_eq!(
            cleanup(Some(&deleted)),
            Some(Cleanup::Task(Uuid::from_u128(7)))
        );
        let edited = envelope(
            "TaskEdited",
            &serde_json::json!({"TaskEdited": {"title": "x"}}),
        );
        assert_eq!(cleanup(Some(&edited)), None);
        assert_eq!(cleanup(Some(b"not json")), None);
        assert_eq!(cleanup(None), None);
    }
}

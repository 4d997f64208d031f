//! The relay's Kafka producer: how it is configured, how a batch is handed to it, and the
//! acknowledgement a batch waits for.

use std::time::Duration;

use anyhow::Context as _;
use event_store::read::{Envelope, Position};
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::checkpoint::NextOffsets;

/// Resolves when Kafka acknowledged every message of a batch (see [`acknowledgement`]).
pub(crate) type Acknowledgement =
    std::pin::Pin<Box<dyn Future<Output = anyhow::Result<NextOffsets>> + Send>>;

/// The relay's idempotent producer for the cluster at `brokers`.
pub(crate) fn create(brokers: &str) -> anyhow::Result<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        // A missing topic is a signal (broker data loss), not something to paper over.
        .set("allow.auto.create.topics", "false")
        // No local deadline: a message that times out while in flight may still be written
        // later, after its re-sent successors. The relay watches the deadline itself.
        .set("message.timeout.ms", "0")
        // Send as soon as the batch is queued (librdkafka's default waits 5 ms for more):
        // the relay hands over whole batches, and this wait would be read-your-writes lag.
        .set("linger.ms", "1")
        .create()
        .context("creating the relay's Kafka producer")
}

/// What became of a batch handed to the producer.
pub(crate) enum Sent {
    /// Every event is queued: the deliveries (topic and future) to wait for.
    Queued(Vec<(String, DeliveryFuture)>),
    /// The producer refused an event: the batch may be sent again.
    Refused(anyhow::Error),
}

/// Hands every event of the batch to the producer, in order. An error means an envelope could
/// not be encoded.
pub(crate) async fn send(
    producer: &FutureProducer,
    topic_prefix: &str,
    events: Vec<(Position, Envelope)>,
) -> anyhow::Result<Sent> {
    let mut deliveries: Vec<(String, DeliveryFuture)> = Vec::with_capacity(events.len());
    for (_, envelope) in events {
        let topic = envelope.aggregate_type.topic(topic_prefix);
        let value = serde_json::to_vec(&envelope).context("encoding an envelope")?;
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "event_type",
                value: Some(envelope.event_type.as_str()),
            })
            .insert(Header {
                key: "request_id",
                value: Some(envelope.metadata.request_id.as_str()),
            });
        let mut record = FutureRecord::to(&topic)
            .key(envelope.aggregate_id.as_str())
            .payload(&value)
            .headers(headers);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push((topic, delivery));
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((error, _record)) => {
                    return Ok(Sent::Refused(
                        anyhow::Error::new(error).context("queueing an event for Kafka"),
                    ));
                }
            }
        }
    }
    Ok(Sent::Queued(deliveries))
}

/// Resolves when Kafka acknowledged every delivery of a batch, with the offset after the last
/// acknowledged message of every partition it went to; an error when Kafka refused a message
/// (the batch may be sent again).
pub(crate) fn acknowledgement(deliveries: Vec<(String, DeliveryFuture)>) -> Acknowledgement {
    Box::pin(async move {
        let mut next_offsets = NextOffsets::new();
        for (topic, delivery) in deliveries {
            match delivery.await {
                Ok(Ok(delivered)) => {
                    let next = next_offsets
                        .entry((topic, delivered.partition))
                        .or_default();
                    *next = (*next).max(delivered.offset + 1);
                }
                Ok(Err((error, _message))) => {
                    return Err(error).context("Kafka did not acknowledge an event");
                }
                Err(_canceled) => anyhow::bail!("the Kafka producer dropped a delivery"),
            }
        }
        Ok(next_offsets)
    })
}

/// Drops a producer on a blocking thread: librdkafka's destructor flushes and can wait for an
/// unreachable broker.
pub(crate) fn drop_later(producer: FutureProducer) {
    drop(tokio::task::spawn_blocking(move || drop(producer)));
}

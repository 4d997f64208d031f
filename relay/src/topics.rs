//! The relay's topics, `<prefix>.user|project|task`: their names, which of them the broker
//! lacks, and creating them.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context as _;
use domain::AggregateType;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, Producer as _};

use crate::RelaySettings;

/// The topic of every aggregate type: `<prefix>.user`, `<prefix>.project`, `<prefix>.task`.
#[must_use]
pub fn names(prefix: &str) -> Vec<String> {
    AggregateType::ALL
        .iter()
        .map(|aggregate_type| aggregate_type.topic(prefix))
        .collect()
}

/// The relay's topics the broker does not know.
pub(crate) async fn missing(
    producer: &FutureProducer,
    prefix: &str,
) -> anyhow::Result<Vec<String>> {
    let producer = producer.clone();
    let names = names(prefix);
    tokio::task::spawn_blocking(move || {
        let metadata = producer
            .client()
            .fetch_metadata(None, Duration::from_secs(5))
            .context("fetching Kafka metadata")?;
        let known: HashSet<&str> = metadata
            .topics()
            .iter()
            .filter(|topic| topic.error().is_none())
            .map(rdkafka::metadata::MetadataTopic::name)
            .collect();
        Ok(names
            .into_iter()
            .filter(|name| !known.contains(name.as_str()))
            .collect())
    })
    .await
    .context("the metadata task panicked")?
}

/// Creates the missing topics, retrying with backoff until the broker takes them.
pub(crate) async fn create_until_done(brokers: &str, settings: &RelaySettings) {
    let mut failures = 0_u32;
    loop {
        match create(brokers, settings).await {
            Ok(()) => return,
            Err(error) => {
                failures = failures.saturating_add(1);
                let pause = crate::publish::backoff(failures);
                tracing::warn!(
                    error = format!("{error:#}"),
                    retry_in_ms = pause.as_millis(),
                    "relay: cannot create the topics"
                );
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Creates `<prefix>.user|project|task` if missing.
async fn create(brokers: &str, settings: &RelaySettings) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("creating the Kafka admin client")?;
    let names = names(&settings.topic_prefix);
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                settings.partitions,
                TopicReplication::Fixed(settings.replication_factor),
            )
        })
        .collect();
    let results = admin
        .create_topics(
            &topics,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .context("creating the Kafka topics")?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("creating topic {topic}: {code}"),
        }
    }
    Ok(())
}

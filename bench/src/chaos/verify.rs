//! The checks after the load: the system settles, then every acknowledged version is looked
//! for in PostgreSQL, in Kafka and in the read models, and the read models are compared with a
//! fresh replay.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use mongodb::bson::{Document, doc};
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use tasktrail_bench::services::{Target, run_to_end};

use crate::report::Report;
use crate::say;
use crate::system::System;

/// Waits until both lag gauges read 0, the way an operator would decide that the system caught
/// up. The checks that follow then hold the projector's gauge to its word: an acknowledged
/// version missing from the read models after it read 0 is reported as behind (the gauge once
/// read 0 while a partition still trailed).
pub(crate) async fn settle(system: &mut System) -> anyhow::Result<()> {
    let started = Instant::now();
    let timeout = Duration::from_secs(600);
    loop {
        system.revive().await?;
        let relay = system
            .command
            .metric("tasktrail_relay_lag_events")
            .await
            .unwrap_or(f64::NAN);
        let projector = system
            .projector
            .metric("tasktrail_projector_lag_events")
            .await
            .unwrap_or(f64::NAN);
        if relay == 0.0 && projector == 0.0 {
            say(&format!(
                "settled in {:.1} s",
                started.elapsed().as_secs_f64()
            ));
            return Ok(());
        }
        if started.elapsed() >= timeout {
            // The checks below report what is missing.
            say(&format!(
                "not settled after {timeout:?}: relay lag {relay}, projector lag {projector}"
            ));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

pub(crate) async fn verify(
    pool: &sqlx::PgPool,
    target: &Target,
    acknowledged: &HashMap<String, i64>,
    logs: &Path,
) -> anyhow::Result<Report> {
    let mut report = Report {
        acknowledged: acknowledged.len(),
        ..Report::default()
    };
    // PostgreSQL: the highest sequence of each aggregate.
    let stored: HashMap<String, i64> = event_store::read::last_sequences(pool)
        .await
        .context("reading the event store")?
        .into_iter()
        .map(|((_, aggregate_id), sequence)| (aggregate_id, sequence))
        .collect();
    // Kafka: every (aggregate, sequence) on the three topics.
    let published = read_topics(target).await?;
    report.kafka_messages = published.len();
    // The read models: the version of each document of the active generation.
    let projected = read_model_versions(target).await?;
    for (id, version) in acknowledged {
        if stored.get(id).is_none_or(|stored| stored < version) {
            report.missing_in_postgres.push(format!("{id} v{version}"));
        }
        if !published.contains(&(id.clone(), *version)) {
            report.missing_in_kafka.push(format!("{id} v{version}"));
        }
        if projected
            .get(id)
            .is_none_or(|projected| projected < version)
        {
            report
                .behind_in_read_models
                .push(format!("{id} v{version}"));
        }
    }
    // A fresh replay into a scratch generation, compared with the live one. A batch still
    // being recounted differs for a moment, a real drift stays: compare up to five times.
    for attempt in 1..=5 {
        report.replay_differences = match run_to_end(
            "projector",
            &["replay", "--dry-run", "--quiet"],
            target,
            logs,
        )
        .await
        {
            Ok(_) => None,
            Err(error) => Some(format!("{error:#}")),
        };
        if report.replay_differences.is_none() || attempt == 5 {
            break;
        }
        say("the live read models differ from a fresh replay; comparing again in 5 s");
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    report.ok = report.missing_in_postgres.is_empty()
        && report.missing_in_kafka.is_empty()
        && report.behind_in_read_models.is_empty()
        && report.replay_differences.is_none();
    Ok(report)
}

/// Reads the three topics from their start until nothing new came for 10 s.
async fn read_topics(target: &Target) -> anyhow::Result<HashSet<(String, i64)>> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &target.kafka_brokers)
        .set("group.id", format!("{}-verify", target.topic_prefix))
        .set("enable.auto.commit", "false")
        .create()
        .context("creating the verifying consumer")?;
    let mut assignment = TopicPartitionList::new();
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .context("reading the topics")?;
    for topic in metadata.topics() {
        if topic
            .name()
            .starts_with(&format!("{}.", target.topic_prefix))
        {
            for partition in topic.partitions() {
                assignment.add_partition_offset(topic.name(), partition.id(), Offset::Beginning)?;
            }
        }
    }
    consumer.assign(&assignment)?;
    let mut seen = HashSet::new();
    let mut stream = consumer.stream();
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(10), stream.next()).await
    {
        let message = message.context("reading a message")?;
        if let Some(payload) = message.payload()
            && let Ok(envelope) = serde_json::from_slice::<event_store::read::Envelope>(payload)
        {
            seen.insert((envelope.aggregate_id, envelope.sequence));
        }
    }
    Ok(seen)
}

async fn read_model_versions(target: &Target) -> anyhow::Result<HashMap<String, i64>> {
    let client = mongodb::Client::with_uri_str(&target.mongo_url).await?;
    let db = client.database(&target.mongo_database);
    let generation = read_model::Generation::active(&db).await?;
    let mut versions = HashMap::new();
    for collection in [
        read_model::names::users(generation),
        read_model::names::projects(generation),
        read_model::names::tasks(generation),
    ] {
        let mut cursor = db
            .collection::<Document>(&collection)
            .find(doc! {})
            .projection(doc! { "version": 1 })
            .await?;
        while let Some(document) = futures::TryStreamExt::try_next(&mut cursor).await? {
            if let (Ok(id), Ok(version)) = (document.get_str("_id"), document.get_i64("version")) {
                versions.insert(id.to_owned(), version);
            }
        }
    }
    Ok(versions)
}

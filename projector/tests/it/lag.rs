//! The lag gauge against the real relay, broker and consumer-group offsets.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tasktrail_projector::lag::LagProbe;
use test_support::workload::workload;
use test_support::{EVENTUALLY, eventually};

use crate::helpers::{World, seed, start_relay, wait_for_topics};

/// Commits `offsets` for the test's group the way the projector does after a batch.
async fn commit(world: &World, offsets: Vec<(String, i32, i64)>) {
    let brokers = world.settings.kafka.brokers.clone();
    let group = world.settings.projector.group_id.clone();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut list = TopicPartitionList::new();
        for (topic, partition, offset) in offsets {
            list.add_partition_offset(&topic, partition, Offset::Offset(offset))
                .expect("offset");
        }
        consumer.commit(&list, CommitMode::Sync).expect("commit");
        test_support::drop_within(consumer, Duration::from_secs(5));
    })
    .await
    .expect("commit task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trailing_partition_counts_in_full_although_the_others_applied_the_newest_events() {
    let world = World::new().await;
    let seeded = workload(21, 6, 240);
    seed(world.pool(), &seeded).await;
    let relay = start_relay(&world);
    wait_for_topics(&world).await;
    eventually(EVENTUALLY, "the relay to publish every event", || async {
        let lag = relay::lag(world.pool()).await.ok()?;
        (lag.events == 0).then_some(())
    })
    .await;
    let topics = relay::topics::names(&world.settings.kafka.topic_prefix);
    let published = relay::partition_offsets(world.pool(), &topics)
        .await
        .expect("partition offsets");
    // The delivery reports' offsets: one message per event, nothing sent twice.
    let total: i64 = published.iter().map(|(_, _, next)| next).sum();
    assert_eq!(total, i64::try_from(seeded.len()).expect("count"));

    let probe = LagProbe::new(
        world.pool().clone(),
        &world.settings.kafka.brokers,
        &world.settings.projector.group_id,
        topics.clone(),
    )
    .expect("probe");
    // Nothing committed: every published message is still to apply.
    let lag = probe.measure().await.expect("lag");
    assert_eq!(lag.events, total);

    // Every partition applied to its end but one, which applied only its first message. The
    // newest event may well be in the partitions that are done: a "highest position applied"
    // would read 0 here.
    let (trailing_topic, trailing_partition, trailing_next) = published
        .iter()
        .max_by_key(|(_, _, next)| *next)
        .cloned()
        .expect("a partition");
    assert!(trailing_next >= 2, "{published:?}");
    let mut offsets: Vec<(String, i32, i64)> = published
        .iter()
        .map(|(topic, partition, next)| {
            let committed = if (topic, *partition) == (&trailing_topic, trailing_partition) {
                1
            } else {
                *next
            };
            (topic.clone(), *partition, committed)
        })
        .collect();
    commit(&world, offsets.clone()).await;
    let lag = probe.measure().await.expect("lag");
    assert_eq!(lag.events, trailing_next - 1);
    let age = lag.seconds.expect("the trailing message was read");
    assert!(age > 0.0 && age < 600.0, "{age}");

    // All applied.
    for offset in &mut offsets {
        if (&offset.0, offset.1) == (&trailing_topic, trailing_partition) {
            offset.2 = trailing_next;
        }
    }
    commit(&world, offsets).await;
    let lag = probe.measure().await.expect("lag");
    assert_eq!(lag.events, 0);
    assert_eq!(lag.seconds, Some(0.0));

    // Events the relay has not published count too.
    relay.stop().await;
    let unpublished = workload(22, 2, 5);
    seed(world.pool(), &unpublished).await;
    let lag = probe.measure().await.expect("lag");
    assert_eq!(lag.events, i64::try_from(unpublished.len()).expect("count"));
    assert!(lag.seconds.expect("seconds") >= 0.0);
    world.cleanup().await;
}

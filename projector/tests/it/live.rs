//! `projector run` end to end: events through the real relay and projector.

use std::time::Duration;

use event_store::read::{self, Position};
use mongodb::bson::doc;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use read_model::{Generation, keys, names};
use test_support::workload::workload;

use crate::helpers::{
    World, seed, spawn_projector_process, start_projector, start_relay, wait_for_topics,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_through_the_relay_and_projector_appear_in_mongo_and_redis() {
    let world = World::new().await;
    let events = workload(11, 12, 300);
    seed(world.pool(), &events).await;
    let relay = start_relay(&world);
    wait_for_topics(&world).await;
    let projector = start_projector(&world).await;
    world.wait_converged().await;

    let generation = Generation::active(&world.store.db)
        .await
        .expect("generation");
    let task = events
        .iter()
        .find(|e| e.aggregate_type == domain::AggregateType::Task)
        .expect("a task");
    let stored = world
        .store
        .db
        .collection::<read_model::documents::TaskView>(&names::tasks(generation))
        .find_one(doc! { "_id": task.aggregate_id.to_string() })
        .await
        .expect("find")
        .expect("the task is projected");
    let last = events
        .iter()
        .filter(|e| e.aggregate_id == task.aggregate_id)
        .map(|e| e.sequence)
        .max();
    assert_eq!(Some(stored.version), last, "{stored:?}");
    let mut redis = world.store.redis.clone();
    let user = events
        .iter()
        .find(|e| e.aggregate_type == domain::AggregateType::User)
        .expect("a user");
    let json: Option<String> = redis::cmd("GET")
        .arg(keys::user(
            &world.settings.redis.key_prefix,
            generation,
            &user.aggregate_id.to_string(),
        ))
        .query_async(&mut redis)
        .await
        .expect("GET");
    let user_view: read_model::documents::UserView =
        serde_json::from_str(&json.expect("user JSON in Redis")).expect("a UserView");
    assert!(!json_contains_password(&user_view));
    test_support::eventually(test_support::EVENTUALLY, "lag 0", || async {
        (projector.metric("tasktrail_projector_lag_events").await == 0.0).then_some(())
    })
    .await;
    // A batch counts once committed, just after its events count as applied.
    test_support::eventually(test_support::EVENTUALLY, "a batch counted", || async {
        let applied = projector
            .metric("tasktrail_projector_events_applied_total")
            .await;
        let batches = projector.metric("tasktrail_projector_batches_total").await;
        (applied > 0.0 && batches >= 1.0 && batches <= applied).then_some(())
    })
    .await;
    assert_eq!(projector.metric("tasktrail_projector_parked").await, 0.0);
    projector.stop().await;
    relay.stop().await;
    world.cleanup().await;
}

fn json_contains_password(user: &read_model::documents::UserView) -> bool {
    serde_json::to_string(user)
        .unwrap_or_default()
        .contains("argon2")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redelivering_every_message_twice_changes_nothing() {
    let world = World::new().await;
    seed(world.pool(), &workload(12, 8, 300)).await;
    let relay = start_relay(&world);
    wait_for_topics(&world).await;
    let projector = start_projector(&world).await;
    world.wait_converged().await;
    let before = world.snapshot().await;
    let applied = projector
        .metric("tasktrail_projector_events_applied_total")
        .await;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &world.settings.kafka.brokers)
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer");
    let envelopes = read::after(world.pool(), &Position::start(), 100_000)
        .await
        .expect("events");
    for _ in 0..2 {
        for (_, envelope) in &envelopes {
            let topic = format!(
                "{}.{}",
                world.settings.kafka.topic_prefix, envelope.aggregate_type
            );
            let value = serde_json::to_vec(envelope).expect("json");
            producer
                .send(
                    FutureRecord::to(&topic)
                        .key(envelope.aggregate_id.as_str())
                        .payload(&value),
                    Duration::from_secs(10),
                )
                .await
                .expect("redelivered");
        }
    }
    test_support::drop_within(producer, Duration::from_secs(5));
    // The projector reads them all (and applies none).
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(world.snapshot().await, before);
    assert_eq!(
        projector
            .metric("tasktrail_projector_events_applied_total")
            .await,
        applied
    );
    assert!(world.differences().await.is_empty());
    projector.stop().await;
    relay.stop().await;
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_projector_killed_mid_stream_restarts_to_the_documents_of_a_fresh_replay() {
    let mut world = World::new().await;
    // Small batches; half the stream is committed before the kill and half after it, so the
    // kill lands mid-stream however fast the projector catches up with the first half.
    world.settings.projector.batch_size = 20;
    let events = workload(13, 16, 3000);
    let (before_kill, after_kill) = events.split_at(events.len() / 2);
    seed(world.pool(), before_kill).await;
    let relay = start_relay(&world);
    wait_for_topics(&world).await;
    // A real process, killed with SIGKILL: an aborted task would leave librdkafka's threads
    // running (still heartbeating, still holding the partitions), which is not a crash.
    let projector = spawn_projector_process(&world);
    test_support::eventually(Duration::from_secs(180), "some events applied", || async {
        projector
            .metric("tasktrail_projector_events_applied_total")
            .await
            .filter(|applied| *applied > 50.0)
    })
    .await;
    projector.kill();
    seed(world.pool(), after_kill).await;
    let restarted = start_projector(&world).await;
    world.wait_converged().await;
    restarted.stop().await;
    relay.stop().await;
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_members_of_one_group_share_the_work() {
    let world = World::new().await;
    let relay = start_relay(&world);
    // Something for the relay to create the topics with.
    let events = workload(14, 24, 600);
    seed(world.pool(), &events[..10]).await;
    wait_for_topics(&world).await;
    let first = start_projector(&world).await;
    let second = start_projector(&world).await;
    // The rest in rounds, until both members applied some: a member whose join is still under
    // way (a busy machine) gets its partitions for a later round.
    let (mut one, mut two) = (0.0, 0.0);
    for round in events[10..].chunks(50) {
        seed(world.pool(), round).await;
        world.wait_converged().await;
        one = first
            .metric("tasktrail_projector_events_applied_total")
            .await;
        two = second
            .metric("tasktrail_projector_events_applied_total")
            .await;
        if one > 0.0 && two > 0.0 {
            break;
        }
    }
    assert!(
        one > 0.0 && two > 0.0,
        "both members applied events: {one} and {two}"
    );
    first.stop().await;
    second.stop().await;
    relay.stop().await;
    world.cleanup().await;
}

//! `projector replay` end to end.

use read_model::Generation;
use tasktrail_projector::replay::{self, Projection, ReplayOptions};
use tasktrail_projector::store::BatchOptions;
use tasktrail_projector::workload::workload;

use crate::helpers::{World, seed};

fn real() -> ReplayOptions {
    ReplayOptions {
        projection: Projection::All,
        dry_run: false,
        progress: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wiping_mongo_and_redis_then_replaying_restores_them_exactly() {
    let world = World::new().await;
    seed(world.pool(), &workload(21, 10, 800)).await;
    let report = replay::replay(&world.store, &world.settings.projector, real())
        .await
        .expect("replay");
    assert_eq!(report.generation, 2);
    assert!(report.events >= 800);
    assert_eq!(
        Generation::active(&world.store.db).await.expect("active"),
        2
    );
    let before = world.snapshot().await;
    assert!(before.len() > 100);
    assert!(world.differences().await.is_empty());

    world.wipe_read_side().await;
    let again = replay::replay(&world.store, &world.settings.projector, real())
        .await
        .expect("replay");
    assert_eq!(
        again.generation, 2,
        "a missing pointer is generation 1; the rebuild is 2"
    );
    assert_eq!(world.snapshot().await, before);
    // And once more over a live generation: N+1, old one dropped.
    let third = replay::replay(&world.store, &world.settings.projector, real())
        .await
        .expect("replay");
    assert_eq!(third.generation, 3);
    assert_eq!(world.snapshot().await, before);
    let names = world.store.db.list_collection_names().await.expect("names");
    assert!(!names.iter().any(|n| n.ends_with("_g2")), "{names:?}");
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dry_run_reports_differences_and_exits_with_them() {
    let world = World::new().await;
    seed(world.pool(), &workload(22, 6, 200)).await;
    replay::replay(&world.store, &world.settings.projector, real())
        .await
        .expect("replay");
    // Corrupt one live document.
    let generation = Generation::active(&world.store.db).await.expect("active");
    world
        .store
        .db
        .collection::<mongodb::bson::Document>(&read_model::names::tasks(generation))
        .update_one(
            mongodb::bson::doc! {},
            mongodb::bson::doc! { "$set": { "title": "tampered" } },
        )
        .await
        .expect("tamper");
    let differences = world.differences().await;
    assert!(
        differences.iter().any(|d| d.contains("title")),
        "{differences:?}"
    );
    let users_only = replay::replay(
        &world.store,
        &world.settings.projector,
        ReplayOptions {
            projection: Projection::Users,
            dry_run: true,
            progress: false,
        },
    )
    .await
    .expect("dry run");
    assert!(
        users_only.differences.is_empty(),
        "{:?}",
        users_only.differences
    );
    // The scratch generation is gone.
    let names = world.store.db.list_collection_names().await.expect("names");
    assert!(!names.iter().any(|n| n.contains("_g100")), "{names:?}");
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_replay_resumes_from_its_checkpoint() {
    let world = World::new().await;
    seed(world.pool(), &workload(23, 10, 3000)).await;
    let store = world.store.clone();
    let settings = world.settings.projector.clone();
    let running = tokio::spawn(async move { replay::replay(&store, &settings, real()).await });
    // Let it write a few batches, then kill it.
    test_support::eventually(test_support::EVENTUALLY, "a checkpoint", || async {
        let found = world
            .store
            .db
            .collection::<mongodb::bson::Document>(read_model::names::REPLAY)
            .find_one(mongodb::bson::doc! { "global_position": { "$gt": 600_i64 } })
            .await
            .expect("find");
        found.map(|_| ())
    })
    .await;
    running.abort();
    let _ignored = running.await;
    let resumed = replay::replay(&world.store, &world.settings.projector, real())
        .await
        .expect("resume");
    assert!(resumed.resumed);
    assert!(
        resumed.events < 3000,
        "resumed after the checkpoint: {}",
        resumed.events
    );
    assert!(world.differences().await.is_empty());
    world.cleanup().await;
}

#[tokio::test]
async fn a_partial_real_replay_is_refused() {
    let world = World::new().await;
    let refused = replay::replay(
        &world.store,
        &world.settings.projector,
        ReplayOptions {
            projection: Projection::Tasks,
            dry_run: false,
            progress: false,
        },
    )
    .await;
    assert!(refused.is_err());
    world.cleanup().await;
}

/// Seeds a 100,000-event store in a database of its own and keeps it, for timing
/// `projector replay` (see README, "Replay rate"):
/// `cargo nextest run -p tasktrail-projector --run-ignored only seed_100k --no-capture`.
#[tokio::test]
#[ignore = "a benchmark fixture: seeds 100k events and keeps the database"]
async fn seed_100k() {
    let world = World::new().await;
    let count = std::env::var("SEED_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let events = workload(100, 400, count);
    seed(world.pool(), &events).await;
    let url = world.db.url.clone();
    let World { db, .. } = world;
    std::mem::forget(db);
    let mut out = std::io::stderr().lock();
    std::io::Write::write_fmt(
        &mut out,
        format_args!(
            "seeded {} events\nTASKTRAIL_DATABASE__URL={url}\n",
            events.len()
        ),
    )
    .expect("stderr");
}

/// The live code path (guarded writes in a transaction, Lua scripts) without Kafka: applying
/// every event as a batch of its own, in reverse and then in order, gives what a fresh replay
/// gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_live_store_applied_event_by_event_equals_a_replay() {
    let world = World::new().await;
    seed(world.pool(), &workload(11, 12, 300)).await;
    let envelopes = tasktrail_projector::events::next_batch(
        world.pool(),
        &tasktrail_projector::events::Position::start(),
        100_000,
    )
    .await
    .expect("events");
    // Reversed then in order: every event of the first pass after an aggregate's first one is
    // a gap, filled from the event store; the second pass is all duplicates.
    for (_, envelope) in envelopes.iter().rev().chain(envelopes.iter()) {
        let result = world
            .store
            .apply_batch(1, vec![envelope.clone()], BatchOptions::live())
            .await
            .expect("applied");
        assert!(result.parked.is_empty(), "{:?}", result.parked);
    }
    let users = world
        .store
        .db
        .collection::<mongodb::bson::Document>("users_g1")
        .find(mongodb::bson::doc! {})
        .await
        .expect("find");
    let users: Vec<mongodb::bson::Document> = futures::TryStreamExt::try_collect(users)
        .await
        .expect("users");
    assert_eq!(users.len(), 12, "{users:?}");
    let typed = world
        .store
        .db
        .collection::<read_model::documents::UserView>("users_g1")
        .find_one(mongodb::bson::doc! {})
        .await;
    assert!(typed.is_ok(), "{typed:?}");
    let differences = world.differences().await;
    assert!(
        differences.is_empty(),
        "{:#?}",
        &differences[..differences.len().min(20)]
    );
    world.cleanup().await;
}

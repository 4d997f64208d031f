//! `projector replay` end to end.

use read_model::Generation;
use tasktrail_projector::replay::{self, Projection, ReplayOptions};
use tasktrail_projector::store::BatchOptions;
use test_support::workload::workload;

use crate::helpers::{World, seed};

fn real() -> ReplayOptions {
    ReplayOptions {
        projection: Projection::All,
        dry_run: false,
        progress: false,
        stop: tokio_util::sync::CancellationToken::new(),
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

/// The index names of generation `generation`'s collections, by collection kind.
async fn index_names(db: &mongodb::Database, generation: u64) -> Vec<(&'static str, Vec<String>)> {
    let mut all = Vec::new();
    for (kind, collection) in [
        ("users", read_model::names::users(generation)),
        ("projects", read_model::names::projects(generation)),
        ("tasks", read_model::names::tasks(generation)),
        (
            "notifications",
            read_model::names::notifications(generation),
        ),
    ] {
        let mut names = db
            .collection::<mongodb::bson::Document>(&collection)
            .list_index_names()
            .await
            .unwrap_or_default();
        names.sort();
        all.push((kind, names));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replayed_generation_has_every_index_of_the_contract() {
    let world = World::new().await;
    seed(world.pool(), &workload(23, 6, 300)).await;
    let report = replay::replay(&world.store, &world.settings.projector, real())
        .await
        .expect("replay");
    let replayed = index_names(&world.store.db, report.generation).await;
    // The contract's indexes, as the live projector creates them, on a generation of their own.
    let reference = report.generation + 100;
    read_model::ensure_indexes(&world.store.db, reference)
        .await
        .expect("indexes");
    let wanted = index_names(&world.store.db, reference).await;
    assert!(
        wanted.iter().all(|(_, names)| names.len() > 1),
        "every collection has a secondary index: {wanted:?}"
    );
    assert_eq!(replayed, wanted);
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
            stop: tokio_util::sync::CancellationToken::new(),
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

#[tokio::test]
async fn a_stopped_replay_resumes_from_its_checkpoint() {
    let world = World::new().await;
    let stream = workload(23, 10, 3000);
    seed(world.pool(), &stream).await;
    // Asked to stop before it starts, the replay applies its first batch (with its checkpoint)
    // and stops there: in its first phase, in aggregate order.
    let stopped = real();
    stopped.stop.cancel();
    let error = replay::replay(&world.store, &world.settings.projector, stopped)
        .await
        .expect_err("a stopped replay fails");
    let folded = error
        .downcast_ref::<replay::Stopped>()
        .unwrap_or_else(|| panic!("{error:#}"))
        .folded;
    assert!(folded > 0 && folded < stream.len() as u64, "{folded}");
    assert_eq!(
        Generation::active(&world.store.db).await.expect("active"),
        1,
        "nothing swapped"
    );
    let resumed = replay::replay(&world.store, &world.settings.projector, real())
        .await
        .expect("resume");
    assert!(resumed.resumed);
    assert_eq!(
        resumed.events + folded,
        stream.len() as u64,
        "the resumed run folds exactly what the stopped one did not"
    );
    assert_eq!(resumed.generation, 2);
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
            stop: tokio_util::sync::CancellationToken::new(),
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
    let seeded = workload(11, 12, 300);
    seed(world.pool(), &seeded).await;
    // The read in commit order stops below the oldest transaction open in the cluster (another
    // test's, perhaps): wait until every seeded event is readable.
    let envelopes = test_support::eventually(
        test_support::EVENTUALLY,
        "every seeded event readable in commit order",
        || async {
            let envelopes = event_store::read::after(
                world.pool(),
                &event_store::read::Position::start(),
                100_000,
            )
            .await
            .expect("events");
            (envelopes.len() == seeded.len()).then_some(envelopes)
        },
    )
    .await;
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

/// The replay's first phase folds a fixed set (the events of transactions older than every
/// running one) in aggregate order; an event committed by an older open transaction is left out
/// of it and is the first the in-order phase reads after the boundary.
#[tokio::test]
async fn the_first_phase_leaves_open_transactions_to_the_in_order_phase() {
    use event_store::read;
    let world = World::new().await;
    let stream = workload(24, 3, 40);
    let (committed, held) = stream.split_at(stream.len() - 1);
    seed(world.pool(), committed).await;
    // A writer whose transaction is open while the replay fixes its boundary.
    let mut open = world.pool().begin().await.expect("begin");
    let late = &held[0];
    test_support::workload::insert_one(&mut *open, late)
        .await
        .expect("insert");
    let (cursor, end) = read::boundary(world.pool()).await.expect("boundary");
    open.commit().await.expect("commit");

    let mut first_phase = Vec::new();
    let mut at = cursor;
    loop {
        let (next, batch) = read::by_aggregate(world.pool(), &at, 7)
            .await
            .expect("by aggregate");
        if batch.is_empty() {
            break;
        }
        first_phase.extend(batch);
        at = next;
    }
    let keys: Vec<_> = first_phase
        .iter()
        .map(|e| (e.aggregate_type, e.aggregate_id.clone(), e.sequence))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "aggregate order");
    let late_key = (late.aggregate_id.to_string(), late.sequence);
    assert!(
        !first_phase
            .iter()
            .any(|e| (e.aggregate_id.clone(), e.sequence) == late_key),
        "the open transaction's event is not in the first phase"
    );
    // The in-order phase reads the rest (once the cluster's other open transactions, which hold
    // the snapshot's xmin back, have ended): together every event, each once.
    let (pool, first_phase, end, total) = (world.pool(), &first_phase, &end, stream.len());
    let all = test_support::eventually(
        test_support::EVENTUALLY,
        "the rest in order",
        || async move {
            let rest = read::after(pool, end, 1000).await.ok()?;
            let mut all: Vec<_> = first_phase
                .iter()
                .chain(rest.iter().map(|(_, e)| e))
                .map(|e| (e.aggregate_id.clone(), e.sequence))
                .collect();
            (all.len() == total).then(|| {
                all.sort();
                all
            })
        },
    )
    .await;
    let mut expected: Vec<_> = stream
        .iter()
        .map(|e| (e.aggregate_id.to_string(), e.sequence))
        .collect();
    expected.sort();
    assert_eq!(all, expected);
    world.cleanup().await;
}

/// A batch whose events of one aggregate have a hole between them (an event that reached
/// another batch, or a writer whose transaction id is older than its predecessor's) fills the
/// hole from the event store instead of failing.
#[tokio::test]
async fn a_hole_inside_a_batch_is_filled_from_the_event_store() {
    let world = World::new().await;
    let stream = workload(25, 4, 200);
    seed(world.pool(), &stream).await;
    // The envelopes as the workload makes them: a read of the store in commit order could be
    // held back by another test's open transaction (the gap filling reads by aggregate).
    let mut by_task: std::collections::BTreeMap<String, Vec<event_store::read::Envelope>> =
        std::collections::BTreeMap::new();
    for envelope in stream
        .iter()
        .zip(1..)
        .map(|(e, position)| e.envelope(position))
    {
        if envelope.aggregate_type == domain::AggregateType::Task {
            by_task
                .entry(envelope.aggregate_id.clone())
                .or_default()
                .push(envelope);
        }
    }
    let (id, events) = by_task
        .into_iter()
        .find(|(_, events)| events.len() >= 4)
        .expect("a task with four events");
    let with_hole: Vec<_> = events.iter().filter(|e| e.sequence != 3).cloned().collect();
    let applied = world
        .store
        .apply_batch(1, with_hole, BatchOptions::live())
        .await
        .expect("applied");
    assert!(applied.parked.is_empty(), "{:?}", applied.parked);
    let task = world
        .store
        .db
        .collection::<mongodb::bson::Document>("tasks_g1")
        .find_one(mongodb::bson::doc! { "_id": &id })
        .await
        .expect("find")
        .expect("the task");
    assert_eq!(
        task.get_i64("version").expect("version"),
        events.last().expect("last").sequence
    );
    world.cleanup().await;
}

/// The deadline pass writes one overdue notification per open task past its due date, in bulk,
/// and running it again (the periodic job does) adds and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_overdue_pass_writes_each_notification_once() {
    use mongodb::bson::doc;
    let world = World::new().await;
    // Due dates of the workload fall in 2026 and early 2027.
    seed(world.pool(), &workload(26, 6, 1500)).await;
    replay::replay(&world.store, &world.settings.projector, real())
        .await
        .expect("replay");
    let generation = Generation::active(&world.store.db).await.expect("active");
    let today = chrono::NaiveDate::from_ymd_opt(2027, 6, 1).expect("a date");
    let tasks = world
        .store
        .db
        .collection::<read_model::documents::TaskView>(&read_model::names::tasks(generation));
    let open_and_due = tasks
        .count_documents(doc! {
            "deleted": false,
            "status": { "$in": ["pending", "in_progress"] },
            "due_date": { "$ne": null },
        })
        .await
        .expect("count");
    assert!(open_and_due > 0);
    let notifications = world
        .store
        .db
        .collection::<mongodb::bson::Document>(&read_model::names::notifications(generation));
    let overdue = doc! { "kind": read_model::documents::kind::TASK_OVERDUE };
    let before = notifications
        .count_documents(overdue.clone())
        .await
        .expect("count");
    // No live projector here: the feed holds what the passes announce, nothing else.
    let feed = read_model::changes::key(&world.store.prefix);
    let feed_length = || {
        let mut redis = world.store.redis.clone();
        let feed = feed.clone();
        async move {
            redis::cmd("XLEN")
                .arg(&feed)
                .query_async::<u64>(&mut redis)
                .await
                .expect("XLEN")
        }
    };
    let first = world
        .store
        .overdue_pass(generation, today, true)
        .await
        .expect("first pass");
    assert_eq!(first, open_and_due, "every open task due before the day");
    let written = notifications
        .count_documents(overdue.clone())
        .await
        .expect("count");
    // The replay's own pass (with today's date) wrote some of them already, with the same ids.
    assert!(
        before < written,
        "tasks due between the replay's day and this one"
    );
    assert_eq!(written, open_and_due);
    assert_eq!(
        feed_length().await,
        written - before,
        "the new notifications are announced, the existing ones are not"
    );
    let second = world
        .store
        .overdue_pass(generation, today, true)
        .await
        .expect("second pass");
    assert_eq!(second, first);
    assert_eq!(
        feed_length().await,
        written - before,
        "nothing new, nothing announced"
    );
    assert_eq!(
        notifications.count_documents(overdue).await.expect("count"),
        written
    );
    world.cleanup().await;
}

/// The in-order read (replay, catch-up) orders transaction ids as numbers: `999` before
/// `1000`. Ordered by their text, a batch of two took `1000` and `1001` first and the next one
/// started after them, leaving out `998` and `999`.
#[tokio::test]
async fn the_in_order_read_crosses_a_digit_boundary_of_transaction_ids() {
    use event_store::read::{self, Position};
    let world = World::new().await;
    let stream = workload(27, 1, 4);
    seed(world.pool(), &stream[..4]).await;
    // Ids across a power of ten, below the cluster's current one (committed long ago), in
    // insertion order.
    let xids = test_support::xids_across_a_digit_boundary(world.pool()).await;
    sqlx::query(
        "UPDATE events
            SET transaction_id = ($1 + global_position
                                  - (SELECT min(global_position) FROM events))::text::xid8",
    )
    .bind(xids[0])
    .execute(world.pool())
    .await
    .expect("set the transaction ids");
    let mut read = Vec::new();
    let mut at = Position::start();
    loop {
        let batch = read::after(world.pool(), &at, 2).await.expect("a batch");
        let Some((last, _)) = batch.last() else { break };
        at = last.clone();
        read.extend(batch.into_iter().map(|(p, _)| p.transaction_id));
    }
    assert_eq!(read, xids.map(|xid| xid.to_string()));
    world.cleanup().await;
}

/// Committed events held back behind an older open transaction are folded once it ends: the
/// fold does not stop at the first empty read while they wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fold_waits_for_committed_events_held_back_by_an_open_transaction() {
    let world = World::new().await;
    let stream = workload(28, 3, 60);
    let (seeded, late) = stream.split_at(stream.len() - 1);
    seed(world.pool(), seeded).await;
    // An older transaction (it has a transaction id, and writes an event it will roll back)...
    let mut older = world.pool().begin().await.expect("begin");
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('task', 'rolled-back', 1, 'TaskDeleted', '1.0', '\"TaskDeleted\"', '{}')",
    )
    .execute(&mut *older)
    .await
    .expect("insert in the older transaction");
    // ...holds back a newer, committed event.
    test_support::workload::insert_one(world.pool(), &late[0])
        .await
        .expect("late");

    let store = world.store.clone();
    let settings = world.settings.projector.clone();
    let running = tokio::spawn(async move { replay::replay(&store, &settings, real()).await });
    // The fold has applied everything it can read.
    let tasks: std::collections::HashSet<_> = seeded
        .iter()
        .filter(|e| e.aggregate_type == domain::AggregateType::Task)
        .map(|e| e.aggregate_id)
        .collect();
    test_support::eventually(
        test_support::EVENTUALLY,
        "the readable events folded",
        || {
            let db = world.store.db.clone();
            let expected = tasks.len() as u64;
            async move {
                let count = db
                    .collection::<mongodb::bson::Document>(&read_model::names::tasks(2))
                    .count_documents(mongodb::bson::doc! {})
                    .await
                    .ok()?;
                (count == expected).then_some(())
            }
        },
    )
    .await;
    older.rollback().await.expect("rollback");
    let report = running.await.expect("join").expect("replay");
    assert_eq!(
        report.events,
        stream.len() as u64,
        "the held-back event too"
    );
    world.cleanup().await;
}

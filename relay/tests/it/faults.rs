//! The relay under faults: killed at random points of a large backlog, a hung broker, a broker
//! that restarts, a broker that lost all its data. The broker tests use a broker of their own
//! ([`test_support::broker::PrivateBroker`]) so the other tests keep theirs.

#![expect(
    clippy::print_stderr,
    reason = "the fault tests report what they measured (kills, repeats, latency)"
)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use relay::RelaySettings;
use sqlx::PgPool;
use test_support::broker::PrivateBroker;
use test_support::{EVENTUALLY, TestDatabase, eventually, servers, unique_name};

use crate::publishing::{
    Received, consume_at, insert, insert_many, sequences_by_aggregate, settings, start_at,
    wait_caught_up,
};

const AGGREGATES: i64 = 20;

/// `total` events over [`AGGREGATES`] task aggregates, sequences increasing with position, in
/// transactions of 1,000 rows.
async fn insert_backlog(pool: &PgPool, total: i64) {
    for first in (0..total).step_by(1000) {
        let last = (first + 999).min(total - 1);
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                                 payload, metadata)
             SELECT 'task', 'crash-' || (n % $3), n / $3 + 1, 'Something', '1.0',
                    jsonb_build_object('n', n), '{\"request_id\": \"backlog\"}'::jsonb
               FROM generate_series($1::bigint, $2::bigint) AS n
              ORDER BY n",
        )
        .bind(first)
        .bind(last)
        .bind(AGGREGATES)
        .execute(pool)
        .await
        .expect("insert a backlog slice");
    }
}

/// The global positions of the `batch_size` events after the stored checkpoint: the only ones a
/// relay killed now may have sent without checkpointing them.
async fn next_batch_positions(pool: &PgPool, batch_size: i64) -> Vec<i64> {
    sqlx::query_scalar(
        "WITH c AS (SELECT transaction_id, global_position FROM relay_checkpoint WHERE name = 'kafka'
                    UNION ALL SELECT '0'::xid8, 0 ORDER BY 1 DESC, 2 DESC LIMIT 1)
         SELECT e.global_position FROM events e, c
          WHERE (e.transaction_id, e.global_position) > (c.transaction_id, c.global_position)
          ORDER BY e.transaction_id, e.global_position LIMIT $1",
    )
    .bind(batch_size)
    .fetch_all(pool)
    .await
    .expect("next batch")
}

fn random_below(bound: u64) -> u64 {
    let random = uuid::Uuid::new_v4().as_u128();
    u64::try_from(random % u128::from(bound)).expect("below a u64 bound")
}

/// Per aggregate, the sequences in consumption order with repeats removed must be 1..=n.
fn assert_per_aggregate_order(received: &[Received], per_aggregate: i64) {
    for (aggregate_id, sequences) in sequences_by_aggregate(received) {
        let mut seen = HashSet::new();
        let first_occurrences: Vec<i64> = sequences
            .into_iter()
            .filter(|sequence| seen.insert(*sequence))
            .collect();
        assert_eq!(
            first_occurrences,
            (1..=per_aggregate).collect::<Vec<_>>(),
            "order of {aggregate_id}"
        );
    }
}

#[tokio::test]
async fn a_relay_killed_at_random_points_of_a_backlog_loses_nothing_and_resends_only_the_open_batches()
 {
    const TOTAL: i64 = 10_000;
    const BATCH: i64 = 200;
    const KILLS: usize = 8;
    let db = TestDatabase::new().await;
    let prefix = unique_name("relay_crash");
    let brokers = servers().kafka.brokers.clone();
    insert_backlog(&db.pool, TOTAL).await;
    let relay_settings = RelaySettings {
        batch_size: BATCH,
        ..settings(&prefix, 3)
    };

    let mut may_repeat: HashSet<i64> = HashSet::new();
    let mut kills = 0;
    while kills < KILLS {
        let running = start_at(&db.pool, &brokers, relay_settings.clone());
        tokio::time::sleep(Duration::from_millis(20 + random_below(250))).await;
        running.task.abort();
        let _aborted = running.task.await;
        kills += 1;
        // Killed mid-batch: what it sent of the open batches (up to MAX_IN_FLIGHT of them) may
        // arrive, and be sent again.
        let open = BATCH * i64::try_from(relay::MAX_IN_FLIGHT).expect("a small number");
        may_repeat.extend(next_batch_positions(&db.pool, open).await);
        if relay::lag(&db.pool).await.expect("lag").events == 0 {
            break;
        }
    }
    let last = start_at(&db.pool, &brokers, relay_settings);
    wait_caught_up(&db.pool).await;
    last.stop().await;

    let received = consume_at(&brokers, &prefix, 10_000, Duration::from_secs(5)).await;
    let mut count_by_id: HashMap<String, usize> = HashMap::new();
    for message in &received {
        *count_by_id.entry(message.event_id()).or_default() += 1;
    }
    assert_eq!(
        count_by_id.len(),
        usize::try_from(TOTAL).expect("fits"),
        "every event arrived at least once ({kills} kills)"
    );
    let repeated: Vec<i64> = received
        .iter()
        .filter(|message| count_by_id[&message.event_id()] > 1)
        .map(|message| {
            message.envelope["global_position"]
                .as_i64()
                .expect("position")
        })
        .collect();
    for position in &repeated {
        assert!(
            may_repeat.contains(position),
            "event at position {position} was sent twice but was not in a batch open at a kill"
        );
    }
    assert_per_aggregate_order(&received, TOTAL / AGGREGATES);
    eprintln!(
        "crash test: {kills} kills, {} messages for {TOTAL} events, {} repeats",
        received.len(),
        received.len() - count_by_id.len()
    );
}

#[tokio::test]
async fn a_hung_broker_delays_events_but_loses_none_and_never_fails_a_commit() {
    service_runtime::telemetry::init(&service_runtime::telemetry::LogSettings::default());
    let broker = PrivateBroker::start();
    let db = TestDatabase::new().await;
    let prefix = unique_name("relay_outage");
    let relay_settings = RelaySettings {
        message_timeout: Duration::from_secs(3),
        topic_check_interval: Duration::from_millis(500),
        ..settings(&prefix, 3)
    };
    let running = start_at(&db.pool, &broker.brokers(), relay_settings);
    let status = Arc::clone(&running.status);

    // "Commands": one committed event every 20 ms on 4 aggregates, all through the outage.
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let pool = db.pool.clone();
        let written = Arc::clone(&written);
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let mut sequence = 0;
            while started.elapsed() < Duration::from_secs(14) {
                sequence += 1;
                for aggregate in 0..4 {
                    insert(&pool, "project", &format!("outage-{aggregate}"), sequence).await;
                    written.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sequence
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.pause();
    // Longer than the producer's message timeout (3 s): deliveries fail and are retried.
    tokio::time::sleep(Duration::from_secs(8)).await;
    // A transaction of a parallel test elsewhere in the cluster can hold the relay back (the
    // snapshot's xmin is cluster-wide), so it may not have tried to publish yet: give it time.
    let noticed = tokio::time::Instant::now() + Duration::from_secs(30);
    while status.publish_errors() == 0 && tokio::time::Instant::now() < noticed {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        status.publish_errors() > 0,
        "the outage was noticed (publish errors)"
    );
    assert!(
        relay::lag(&db.pool).await.expect("lag").events > 0,
        "events pile up while the broker hangs"
    );
    broker.resume();
    let per_aggregate = writer.await.expect("the writer never failed a commit");
    wait_caught_up(&db.pool).await;
    running.stop().await;

    let total = usize::try_from(written.load(Ordering::Relaxed)).expect("fits");
    let received = consume_at(&broker.brokers(), &prefix, total, Duration::from_secs(3)).await;
    let distinct: HashSet<String> = received.iter().map(Received::event_id).collect();
    assert_eq!(distinct.len(), total, "every committed event arrived");
    assert_per_aggregate_order(&received, per_aggregate);
}

#[tokio::test]
async fn a_broker_that_restarts_keeps_its_log_and_the_relay_goes_on() {
    let mut broker = PrivateBroker::start();
    let db = TestDatabase::new().await;
    let prefix = unique_name("relay_restart");
    let relay_settings = RelaySettings {
        message_timeout: Duration::from_secs(3),
        topic_check_interval: Duration::from_millis(300),
        ..settings(&prefix, 3)
    };
    let running = start_at(&db.pool, &broker.brokers(), relay_settings);
    let status = Arc::clone(&running.status);
    let aggregates: Vec<(&str, String)> = vec![("user", "u-1".into()), ("task", "t-1".into())];
    insert_many(&db.pool, &aggregates, 1, 25).await; // 50 events
    wait_caught_up(&db.pool).await;

    broker.restart(); // same storage: topics, messages and offsets are kept
    insert_many(&db.pool, &aggregates, 26, 5).await; // 10 more
    wait_caught_up(&db.pool).await;
    running.stop().await;
    assert_eq!(
        status.republishes(),
        0,
        "nothing was lost, so nothing is re-published"
    );

    let received = consume_at(&broker.brokers(), &prefix, 60, Duration::from_secs(3)).await;
    let distinct: HashSet<String> = received.iter().map(Received::event_id).collect();
    assert_eq!(
        distinct.len(),
        60,
        "every event, the ones before the restart included"
    );
    assert_per_aggregate_order(&received, 30);
}

#[tokio::test]
async fn a_broker_that_lost_its_data_gets_the_whole_log_again_from_postgres() {
    service_runtime::telemetry::init(&service_runtime::telemetry::LogSettings::default());
    let mut broker = PrivateBroker::start();
    let db = TestDatabase::new().await;
    let prefix = unique_name("relay_loss");
    let relay_settings = RelaySettings {
        message_timeout: Duration::from_secs(3),
        topic_check_interval: Duration::from_millis(300),
        ..settings(&prefix, 3)
    };
    let running = start_at(&db.pool, &broker.brokers(), relay_settings);
    let status = Arc::clone(&running.status);
    let aggregates: Vec<(&str, String)> = vec![("user", "u-1".into()), ("task", "t-1".into())];
    insert_many(&db.pool, &aggregates, 1, 25).await; // 50 events
    wait_caught_up(&db.pool).await;
    assert_eq!(status.republishes(), 0);

    broker.lose_data(); // every topic and message is gone
    insert_many(&db.pool, &aggregates, 26, 5).await; // 10 more
    eventually(
        EVENTUALLY,
        "the relay to notice the lost topics",
        || async { (status.republishes() >= 1).then_some(()) },
    )
    .await;
    wait_caught_up(&db.pool).await;
    running.stop().await;

    let received = consume_at(&broker.brokers(), &prefix, 60, Duration::from_secs(3)).await;
    let distinct: HashSet<String> = received.iter().map(Received::event_id).collect();
    assert_eq!(
        distinct.len(),
        60,
        "the new broker holds every event, the ones before its restart included"
    );
    assert_per_aggregate_order(&received, 30);
}

#[tokio::test]
async fn an_event_committed_while_idle_reaches_kafka_within_milliseconds() {
    let db = TestDatabase::new().await;
    let prefix = unique_name("relay_idle");
    let brokers = servers().kafka.brokers.clone();
    // A long poll interval: only the notification can explain a quick publish.
    let relay_settings = RelaySettings {
        poll_interval: Duration::from_secs(30),
        ..settings(&prefix, 1)
    };
    let running = start_at(&db.pool, &brokers, relay_settings);
    let status = Arc::clone(&running.status);
    insert(&db.pool, "task", "warm-up", 1).await;
    wait_caught_up(&db.pool).await;

    let mut latencies = Vec::new();
    for sequence in 1..=20 {
        let before = status.events_published();
        let started = std::time::Instant::now();
        insert_notified(&db.pool, "idle", &[sequence]).await;
        while status.events_published() == before {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the event was not published within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.stop().await;
    latencies.sort();
    eprintln!(
        "idle commit→Kafka ack: p50 {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    assert!(
        latencies[latencies.len() - 1] < Duration::from_secs(10),
        "woken by NOTIFY, not by the 30 s poll"
    );
}

#[tokio::test]
async fn the_relay_reads_on_behind_a_full_batch_and_the_live_tail_waits_for_its_acknowledgement() {
    let broker = PrivateBroker::start();
    let db = TestDatabase::new().await;
    let prefix = unique_name("relay_ahead");
    // Neither the poll interval nor the acknowledgement deadline can wake the relay in this
    // test: only the notifications of the commits can. Two events fill a batch.
    let relay_settings = RelaySettings {
        poll_interval: Duration::from_secs(120),
        message_timeout: Duration::from_secs(120),
        batch_size: 2,
        ..settings(&prefix, 1)
    };
    let running = start_at(&db.pool, &broker.brokers(), relay_settings);
    let status = Arc::clone(&running.status);
    insert_notified(&db.pool, "warm-up", &[1]).await;
    wait_caught_up(&db.pool).await;

    // The broker hangs: a full batch is handed to the producer and stays unacknowledged.
    broker.pause();
    insert_notified(&db.pool, "ahead", &[1, 2]).await;
    eventually(EVENTUALLY, "the full batch in flight", || async {
        (status.in_flight() == 1).then_some(())
    })
    .await;
    // Behind a full batch (a backlog) the relay reads on. A commit held back behind an older
    // transaction that is still open waits; that transaction's end notifies nobody, and the
    // relay still reads the event soon after and sends it behind the full batch.
    let mut older = db.pool.begin().await.expect("begin");
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *older)
        .await
        .expect("an xid");
    insert_notified(&db.pool, "ahead", &[3]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        status.in_flight(),
        1,
        "held back while the older transaction is open"
    );
    older.rollback().await.expect("rollback");
    eventually(
        EVENTUALLY,
        "the held-back event in flight behind the full batch",
        || async { (status.in_flight() == 2).then_some(()) },
    )
    .await;
    // That batch took all there was (the live tail): what is committed now waits for the
    // acknowledgement of the batches in flight.
    insert_notified(&db.pool, "ahead", &[4]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        status.in_flight(),
        2,
        "the live tail waits behind a batch in flight"
    );

    broker.resume();
    wait_caught_up(&db.pool).await;
    assert_eq!(status.in_flight(), 0, "all acknowledged");
    running.stop().await;
    let received = consume_at(&broker.brokers(), &prefix, 5, Duration::from_secs(3)).await;
    let distinct: HashSet<String> = received.iter().map(Received::event_id).collect();
    assert_eq!(distinct.len(), 5, "every committed event arrived");
    let mut sequences = sequences_by_aggregate(&received);
    let mut ahead = sequences
        .remove("ahead")
        .expect("the events of 'ahead' arrived");
    ahead.dedup();
    assert_eq!(ahead, vec![1, 2, 3, 4], "in order");
}

/// Commits events of task `aggregate` (one transaction) with its notification, as the
/// repository's append does.
async fn insert_notified(pool: &PgPool, aggregate: &str, sequences: &[i64]) {
    let mut transaction = pool.begin().await.expect("begin");
    for &sequence in sequences {
        insert(&mut *transaction, "task", aggregate, sequence).await;
    }
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(event_store::NOTIFY_CHANNEL)
        .execute(&mut *transaction)
        .await
        .expect("notify");
    transaction.commit().await.expect("commit");
}

/// A measurement, not a check: `cargo nextest run -p tasktrail-event-store --run-ignored only
/// drain_rate --no-capture` prints how fast the relay drains a 50,000-event backlog.
#[tokio::test]
#[ignore = "a measurement; run it on purpose"]
async fn drain_rate() {
    const TOTAL: i64 = 50_000;
    let db = TestDatabase::new().await;
    let prefix = unique_name("relay_drain");
    insert_backlog(&db.pool, TOTAL).await;
    let started = std::time::Instant::now();
    let running = start_at(
        &db.pool,
        &servers().kafka.brokers,
        RelaySettings {
            batch_size: 500,
            ..settings(&prefix, 3)
        },
    );
    let status = Arc::clone(&running.status);
    while status.events_published() < u64::try_from(TOTAL).expect("fits") {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    running.stop().await;
    #[expect(clippy::cast_precision_loss, reason = "a printed rate")]
    let rate = TOTAL as f64 / elapsed.as_secs_f64();
    eprintln!("relay drained {TOTAL} events in {elapsed:?}: {rate:.0} events/s (batch 500)");
}

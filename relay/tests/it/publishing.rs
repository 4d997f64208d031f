//! The outbox relay against the real PostgreSQL and Kafka (Tansu): gap safety, publishing and
//! checkpointing, one active relay per database, resuming after a restart.
//!
//! Each test has its own database, topic prefix and consumer group. Tansu's high watermarks are
//! not trusted: the tests count what a consumer group reads from the earliest offset.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use rdkafka::Message as _;
use rdkafka::consumer::Consumer as _;
use rdkafka::message::Headers as _;
use relay::{Relay, RelaySettings, RelayStatus};
use sqlx::{Connection as _, PgConnection, PgPool};
use test_support::{EVENTUALLY, TestDatabase, drop_within, eventually, servers, unique_name};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub(crate) const POLL: Duration = Duration::from_millis(200);

pub(crate) fn settings(prefix: &str, partitions: i32) -> RelaySettings {
    RelaySettings {
        topic_prefix: prefix.to_owned(),
        batch_size: 50,
        poll_interval: POLL,
        partitions,
        replication_factor: 1,
        ..RelaySettings::default()
    }
}

/// A relay running in the background until `stop` is sent (or the task is aborted).
pub(crate) struct Running {
    pub(crate) status: Arc<RelayStatus>,
    stop: oneshot::Sender<()>,
    pub(crate) task: JoinHandle<anyhow::Result<()>>,
}

fn start(pool: &PgPool, settings: RelaySettings) -> Running {
    start_at(pool, &servers().kafka.brokers, settings)
}

/// A relay publishing to the broker at `brokers`.
pub(crate) fn start_at(pool: &PgPool, brokers: &str, settings: RelaySettings) -> Running {
    let relay = Relay::new(pool.clone(), brokers, settings);
    let status = relay.status();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(relay.run(async move {
        let _ignored = stopped.await;
    }));
    Running { status, stop, task }
}

impl Running {
    pub(crate) async fn stop(self) {
        let _ignored = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the relay stops within 30 s")
            .expect("the relay task did not panic")
            .expect("the relay stopped cleanly");
    }
}

/// Inserts one event the way postgres-es does (defaults fill position, xid, id, time).
pub(crate) async fn insert(
    executor: impl sqlx::PgExecutor<'_>,
    aggregate_type: &str,
    aggregate_id: &str,
    sequence: i64,
) {
    let metadata = serde_json::json!({
        "user_id": Uuid::nil().to_string(),
        "request_id": format!("req-{aggregate_id}-{sequence}"),
        "correlation_id": "corr",
    });
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ($1, $2, $3, 'Something', '1.0', $4, $5)",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(sequence)
    .bind(serde_json::json!({ "n": sequence }))
    .bind(metadata)
    .execute(executor)
    .await
    .expect("insert an event");
}

/// Inserts `count` events per aggregate, in one transaction per sequence number.
pub(crate) async fn insert_many(
    pool: &PgPool,
    aggregates: &[(&str, String)],
    from: i64,
    count: i64,
) {
    for sequence in from..from + count {
        let mut transaction = pool.begin().await.expect("begin");
        for (aggregate_type, aggregate_id) in aggregates {
            insert(&mut *transaction, aggregate_type, aggregate_id, sequence).await;
        }
        transaction.commit().await.expect("commit");
    }
}

pub(crate) async fn wait_caught_up(pool: &PgPool) {
    eventually(EVENTUALLY, "the relay to catch up", || async {
        let lag = relay::lag(pool).await.expect("lag");
        (lag.events == 0).then_some(())
    })
    .await;
}

/// Waits until the relay caught up, then until `status` counts `expected` published events, and
/// checks it counts exactly that many. The checkpoint commits before the relay moves its
/// in-memory counters, so the lag can read 0 a moment before the counter does.
async fn wait_published(pool: &PgPool, status: &RelayStatus, expected: u64) {
    wait_caught_up(pool).await;
    eventually(
        EVENTUALLY,
        "the relay to count what it published",
        || async { (status.events_published() >= expected).then_some(()) },
    )
    .await;
    assert_eq!(status.events_published(), expected);
}

/// The last `(transaction_id, global_position)` pair of the events table.
async fn last_pair(pool: &PgPool) -> (u64, i64) {
    let (xid, position): (String, i64) = sqlx::query_as(
        "SELECT transaction_id::text, global_position FROM events
          ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
    )
    .fetch_one(pool)
    .await
    .expect("last pair");
    (xid.parse().expect("xid is a number"), position)
}

#[derive(Debug, Clone)]
pub(crate) struct Received {
    topic: String,
    partition: i32,
    key: String,
    headers: HashMap<String, String>,
    pub(crate) envelope: serde_json::Value,
}

impl Received {
    pub(crate) fn event_id(&self) -> String {
        self.envelope["event_id"]
            .as_str()
            .expect("event_id")
            .to_owned()
    }

    pub(crate) fn aggregate_id(&self) -> String {
        self.envelope["aggregate_id"]
            .as_str()
            .expect("aggregate_id")
            .to_owned()
    }

    pub(crate) fn sequence(&self) -> i64 {
        self.envelope["sequence"].as_i64().expect("sequence")
    }
}

/// Reads the relay's topics from the earliest offset with a fresh consumer group until at least
/// `expected` messages arrived, then `settle` longer (to see duplicates), and returns them in
/// the order they were consumed.
async fn consume(prefix: &str, expected: usize, settle: Duration) -> Vec<Received> {
    consume_at(&servers().kafka.brokers, prefix, expected, settle).await
}

/// [`consume`] from the broker at `brokers`.
pub(crate) async fn consume_at(
    brokers: &str,
    prefix: &str,
    expected: usize,
    settle: Duration,
) -> Vec<Received> {
    let consumer = test_support::kafka_consumer_at(brokers, "relay_test");
    let topics: Vec<String> = domain::AggregateType::ALL
        .iter()
        .map(|aggregate_type| format!("{prefix}.{aggregate_type}"))
        .collect();
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topic_refs).expect("subscribe");

    let mut received = Vec::new();
    {
        let mut stream = consumer.stream();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut settle_until: Option<tokio::time::Instant> = None;
        loop {
            let now = tokio::time::Instant::now();
            let until = settle_until.unwrap_or(deadline);
            if now >= until {
                break;
            }
            match tokio::time::timeout(until - now, stream.next()).await {
                Err(_elapsed) => break,
                Ok(None) => panic!("the consumer stream ended"),
                Ok(Some(Err(error))) => panic!("consuming: {error}"),
                Ok(Some(Ok(message))) => {
                    let mut headers = HashMap::new();
                    if let Some(all) = message.headers() {
                        for header in all.iter() {
                            let value = header
                                .value
                                .map(|v| String::from_utf8_lossy(v).into_owned())
                                .unwrap_or_default();
                            headers.insert(header.key.to_owned(), value);
                        }
                    }
                    let envelope: serde_json::Value =
                        serde_json::from_slice(message.payload().expect("payload"))
                            .expect("the value is JSON");
                    received.push(Received {
                        topic: message.topic().to_owned(),
                        partition: message.partition(),
                        key: String::from_utf8_lossy(message.key().expect("key")).into_owned(),
                        headers,
                        envelope,
                    });
                    if received.len() >= expected && settle_until.is_none() {
                        settle_until = Some(tokio::time::Instant::now() + settle);
                    }
                }
            }
        }
    }
    drop_within(consumer, Duration::from_secs(5));
    received
}

fn assert_no_duplicates(received: &[Received]) {
    let mut seen = HashSet::new();
    for message in received {
        assert!(
            seen.insert(message.event_id()),
            "event {} was published twice",
            message.envelope
        );
    }
}

/// Per aggregate, the sequences in the order consumed.
pub(crate) fn sequences_by_aggregate(received: &[Received]) -> HashMap<String, Vec<i64>> {
    let mut by_aggregate: HashMap<String, Vec<i64>> = HashMap::new();
    for message in received {
        by_aggregate
            .entry(message.aggregate_id())
            .or_default()
            .push(message.sequence());
    }
    by_aggregate
}

#[tokio::test]
async fn an_open_transaction_holds_back_later_ones_and_both_arrive_once_in_order() {
    let db = TestDatabase::new().await;
    let prefix = unique_name("relay_gap");

    // A takes the lower position (and the lower xid) and stays open; B commits first.
    let mut a_connection = PgConnection::connect_with(&db.pool.connect_options())
        .await
        .expect("connect A");
    let mut a = a_connection.begin().await.expect("begin A");
    insert(&mut *a, "task", "aggregate-a", 1).await;
    let mut b = db.pool.begin().await.expect("begin B");
    insert(&mut *b, "task", "aggregate-b", 1).await;
    b.commit().await.expect("commit B");

    let running = start(&db.pool, settings(&prefix, 1));
    let status = Arc::clone(&running.status);
    eventually(EVENTUALLY, "the relay to read several times", || async {
        (status.reads() >= 5).then_some(())
    })
    .await;
    assert_eq!(
        status.events_published(),
        0,
        "nothing is published while an older transaction is open"
    );
    assert_eq!(relay::checkpoint(&db.pool).await.expect("checkpoint"), None);

    a.commit().await.expect("commit A");
    wait_published(&db.pool, &status, 2).await;

    let received = consume(&prefix, 2, Duration::from_secs(3)).await;
    let order: Vec<String> = received.iter().map(Received::aggregate_id).collect();
    assert_eq!(
        order,
        ["aggregate-a", "aggregate-b"],
        "both once, in (transaction_id, position) order"
    );
    let positions: Vec<i64> = received
        .iter()
        .map(|m| m.envelope["global_position"].as_i64().expect("position"))
        .collect();
    assert!(
        positions[0] < positions[1],
        "A had the lower position: {positions:?}"
    );
    running.stop().await;
}

#[tokio::test]
async fn publishes_every_event_in_aggregate_order_and_checkpoints_the_last_pair() {
    let db = TestDatabase::new().await;
    let prefix = unique_name("relay_publish");
    let aggregates: Vec<(&str, String)> = [
        ("user", "u-1"),
        ("project", "p-1"),
        ("project", "p-2"),
        ("task", "t-1"),
        ("task", "t-2"),
        ("task", "t-3"),
        ("task", "t-4"),
        ("task", "t-5"),
    ]
    .iter()
    .map(|(aggregate_type, id)| (*aggregate_type, (*id).to_owned()))
    .collect();
    insert_many(&db.pool, &aggregates, 1, 25).await; // 200 events

    let running = start(&db.pool, settings(&prefix, 3));
    let status = Arc::clone(&running.status);
    wait_published(&db.pool, &status, 200).await;
    assert!(status.batches() >= 4, "batches of 50");
    assert_eq!(status.publish_errors(), 0);

    let last = last_pair(&db.pool).await;
    assert_eq!(
        relay::checkpoint(&db.pool).await.expect("checkpoint"),
        Some(last)
    );
    assert_eq!(status.last_published(), last);
    let lag = relay::lag(&db.pool).await.expect("lag");
    assert_eq!(lag.events, 0);
    assert!(lag.seconds.abs() < f64::EPSILON);

    let received = consume(&prefix, 200, Duration::from_secs(3)).await;
    assert_no_duplicates(&received);
    assert_eq!(received.len(), 200);
    for (aggregate_id, sequences) in sequences_by_aggregate(&received) {
        assert_eq!(
            sequences,
            (1..=25).collect::<Vec<i64>>(),
            "order of {aggregate_id}"
        );
    }
    // One aggregate stays on one partition, keyed by its id, on its type's topic.
    let mut partitions: HashMap<String, HashSet<i32>> = HashMap::new();
    for message in &received {
        let aggregate_type = message.envelope["aggregate_type"]
            .as_str()
            .expect("aggregate_type");
        assert_eq!(message.topic, format!("{prefix}.{aggregate_type}"));
        assert_eq!(message.key, message.aggregate_id());
        partitions
            .entry(message.aggregate_id())
            .or_default()
            .insert(message.partition);
    }
    assert!(partitions.values().all(|set| set.len() == 1));

    // The envelope of DESIGN.md, with the headers.
    let first = received
        .iter()
        .find(|m| m.aggregate_id() == "t-1" && m.sequence() == 1)
        .expect("t-1 #1");
    let envelope = first.envelope.as_object().expect("an object");
    for field in [
        "event_id",
        "aggregate_type",
        "aggregate_id",
        "sequence",
        "global_position",
        "event_type",
        "event_version",
        "occurred_at",
        "metadata",
        "payload",
    ] {
        assert!(envelope.contains_key(field), "envelope has {field}");
    }
    assert_eq!(first.envelope["event_type"], "Something");
    assert_eq!(first.envelope["event_version"], "1.0");
    assert_eq!(first.envelope["payload"], serde_json::json!({ "n": 1 }));
    assert_eq!(
        first.envelope["metadata"],
        serde_json::json!({
            "user_id": Uuid::nil(),
            "request_id": "req-t-1-1",
            "correlation_id": "corr",
            "causation_id": null,
        })
    );
    assert_eq!(
        first.headers.get("event_type").map(String::as_str),
        Some("Something")
    );
    assert_eq!(
        first.headers.get("request_id").map(String::as_str),
        Some("req-t-1-1")
    );
    running.stop().await;
}

#[tokio::test]
async fn of_two_relays_only_one_publishes_and_the_other_takes_over_when_it_dies() {
    service_runtime::telemetry::init(&service_runtime::telemetry::LogSettings::default());
    let db = TestDatabase::new().await;
    let prefix = unique_name("relay_two");
    let first = start(&db.pool, settings(&prefix, 3));
    let second = start(&db.pool, settings(&prefix, 3));
    let (first_status, second_status) = (Arc::clone(&first.status), Arc::clone(&second.status));
    eventually(EVENTUALLY, "one relay to become active", || async {
        (first_status.is_active() || second_status.is_active()).then_some(())
    })
    .await;
    // Give the other one several lock attempts.
    tokio::time::sleep(POLL * 5).await;
    assert!(
        first_status.is_active() ^ second_status.is_active(),
        "exactly one relay is active"
    );
    let (active, standby) = if first_status.is_active() {
        (first, second)
    } else {
        (second, first)
    };

    let aggregates: Vec<(&str, String)> = vec![("task", "t-1".into()), ("task", "t-2".into())];
    insert_many(&db.pool, &aggregates, 1, 25).await; // 50 events
    wait_published(&db.pool, &active.status, 50).await;
    assert_eq!(standby.status.events_published(), 0);
    assert!(!standby.status.is_active());

    // The active one dies: its session ends, the lock is released, the standby takes over.
    active.task.abort();
    let _aborted = active.task.await;
    insert_many(&db.pool, &aggregates, 26, 10).await; // 20 more
    wait_published(&db.pool, &standby.status, 20).await;
    assert!(standby.status.is_active());

    let received = consume(&prefix, 70, Duration::from_secs(3)).await;
    assert_no_duplicates(&received);
    assert_eq!(received.len(), 70);
    for (aggregate_id, sequences) in sequences_by_aggregate(&received) {
        assert_eq!(
            sequences,
            (1..=35).collect::<Vec<i64>>(),
            "order of {aggregate_id}"
        );
    }
    standby.stop().await;
}

#[tokio::test]
async fn a_restarted_relay_publishes_only_what_is_new() {
    let db = TestDatabase::new().await;
    let prefix = unique_name("relay_restart");
    let aggregates: Vec<(&str, String)> = vec![("project", "p-1".into()), ("task", "t-1".into())];
    insert_many(&db.pool, &aggregates, 1, 5).await; // 10 events

    let running = start(&db.pool, settings(&prefix, 3));
    wait_published(&db.pool, &running.status, 10).await;
    running.stop().await;

    insert_many(&db.pool, &aggregates, 6, 3).await; // 6 more, while no relay runs
    assert_eq!(relay::lag(&db.pool).await.expect("lag").events, 6);

    let restarted = start(&db.pool, settings(&prefix, 3));
    wait_published(&db.pool, &restarted.status, 6).await;
    assert_eq!(
        relay::checkpoint(&db.pool).await.expect("checkpoint"),
        Some(last_pair(&db.pool).await)
    );

    let received = consume(&prefix, 16, Duration::from_secs(3)).await;
    assert_no_duplicates(&received);
    assert_eq!(received.len(), 16);
    for (aggregate_id, sequences) in sequences_by_aggregate(&received) {
        assert_eq!(
            sequences,
            (1..=8).collect::<Vec<i64>>(),
            "order of {aggregate_id}"
        );
    }
    restarted.stop().await;
}

/// Transaction ids order as numbers, not as text: `999 < 1000`, while `'1000' < '999'`. A batch
/// read ordered by the text of the id (its output column was `transaction_id::text AS
/// transaction_id`, and `ORDER BY transaction_id` names the output column) took `1000` and
/// `1001` first, moved its cursor past them and never read `998` and `999`.
#[tokio::test]
async fn events_across_a_digit_boundary_of_transaction_ids_all_arrive_in_commit_order() {
    let db = TestDatabase::new().await;
    let prefix = unique_name("relay_xid_digits");
    // The ids are written as given (every one below the cluster's current transaction id, so
    // they count as committed long ago); the positions follow the commit order.
    let xids = test_support::xids_across_a_digit_boundary(&db.pool).await;
    for xid in xids {
        insert(&db.pool, "task", &format!("t-{xid}"), 1).await;
        sqlx::query(
            "UPDATE events SET transaction_id = $1::text::xid8
              WHERE aggregate_id = $2",
        )
        .bind(xid.to_string())
        .bind(format!("t-{xid}"))
        .execute(&db.pool)
        .await
        .expect("set the transaction id");
    }
    let running = start(
        &db.pool,
        RelaySettings {
            batch_size: 2,
            ..settings(&prefix, 1)
        },
    );
    wait_published(&db.pool, &running.status, 4).await;
    let received = consume(&prefix, 4, Duration::from_secs(3)).await;
    let order: Vec<String> = received.iter().map(Received::aggregate_id).collect();
    assert_eq!(order, xids.map(|xid| format!("t-{xid}")));
    running.stop().await;
}

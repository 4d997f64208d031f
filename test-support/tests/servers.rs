//! Smoke test: each of the four servers is real and reachable from Rust, through the same client
//! libraries the services use. If one fails, start the servers with `scripts/services up`.

use std::time::Duration;

use futures::StreamExt as _;
use mongodb::bson::doc;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer as _};
use rdkafka::message::{Header, Headers as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message as _};
use test_support::{TestDatabase, server_down, servers, unique_name};

#[tokio::test]
async fn postgres_stores_an_event_with_its_global_position_and_transaction_stamp() {
    let db = TestDatabase::new().await;
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('task', 't-1', 1, 'TaskCreated', '1.0', '{\"title\":\"x\"}', '{}')",
    )
    .execute(&db.pool)
    .await
    .expect("insert");
    let (position, visible, event_type): (i64, bool, String) = sqlx::query_as(
        // Visible in a later snapshot: the stamp is the writer's own, committed transaction id.
        // (Not "below the snapshot's xmin": that is cluster-wide, and any other test's open
        // transaction can hold it below this one.)
        "SELECT global_position, pg_visible_in_snapshot(transaction_id, pg_current_snapshot()), event_type FROM events",
    )
    .fetch_one(&db.pool)
    .await
    .expect("select");
    assert!(position >= 1);
    assert!(
        visible,
        "a committed event's transaction stamp is visible to a later snapshot"
    );
    assert_eq!(event_type, "TaskCreated");
}

#[tokio::test]
async fn redis_sets_and_gets() {
    let settings = &servers().redis;
    let client = redis::Client::open(settings.url.expose()).expect("redis url");
    let mut connection = match client.get_multiplexed_async_connection().await {
        Ok(connection) => connection,
        Err(error) => server_down("Redis", settings.url.expose(), error),
    };
    let key = unique_name("smoke");
    let () = redis::cmd("SET")
        .arg(&key)
        .arg("hello")
        .arg("EX")
        .arg(60)
        .query_async(&mut connection)
        .await
        .expect("SET");
    let value: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .expect("GET");
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .expect("DEL");
    assert_eq!(value, "hello");
}

#[tokio::test]
async fn mongodb_inserts_and_finds() {
    let settings = &servers().mongo;
    let client = mongodb::Client::with_uri_str(settings.url.expose())
        .await
        .expect("mongo url");
    let database = client.database(&unique_name("smoke"));
    let collection = database.collection::<mongodb::bson::Document>("things");
    if let Err(error) = collection.insert_one(doc! { "_id": "a", "n": 1 }).await {
        server_down("MongoDB", settings.url.expose(), error);
    }
    collection
        .insert_one(doc! { "_id": "b", "n": 2 })
        .await
        .expect("insert");
    let found = collection
        .find_one(doc! { "n": 2 })
        .await
        .expect("find")
        .expect("one document");
    database.drop().await.expect("drop database");
    assert_eq!(found.get_str("_id").expect("_id"), "b");
}

#[tokio::test]
async fn kafka_produces_and_a_consumer_group_reads_back_in_order() {
    let brokers = &servers().kafka.brokers;
    let topic = unique_name("smoke");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let created = admin
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await;
    if let Err(error) = created {
        server_down("Kafka", brokers, error);
    }

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");
    for n in 0..3 {
        let payload = format!("{{\"n\":{n}}}");
        producer
            .send(
                FutureRecord::to(&topic)
                    .key("aggregate-1")
                    .payload(&payload)
                    .headers(OwnedHeaders::new().insert(Header {
                        key: "event_type",
                        value: Some("Smoke"),
                    })),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(error, _)| server_down("Kafka", brokers, error));
    }

    let consumer = test_support::kafka_consumer("smoke_group");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut received = Vec::new();
    {
        let mut stream = consumer.stream();
        while received.len() < 3 {
            let message = tokio::time::timeout(Duration::from_secs(30), stream.next())
                .await
                .expect("a message within 30 s")
                .expect("stream open")
                .expect("message");
            let header = message.headers().expect("headers").get(0);
            assert_eq!(header.key, "event_type");
            let payload = message.payload().expect("payload").to_vec();
            received.push(String::from_utf8(payload).expect("utf-8"));
            consumer
                .commit_message(&message, CommitMode::Sync)
                .expect("commit");
        }
    }
    test_support::drop_within(consumer, Duration::from_secs(10));
    let deleted = admin.delete_topics(&[&topic], &AdminOptions::new()).await;
    assert!(deleted.is_ok(), "delete topic: {deleted:?}");
    assert_eq!(received, ["{\"n\":0}", "{\"n\":1}", "{\"n\":2}"]);
}

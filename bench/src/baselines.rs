//! What the same machine does without tasktrail: the ceilings each product figure is divided by.

use std::future::Future;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::TryStreamExt as _;
use mongodb::bson::{Document, doc};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;

use crate::load::{self, Throughput};
use crate::services::Target;

/// A ~300-byte event row's JSON payload.
pub const PAYLOAD: &str = r#"{"TaskCreated":{"project_id":"0b9c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3","title":"Write the quarterly report","description":"Collect the figures from every team and summarise them","assignee_id":null,"due_date":"2026-12-31","created_by":"5d6e7f80-91a2-4b3c-9d4e-5f6a7b8c9d0e"}}"#;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Pgbench {
    pub clients: u32,
    pub tps: f64,
    pub latency_avg_ms: f64,
}

/// `pgbench`: one single-row INSERT of a ~300-byte event into a copy of the events table.
pub fn pgbench(
    database_url: &str,
    clients: u32,
    seconds: u64,
    dir: &Path,
) -> anyhow::Result<Pgbench> {
    let script = dir.join("pgbench_insert.sql");
    std::fs::write(
        &script,
        format!(
            "INSERT INTO bench_events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             VALUES ('task', gen_random_uuid()::text, 1, 'TaskCreated', '1.0', '{PAYLOAD}', '{{}}');\n"
        ),
    )?;
    let output = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
            "-f",
        ])
        .arg(&script)
        .arg(database_url)
        .output()
        .context("running pgbench (Debian: apt-get install postgresql-client)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "pgbench failed: {}{}",
        text,
        String::from_utf8_lossy(&output.stderr)
    );
    let number_after = |label: &str| -> anyhow::Result<f64> {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("no `{label}` in pgbench's output:\n{text}"))
    };
    Ok(Pgbench {
        clients,
        tps: number_after("tps = ")?,
        latency_avg_ms: number_after("latency average = ")?,
    })
}

/// The rdkafka producer alone: 300-byte messages, acks=all, idempotent, to a 3-partition topic.
pub async fn kafka_producer(target: &Target, messages: u64) -> anyhow::Result<f64> {
    let plain = Record {
        payload: vec![b'x'; 300],
        headers: Vec::new(),
    };
    produce(target, "baseline", messages, &[plain]).await
}

/// The records the relay sends, for a second producer baseline: the envelopes of a workload as
/// JSON, with the relay's two headers (`event_type`, `request_id`), keyed by aggregate id.
#[must_use]
pub fn relay_records(count: usize) -> Vec<Record> {
    test_support::workload::workload(3, 50, count)
        .iter()
        .zip(1..)
        .map(|(event, position)| {
            let envelope = event.envelope(position);
            Record {
                payload: serde_json::to_vec(&envelope).unwrap_or_default(),
                headers: vec![
                    ("event_type".to_owned(), envelope.event_type.clone()),
                    (
                        "request_id".to_owned(),
                        envelope.metadata.request_id.clone(),
                    ),
                ],
            }
        })
        .collect()
}

/// A record of a producer baseline.
#[derive(Debug, Clone)]
pub struct Record {
    /// The value.
    pub payload: Vec<u8>,
    /// The headers, in order.
    pub headers: Vec<(String, String)>,
}

/// `messages` records (taken from `records` in turn) produced to a fresh 3-partition topic
/// `<prefix>.<name>` as fast as the producer takes them (10,000 outstanding at most, acks=all,
/// idempotent, linger 5 ms): messages per second.
pub async fn produce(
    target: &Target,
    name: &str,
    messages: u64,
    records: &[Record],
) -> anyhow::Result<f64> {
    use rdkafka::message::{Header, OwnedHeaders};
    let topic = format!("{}.{name}", target.topic_prefix);
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", &target.kafka_brokers)
        .create()?;
    admin
        .create_topics(
            &[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &target.kafka_brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()?;
    anyhow::ensure!(!records.is_empty(), "no records to produce");
    let keys: Vec<String> = (0..1000).map(|n: u32| n.to_string()).collect();
    let started = Instant::now();
    let mut pending = futures::stream::FuturesUnordered::new();
    for n in 0..messages {
        let index = usize::try_from(n).unwrap_or(0);
        let record = &records[index % records.len()];
        let mut headers = OwnedHeaders::new();
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_str()),
            });
        }
        let key = &keys[index % keys.len()];
        let message = FutureRecord::to(&topic)
            .key(key)
            .payload(&record.payload)
            .headers(headers);
        pending.push(producer.send(message, Duration::from_secs(30)));
        if pending.len() >= 10_000 {
            drain(&mut pending).await?;
        }
    }
    drain(&mut pending).await?;
    #[expect(clippy::cast_precision_loss, reason = "message counts")]
    Ok(messages as f64 / started.elapsed().as_secs_f64())
}

async fn drain<F, T, E>(pending: &mut futures::stream::FuturesUnordered<F>) -> anyhow::Result<()>
where
    F: Future<Output = Result<T, (E, rdkafka::message::OwnedMessage)>>,
    E: std::fmt::Display,
{
    use futures::StreamExt as _;
    while let Some(result) = pending.next().await {
        result.map_err(|(error, _)| anyhow::anyhow!("baseline produce failed: {error}"))?;
    }
    Ok(())
}

/// `redis-benchmark -t get`: requests per second.
pub fn redis_get(redis_url: &str, clients: u32, requests: u64) -> anyhow::Result<f64> {
    let address = redis_url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or("127.0.0.1:6379");
    let (host, port) = address.rsplit_once(':').unwrap_or((address, "6379"));
    let output = Command::new("redis-benchmark")
        .args(["-h", host, "-p", port, "-t", "get", "-q"])
        .args(["-c", &clients.to_string(), "-n", &requests.to_string()])
        .output()
        .context("running redis-benchmark (Debian: apt-get install redis-tools)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "GET: 81234.57 requests per second, p50=0.199 msec"; progress lines end with \r.
    text.rsplit(['\r', '\n'])
        .filter_map(|line| line.trim().strip_prefix("GET: "))
        .filter_map(|rest| rest.split_whitespace().next())
        .find_map(|n| n.parse().ok())
        .with_context(|| format!("no GET rate in redis-benchmark's output:\n{text}"))
}

/// A trivial axum JSON endpoint, served here and loaded by the same client as the product's
/// GETs.
pub async fn axum_json(clients: usize, duration: Duration) -> anyhow::Result<Throughput> {
    let app = axum::Router::new().route(
        "/hello",
        axum::routing::get(|| async { axum::Json(serde_json::json!({ "hello": "world" })) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hello", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let result = load::closed_loop(clients, duration, u64::MAX, move |_, _| {
        let request = http.get(&url);
        async move {
            request.send().await?.error_for_status()?.bytes().await?;
            Ok(())
        }
    })
    .await;
    server.abort();
    Ok(result)
}

/// MongoDB bulk upsert: `update` commands of 500 replace-with-upsert statements, docs/s.
pub async fn mongo_bulk_upsert(target: &Target, documents: u64) -> anyhow::Result<f64> {
    let client = mongodb::Client::with_uri_str(&target.mongo_url).await?;
    let db = client.database(&format!("{}_baseline", target.mongo_database));
    db.drop().await?;
    let started = Instant::now();
    let mut n = 0;
    while n < documents {
        let updates: Vec<Document> = (n..documents.min(n + 500))
            .map(|i| {
                doc! {
                    "q": { "_id": format!("doc-{i}") },
                    "u": { "_id": format!("doc-{i}"), "title": "Write the quarterly report",
                           "status": "pending", "version": 1_i64, "payload": PAYLOAD },
                    "upsert": true,
                }
            })
            .collect();
        n += updates.len() as u64;
        db.run_command(doc! { "update": "docs", "updates": updates, "ordered": false })
            .await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    db.drop().await?;
    #[expect(clippy::cast_precision_loss, reason = "document counts")]
    Ok(documents as f64 / elapsed)
}

/// The query behind `GET /tasks?project_id=…&limit=50`, sent straight from the Rust driver to
/// the same server by `clients` workers for `duration`: the same filter, sort and limit (one
/// more than the page, as the API reads to know whether another page follows), read whole.
pub async fn mongo_task_page(
    target: &Target,
    project_id: &str,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Throughput> {
    let client = mongodb::Client::with_uri_str(&target.mongo_url).await?;
    let db = client.database(&target.mongo_database);
    let generation = read_model::Generation::active(&db).await?;
    let tasks = db.collection::<Document>(&read_model::names::tasks(generation));
    let project_id = project_id.to_owned();
    Ok(load::closed_loop(clients, duration, u64::MAX, move |_, _| {
        let (tasks, project_id) = (tasks.clone(), project_id.clone());
        async move {
            let page: Vec<Document> = tasks
                .find(doc! { "$and": [ { "deleted": false }, { "project_id": project_id } ] })
                .sort(doc! { "created_at": -1, "_id": -1 })
                .limit(51)
                .await?
                .try_collect()
                .await?;
            anyhow::ensure!(page.len() == 51, "a page of {} tasks", page.len());
            Ok(())
        }
    })
    .await)
}

//! What the projector's end-to-end tests share.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::TryStreamExt as _;
use mongodb::bson::{Document, doc};
use read_model::{Generation, names};
use service_runtime::settings::{HttpSettings, KafkaSettings};
use sqlx::PgPool;
use tasktrail_projector::replay::{self, Projection, ReplayOptions};
use tasktrail_projector::settings::{ProjectorSettings, Settings};
use tasktrail_projector::startup;
use tasktrail_projector::store::Store;
use test_support::workload::WorkloadEvent;
use test_support::{EVENTUALLY, TestDatabase, eventually, server_down, servers, unique_name};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One test's world: its database, names and a store over them.
pub struct World {
    pub db: TestDatabase,
    pub settings: Settings,
    pub store: Store,
}

impl World {
    pub async fn new() -> Self {
        // Logs of the projector under test when RUST_LOG is set (try_init: once per process).
        if std::env::var_os("RUST_LOG").is_some() {
            service_runtime::telemetry::init(&Default::default());
        }
        let db = TestDatabase::new().await;
        let settings = Settings {
            http: HttpSettings::with_port(0),
            database: db.settings(),
            kafka: KafkaSettings {
                topic_prefix: unique_name("projtest"),
                ..servers().kafka.clone()
            },
            mongo: servers().mongo_database(&unique_name("projtest")),
            redis: servers().redis_with_prefix(&unique_name("projtest")),
            log: Default::default(),
            projector: ProjectorSettings {
                group_id: unique_name("projtest"),
                batch_size: 200,
                replay_batch_size: 500,
                drop_old_after_secs: 0,
                deadline_interval_secs: 3600,
                ..ProjectorSettings::default()
            },
        };
        let store = startup::store(&settings).await.expect("store");
        if let Err(error) = store.db.run_command(doc! { "ping": 1 }).await {
            server_down("MongoDB", settings.mongo.url.expose(), error);
        }
        let mut redis = store.redis.clone();
        if let Err(error) = redis::cmd("PING").query_async::<String>(&mut redis).await {
            server_down("Redis", settings.redis.url.expose(), error);
        }
        Self {
            db,
            settings,
            store,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// Drops the test's MongoDB database and Redis keys.
    pub async fn wipe_read_side(&self) {
        self.store.db.drop().await.expect("drop the Mongo database");
        let mut redis = self.store.redis.clone();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.settings.redis.key_prefix))
            .query_async(&mut redis)
            .await
            .expect("KEYS");
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut redis)
                .await
                .expect("DEL");
        }
    }

    pub async fn cleanup(self) {
        self.wipe_read_side().await;
    }

    /// Runs a dry-run replay and returns its differences.
    pub async fn differences(&self) -> Vec<String> {
        replay::replay(
            &self.store,
            &self.settings.projector,
            ReplayOptions {
                projection: Projection::All,
                dry_run: true,
                progress: false,
                stop: tokio_util::sync::CancellationToken::new(),
            },
        )
        .await
        .expect("dry-run replay")
        .differences
    }

    /// Waits until the live read models equal a fresh replay of the event store.
    pub async fn wait_converged(&self) {
        let mut last = Vec::new();
        let converged = tokio::time::timeout(Duration::from_secs(240), async {
            loop {
                let differences = self.differences().await;
                if differences.is_empty() {
                    return;
                }
                last = differences;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
        .await;
        assert!(
            converged.is_ok(),
            "the read models did not converge; last differences: {:#?}",
            last.iter().take(20).collect::<Vec<_>>()
        );
    }

    /// Every document of the active generation (raw, hidden fields dropped via the structs) and
    /// every Redis value of the test's prefix, generation number removed.
    pub async fn snapshot(&self) -> BTreeMap<String, String> {
        let generation = Generation::active(&self.store.db)
            .await
            .expect("generation");
        let mut out = BTreeMap::new();
        for (label, collection) in [
            ("users", names::users(generation)),
            ("projects", names::projects(generation)),
            ("tasks", names::tasks(generation)),
            ("notifications", names::notifications(generation)),
        ] {
            let documents: Vec<Document> = self
                .store
                .db
                .collection::<Document>(&collection)
                .find(doc! {})
                .await
                .expect("find")
                .try_collect()
                .await
                .expect("collect");
            for document in documents {
                let id = document.get_str("_id").unwrap_or_default().to_owned();
                out.insert(format!("{label}/{id}"), document.to_string());
            }
        }
        let mut redis = self.store.redis.clone();
        let prefix = format!("{}:g{generation}:", self.settings.redis.key_prefix);
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut redis)
            .await
            .expect("KEYS");
        for key in keys {
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut redis)
                .await
                .expect("TYPE");
            let value = if kind == "hash" {
                let mut hash: BTreeMap<String, String> = redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(&mut redis)
                    .await
                    .expect("HGETALL");
                hash.remove("recount");
                format!("{hash:?}")
            } else {
                let text: String = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut redis)
                    .await
                    .expect("GET");
                let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
                json.to_string()
            };
            out.insert(format!("redis/{}", key.trim_start_matches(&prefix)), value);
        }
        out
    }
}

/// Inserts the events the way postgres-es does, 500 per statement.
pub async fn seed(pool: &PgPool, events: &[WorkloadEvent]) {
    test_support::workload::insert(pool, events)
        .await
        .expect("seed events");
}

/// A relay publishing the test database's events to the test's topics.
pub struct RunningRelay {
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

pub fn start_relay(world: &World) -> RunningRelay {
    let relay = relay::Relay::new(
        world.pool().clone(),
        world.settings.kafka.brokers.clone(),
        relay::RelaySettings {
            topic_prefix: world.settings.kafka.topic_prefix.clone(),
            poll_interval: Duration::from_millis(200),
            ..relay::RelaySettings::default()
        },
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(relay.run(async move {
        let _ignored = stopped.await;
    }));
    RunningRelay { stop, task }
}

impl RunningRelay {
    pub async fn stop(self) {
        let _ignored = self.stop.send(());
        let _ignored = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

/// Waits until the relay created the test's topics (the projector subscribes to them).
pub async fn wait_for_topics(world: &World) {
    let brokers = world.settings.kafka.brokers.clone();
    let prefix = world.settings.kafka.topic_prefix.clone();
    eventually(EVENTUALLY, "the relay to create the topics", || {
        let brokers = brokers.clone();
        let prefix = prefix.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                use rdkafka::consumer::Consumer as _;
                let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
                    .set("bootstrap.servers", &brokers)
                    .create()
                    .ok()?;
                let metadata = match consumer.fetch_metadata(None, Duration::from_secs(5)) {
                    Ok(metadata) => metadata,
                    Err(error) => server_down("Kafka", &brokers, error),
                };
                let found = metadata
                    .topics()
                    .iter()
                    .filter(|t| t.name().starts_with(&format!("{prefix}.")) && t.error().is_none())
                    .count();
                (found == 3).then_some(())
            })
            .await
            .ok()
            .flatten()
        }
    })
    .await;
}

/// A projector (`projector run`) serving in the background.
pub struct RunningProjector {
    pub url: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

pub async fn start_projector(world: &World) -> RunningProjector {
    let server = startup::build(world.settings.clone())
        .await
        .expect("build the projector");
    let url = format!("http://127.0.0.1:{}", server.port());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until_stopped(async move {
        let _ignored = stopped.await;
    }));
    RunningProjector { url, stop, task }
}

impl RunningProjector {
    pub async fn stop(self) {
        let _ignored = self.stop.send(());
        let _ignored = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }

    /// A value of its `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        metric(&self.url, name).await
    }
}

/// The `projector` binary running `projector run` in a process of its own, so that a test can
/// kill it the way a crash does (`SIGKILL`: no destructor, no consumer-group leave).
pub struct ProjectorProcess {
    pub url: String,
    child: std::process::Child,
}

pub fn spawn_projector_process(world: &World) -> ProjectorProcess {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let settings = &world.settings;
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_projector"))
        .arg("run")
        .env("TASKTRAIL_HTTP__HOST", "127.0.0.1")
        .env("TASKTRAIL_HTTP__PORT", port.to_string())
        .env("TASKTRAIL_DATABASE__URL", settings.database.url.expose())
        .env("TASKTRAIL_KAFKA__BROKERS", &settings.kafka.brokers)
        .env(
            "TASKTRAIL_KAFKA__TOPIC_PREFIX",
            &settings.kafka.topic_prefix,
        )
        .env("TASKTRAIL_MONGO__URL", settings.mongo.url.expose())
        .env("TASKTRAIL_MONGO__DATABASE", &settings.mongo.database)
        .env("TASKTRAIL_REDIS__URL", settings.redis.url.expose())
        .env("TASKTRAIL_REDIS__KEY_PREFIX", &settings.redis.key_prefix)
        .env(
            "TASKTRAIL_PROJECTOR__GROUP_ID",
            &settings.projector.group_id,
        )
        .env(
            "TASKTRAIL_PROJECTOR__BATCH_SIZE",
            settings.projector.batch_size.to_string(),
        )
        .env(
            "TASKTRAIL_PROJECTOR__DEADLINE_INTERVAL_SECS",
            settings.projector.deadline_interval_secs.to_string(),
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the projector binary");
    ProjectorProcess {
        url: format!("http://127.0.0.1:{port}"),
        child,
    }
}

impl ProjectorProcess {
    /// A value of its `/metrics`, `None` while it is not serving yet.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        reqwest::get(format!("{}/metrics", self.url)).await.ok()?;
        Some(metric(&self.url, name).await)
    }

    /// `SIGKILL`, wherever it is (mid-batch included), and reaps it.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL the projector");
        self.child.wait().expect("reap the projector");
    }
}

impl Drop for ProjectorProcess {
    fn drop(&mut self) {
        let _ignored = self.child.kill();
        let _ignored = self.child.wait();
    }
}

/// A value of the `/metrics` served at `url`.
async fn metric(url: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

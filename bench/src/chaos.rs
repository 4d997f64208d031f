//! `tasktrail-chaos`: the fault harness. Users create and change tasks through the command API
//! while, one after another, the services are killed with SIGKILL and restarted, the broker is
//! paused and resumed, restarted (keeping its log) and emptied (stopped, its storage deleted,
//! started), MongoDB is stopped and started and Redis is killed and restarted. Then
//! everything settles and the harness checks that every acknowledged command is in PostgreSQL,
//! in Kafka and in the read models, and that the read models equal a fresh replay
//! (`projector replay --dry-run` finds no difference). It prints the counts and exits non-zero
//! on any loss. Run it through `scripts/chaos`, which starts the servers and builds first.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use futures::StreamExt as _;
use mongodb::bson::{Document, doc};
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use tasktrail_bench::product::{Actor, Api};
use tasktrail_bench::services::{
    Service, Target, database_server_url, event_store_tables, free_port, fresh_database, run_to_end,
};
use tokio_util::sync::CancellationToken;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "tasktrail-chaos",
    about = "kill and restart tasktrail's services and servers under load, then check nothing was lost"
)]
struct Cli {
    /// Seconds of load with faults.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Concurrent users sending commands.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Seconds between two faults.
    #[arg(long, default_value_t = 4)]
    fault_every: u64,
    /// The servers' directory of `scripts/services` (pid files of the broker and MongoDB).
    #[arg(long, default_value = ".services")]
    services_dir: PathBuf,
    /// Where the services' logs go.
    #[arg(long, default_value = "bench/results/chaos-logs")]
    logs: PathBuf,
}

/// The faults, in the order they are injected (then again from the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    KillCommandApi,
    KillProjector,
    PauseBroker,
    KillQueryApi,
    RestartMongo,
    KillRedis,
    RestartBroker,
    LoseBrokerData,
}

const FAULTS: [Fault; 8] = [
    Fault::KillCommandApi,
    Fault::KillProjector,
    Fault::PauseBroker,
    Fault::KillQueryApi,
    Fault::RestartMongo,
    Fault::KillRedis,
    Fault::RestartBroker,
    Fault::LoseBrokerData,
];

/// Every acknowledged command: aggregate id → the highest version a reply acknowledged.
type Acknowledged = Arc<Mutex<HashMap<String, i64>>>;

fn say(text: &str) {
    #[expect(clippy::print_stderr, reason = "the harness reports on stderr")]
    {
        eprintln!("chaos: {text}");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    std::fs::create_dir_all(&cli.logs)?;
    let run = chrono::Utc::now().format("%H%M%S").to_string();
    let mut redis = PrivateRedis::start(&cli.logs.join("redis"))?;
    let database_url = fresh_database(&database_server_url(), "tasktrail_chaos").await?;
    let target = Target {
        redis_url: redis.url(),
        ..Target::from_env(&format!("chaos{run}"), database_url)
    };
    let pool = sqlx::PgPool::connect(&target.database_url).await?;
    event_store_tables(&pool).await?;

    let mut system = System::start(&target, &cli.logs).await?;
    let api = Api::new(&system.command.url, &system.query.url);
    let acknowledged: Acknowledged = Arc::default();
    let stop = CancellationToken::new();
    say(&format!(
        "{} users send commands for {} s; a fault every {} s",
        cli.clients, cli.seconds, cli.fault_every
    ));
    let mut users = Vec::new();
    for n in 0..cli.clients {
        users.push(tokio::spawn(user(
            api.clone(),
            run.clone(),
            n,
            Arc::clone(&acknowledged),
            stop.clone(),
        )));
    }

    let started = Instant::now();
    let mut injected: Vec<String> = Vec::new();
    for fault in FAULTS.iter().cycle() {
        tokio::time::sleep(Duration::from_secs(cli.fault_every)).await;
        if started.elapsed() >= Duration::from_secs(cli.seconds) {
            break;
        }
        system.revive().await?;
        let outcome = inject(*fault, &mut system, &mut redis, &cli).await?;
        say(&format!(
            "{:>5.1} s  {outcome}",
            started.elapsed().as_secs_f64()
        ));
        injected.push(outcome);
    }
    stop.cancel();
    let mut sent = Sent::default();
    for user in users {
        sent.add(user.await.context("a user task panicked")?);
    }
    let acknowledged = acknowledged
        .lock()
        .map_or_else(|e| e.into_inner().clone(), |a| a.clone());
    say(&format!(
        "load over: {} commands acknowledged, {} refused or failed while faults were on",
        sent.acknowledged, sent.failed
    ));

    say("settling: relay and projector lag gauges at 0");
    settle(&mut system).await?;

    let report = verify(&pool, &target, &acknowledged, &cli.logs).await?;
    say(&format!("faults injected: {}", injected.len()));
    for line in report.lines() {
        say(&line);
    }
    say(&format!(
        "services that exited on their own: {}",
        system.exits.len()
    ));
    let ok = report.ok && system.exits.is_empty();
    drop(system);
    redis.stop();
    cleanup(&target).await;
    anyhow::ensure!(
        ok,
        "acknowledged commands were lost, the read models drifted or a service crashed"
    );
    say("nothing lost");
    Ok(())
}

/// One of the three services.
#[derive(Debug, Clone, Copy)]
enum Role {
    Command,
    Projector,
    Query,
}

const ROLES: [Role; 3] = [Role::Command, Role::Projector, Role::Query];

/// The three services, restartable on their ports, and restarted (as docker-compose's
/// `restart: unless-stopped` would) when one exits on its own.
#[derive(Debug)]
struct System {
    command: Service,
    projector: Service,
    query: Service,
    ports: [u16; 3],
    target: Target,
    logs: PathBuf,
    /// Exits nobody caused (each one fails the run).
    exits: Vec<String>,
}

impl System {
    async fn start(target: &Target, logs: &Path) -> anyhow::Result<Self> {
        let ports = [free_port()?, free_port()?, free_port()?];
        Ok(Self {
            command: start(Role::Command, target, logs, ports[0]).await?,
            projector: start(Role::Projector, target, logs, ports[1]).await?,
            query: start(Role::Query, target, logs, ports[2]).await?,
            ports,
            target: target.clone(),
            logs: logs.to_owned(),
            exits: Vec::new(),
        })
    }

    fn service(&mut self, role: Role) -> &mut Service {
        match role {
            Role::Command => &mut self.command,
            Role::Projector => &mut self.projector,
            Role::Query => &mut self.query,
        }
    }

    /// Kills `role` with SIGKILL and starts it again on its port.
    async fn kill_and_restart(&mut self, role: Role) -> anyhow::Result<()> {
        self.service(role).kill_now();
        let port = self.ports[role as usize];
        let service = start(role, &self.target, &self.logs, port).await?;
        *self.service(role) = service;
        Ok(())
    }

    /// Restarts every service that exited on its own, and records the exit.
    async fn revive(&mut self) -> anyhow::Result<()> {
        for role in ROLES {
            let Some(status) = self.service(role).exited() else {
                continue;
            };
            let what = format!("{role:?} exited ({status}) on its own; restarted");
            say(&what);
            self.exits.push(what);
            self.kill_and_restart(role).await?;
        }
        Ok(())
    }
}

async fn start(role: Role, target: &Target, logs: &Path, port: u16) -> anyhow::Result<Service> {
    match role {
        Role::Command => {
            let extra = [("TASKTRAIL_RELAY__POLL_INTERVAL_MS", "200".to_owned())];
            Service::start_at("command-api", &[], target, &extra, logs, port).await
        }
        Role::Projector => {
            let extra = [("TASKTRAIL_LOG__FILTER", "info".to_owned())];
            Service::start_at("projector", &["run"], target, &extra, logs, port).await
        }
        Role::Query => Service::start_at("query-api", &[], target, &[], logs, port).await,
    }
}

/// Injects one fault and undoes it; what happened, for the report.
async fn inject(
    fault: Fault,
    system: &mut System,
    redis: &mut PrivateRedis,
    cli: &Cli,
) -> anyhow::Result<String> {
    Ok(match fault {
        Fault::KillCommandApi => {
            system.kill_and_restart(Role::Command).await?;
            "command-api (with the relay) killed -9 and restarted".to_owned()
        }
        Fault::KillProjector => {
            system.kill_and_restart(Role::Projector).await?;
            "projector killed -9 and restarted".to_owned()
        }
        Fault::KillQueryApi => {
            system.kill_and_restart(Role::Query).await?;
            "query-api killed -9 and restarted".to_owned()
        }
        Fault::PauseBroker => {
            if !services_script(&["pause-broker"]) {
                return Ok(
                    "broker pause skipped (not a broker scripts/services started)".to_owned(),
                );
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            anyhow::ensure!(services_script(&["resume-broker"]), "resume-broker failed");
            "broker paused (SIGSTOP) for 3 s and resumed".to_owned()
        }
        Fault::RestartBroker => {
            // The broker keeps its log and the group's offsets: clients reconnect and go on.
            if !services_script(&["restart-broker"]) {
                return Ok(
                    "broker restart skipped (not a broker scripts/services started)".to_owned(),
                );
            }
            "broker restarted (log and offsets kept)".to_owned()
        }
        Fault::LoseBrokerData => {
            // Every topic, message and committed offset is gone. The relay notices the lost
            // topics and re-publishes from PostgreSQL; the projector re-reads the new log,
            // re-applying nothing (ADR 0004).
            if !services_script(&["lose-broker-data"]) {
                return Ok(
                    "broker data loss skipped (not a broker scripts/services started)".to_owned(),
                );
            }
            "broker stopped, its storage deleted, started (every topic, message and offset lost)"
                .to_owned()
        }
        Fault::RestartMongo => {
            let Some(pid) = pid_of(&cli.services_dir.join("mongo.pid")) else {
                return Ok(
                    "MongoDB restart skipped (not a server scripts/services started)".to_owned(),
                );
            };
            signal(pid, "TERM")?;
            wait_gone(pid, Duration::from_secs(30)).await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            anyhow::ensure!(services_script(&["up"]), "scripts/services up failed");
            "MongoDB stopped (SIGTERM), down 1 s, started again".to_owned()
        }
        Fault::KillRedis => {
            redis.kill();
            tokio::time::sleep(Duration::from_secs(1)).await;
            redis.restart()?;
            "Redis killed -9, down 1 s, restarted (append-only file kept)".to_owned()
        }
    })
}

fn services_script(args: &[&str]) -> bool {
    Command::new("bash")
        .arg("scripts/services")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn pid_of(file: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()?;
    anyhow::ensure!(status.success(), "kill -{name} {pid} failed");
    Ok(())
}

async fn wait_gone(pid: u32, timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        anyhow::ensure!(
            started.elapsed() < timeout,
            "pid {pid} still running after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    acknowledged: u64,
    failed: u64,
}

impl Sent {
    fn add(&mut self, other: Self) {
        self.acknowledged += other.acknowledged;
        self.failed += other.failed;
    }
}

/// One user: registers (retrying through faults), then creates tasks and moves them along,
/// recording every version the command API acknowledged.
async fn user(
    api: Api,
    run: String,
    n: usize,
    acknowledged: Acknowledged,
    stop: CancellationToken,
) -> Sent {
    let mut sent = Sent::default();
    let mut attempt = 0;
    let actor: Actor = loop {
        if stop.is_cancelled() {
            return sent;
        }
        // A registration cut short by a fault (user created, token or project refused) would
        // fail again with "taken": a new name per attempt.
        attempt += 1;
        match api.actor(&format!("{run}a{attempt}"), n).await {
            Ok(actor) => break actor,
            Err(_refused) => {
                sent.failed += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    record(&acknowledged, &actor.user_id, 1);
    record(&acknowledged, &actor.project_id, 1);
    // Each task with whether it is in progress: every status change is a valid one (pending ↔
    // in progress), so a refusal can only come from a fault.
    let mut tasks: Vec<(String, bool)> = Vec::new();
    let mut count = 0_u64;
    while !stop.is_cancelled() {
        count += 1;
        let outcome = if tasks.is_empty() || count.is_multiple_of(3) {
            api.create_task(&actor, count).await.map(|(id, version)| {
                tasks.push((id.clone(), false));
                (id, version)
            })
        } else {
            let index = usize::try_from(count).unwrap_or(0) % tasks.len();
            let (task, in_progress) = tasks[index].clone();
            let status = if in_progress {
                "pending"
            } else {
                "in_progress"
            };
            let outcome = api.change_status(&actor, &task, status).await;
            // "status_unchanged": an earlier change was committed but its reply was lost to a
            // fault; the task already has the status asked for.
            let unchanged = outcome
                .as_ref()
                .is_err_and(|error| error.to_string().contains("status_unchanged"));
            if outcome.is_ok() || unchanged {
                tasks[index].1 = !in_progress;
            }
            outcome.map(|version| (task, version))
        };
        match outcome {
            Ok((id, version)) => {
                sent.acknowledged += 1;
                record(&acknowledged, &id, version);
            }
            Err(_refused) => {
                sent.failed += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    sent
}

fn record(acknowledged: &Acknowledged, id: &str, version: i64) {
    if let Ok(mut map) = acknowledged.lock() {
        let entry = map.entry(id.to_owned()).or_default();
        *entry = (*entry).max(version);
    }
}

/// Waits until both lag gauges read 0, the way an operator would decide that the system caught
/// up. The checks that follow then hold the projector's gauge to its word: an acknowledged
/// version missing from the read models after it read 0 is reported as behind (the gauge once
/// read 0 while a partition still trailed).
async fn settle(system: &mut System) -> anyhow::Result<()> {
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

/// The checks and their counts.
#[derive(Debug, Default)]
struct Report {
    acknowledged: usize,
    missing_in_postgres: Vec<String>,
    missing_in_kafka: Vec<String>,
    behind_in_read_models: Vec<String>,
    kafka_messages: usize,
    replay_differences: Option<String>,
    ok: bool,
}

impl Report {
    fn lines(&self) -> Vec<String> {
        let sample = |list: &[String]| {
            if list.is_empty() {
                String::new()
            } else {
                format!(
                    " (e.g. {})",
                    list.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
                )
            }
        };
        vec![
            format!(
                "aggregates with acknowledged commands: {}",
                self.acknowledged
            ),
            format!(
                "missing from PostgreSQL: {}{}",
                self.missing_in_postgres.len(),
                sample(&self.missing_in_postgres)
            ),
            format!(
                "missing from Kafka: {} (of {} messages read){}",
                self.missing_in_kafka.len(),
                self.kafka_messages,
                sample(&self.missing_in_kafka)
            ),
            format!(
                "behind in the read models: {}{}",
                self.behind_in_read_models.len(),
                sample(&self.behind_in_read_models)
            ),
            match &self.replay_differences {
                None => "read models vs a fresh replay: 0 differences".to_owned(),
                Some(text) => format!("read models vs a fresh replay: DIFFERENT\n{text}"),
            },
        ]
    }
}

async fn verify(
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
    let stored: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        "SELECT aggregate_id, MAX(sequence) FROM events GROUP BY aggregate_id",
    )
    .fetch_all(pool)
    .await
    .context("reading the event store")?
    .into_iter()
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

async fn cleanup(target: &Target) {
    if let Ok(client) = mongodb::Client::with_uri_str(&target.mongo_url).await {
        let _ignored = client.database(&target.mongo_database).drop().await;
    }
}

/// A Redis server of the harness's own (the machine's is not ours to kill), on a free port,
/// with an append-only file so that a kill -9 loses nothing acknowledged.
#[derive(Debug)]
struct PrivateRedis {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start(dir: &Path) -> anyhow::Result<Self> {
        let _ignored = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let mut redis = Self {
            dir: dir.canonicalize()?,
            port: free_port()?,
            child: None,
        };
        redis.restart()?;
        Ok(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) -> anyhow::Result<()> {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (apt: redis-server)")?;
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ignored = child.kill();
            let _ignored = child.wait();
        }
    }

    fn stop(&mut self) {
        self.kill();
        let _ignored = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

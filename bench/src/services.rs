//! The services under test, run from their release binaries as child processes (so their
//! memory is their own and a kill is a real one).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sqlx::Connection as _;

/// Where and under which names one benchmark run keeps its data (nothing shared with a
/// developer's own database, topics, collections or keys).
#[derive(Debug, Clone)]
pub struct Target {
    pub database_url: String,
    pub kafka_brokers: String,
    pub topic_prefix: String,
    pub mongo_url: String,
    pub mongo_database: String,
    pub redis_url: String,
    pub redis_prefix: String,
}

/// `key` from the environment (`.services/env`), or `default` (what `scripts/services` uses).
fn setting(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

/// The PostgreSQL URL of `.services/env`; [`fresh_database`] makes a database of its own beside it.
#[must_use]
pub fn database_server_url() -> String {
    setting(
        "TASKTRAIL_DATABASE__URL",
        "postgres://postgres@127.0.0.1:5432/tasktrail",
    )
}

impl Target {
    /// The servers of `.services/env`, with `database_url` and every other name (topic prefix,
    /// MongoDB database, Redis prefix) set to `name`.
    #[must_use]
    pub fn from_env(name: &str, database_url: String) -> Self {
        Self {
            database_url,
            kafka_brokers: setting("TASKTRAIL_KAFKA__BROKERS", "127.0.0.1:9092"),
            topic_prefix: name.to_owned(),
            mongo_url: setting(
                "TASKTRAIL_MONGO__URL",
                "mongodb://127.0.0.1:27017/?directConnection=true&retryWrites=false",
            ),
            mongo_database: name.to_owned(),
            redis_url: setting("TASKTRAIL_REDIS__URL", "redis://127.0.0.1:6379"),
            redis_prefix: name.to_owned(),
        }
    }

    /// Deletes the run's topics (`<topic_prefix>.*`) and returns how many there were. The
    /// development broker keeps every topic it was ever given, and the more it holds, the more
    /// CPU it costs (README, "Benchmark": the development broker's fetch wait).
    ///
    /// # Errors
    /// The broker cannot be reached, or it refused to delete one of the topics (named).
    pub async fn delete_topics(&self) -> anyhow::Result<usize> {
        use rdkafka::admin::{AdminClient, AdminOptions};
        use rdkafka::client::DefaultClientContext;

        let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.kafka_brokers)
            .create()
            .context("creating the Kafka admin client")?;
        let prefix = format!("{}.", self.topic_prefix);
        // (fetch_metadata blocks)
        let (admin, names) = tokio::task::spawn_blocking(move || {
            let names: Vec<String> = admin
                .inner()
                .fetch_metadata(None, Duration::from_secs(10))?
                .topics()
                .iter()
                .filter(|topic| topic.error().is_none() && topic.name().starts_with(&prefix))
                .map(|topic| topic.name().to_owned())
                .collect();
            Ok::<_, rdkafka::error::KafkaError>((admin, names))
        })
        .await
        .context("the topic listing panicked")?
        .context("listing the Kafka topics")?;
        if names.is_empty() {
            return Ok(0);
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let results = admin
            .delete_topics(
                &names,
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .context("deleting the run's topics")?;
        let refused: Vec<String> = results
            .iter()
            .filter_map(|result| result.as_ref().err())
            .map(|(topic, code)| format!("{topic}: {code}"))
            .collect();
        anyhow::ensure!(refused.is_empty(), "the broker kept {}", refused.join(", "));
        Ok(names.len())
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TASKTRAIL_DATABASE__URL", self.database_url.clone()),
            ("TASKTRAIL_DATABASE__MAX_CONNECTIONS", "32".to_owned()),
            ("TASKTRAIL_KAFKA__BROKERS", self.kafka_brokers.clone()),
            ("TASKTRAIL_KAFKA__TOPIC_PREFIX", self.topic_prefix.clone()),
            ("TASKTRAIL_MONGO__URL", self.mongo_url.clone()),
            ("TASKTRAIL_MONGO__DATABASE", self.mongo_database.clone()),
            ("TASKTRAIL_REDIS__URL", self.redis_url.clone()),
            ("TASKTRAIL_REDIS__KEY_PREFIX", self.redis_prefix.clone()),
            ("TASKTRAIL_STORAGE__PREFIX", self.redis_prefix.clone()),
            ("TASKTRAIL_AUTH__JWT_SECRET", JWT_SECRET.to_owned()),
            ("TASKTRAIL_RATE_LIMIT__ENABLED", "false".to_owned()),
            ("TASKTRAIL_LOG__FORMAT", "json".to_owned()),
            ("TASKTRAIL_LOG__FILTER", "warn".to_owned()),
        ]
    }
}

/// The benchmark's own HS256 secret (both APIs must agree on it).
const JWT_SECRET: &str = "tasktrail-bench-secret-at-least-32-bytes-long";

/// One running service.
#[derive(Debug)]
pub struct Service {
    pub name: &'static str,
    pub url: String,
    child: Child,
}

/// The directory of the release binaries: the benchmark's own.
fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let own = std::env::current_exe().context("the benchmark's own path")?;
    let path = own.with_file_name(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: build it with `cargo build --release --locked --workspace` (scripts/bench does)",
        path.display()
    );
    Ok(path)
}

/// A port nothing listens on now, below the ephemeral range.
///
/// # Errors
/// No socket could be bound.
pub fn free_port() -> anyhow::Result<u16> {
    // Below Linux's ephemeral range (32768-60999), where the OS hands out ports for `:0` and for
    // outgoing connections: a service restarted on its port (the fault harness) found it taken
    // by one of the other services' connections and could not start again. Each call moves on,
    // so the ports of one run differ.
    const FIRST: u16 = 20_000;
    const COUNT: u16 = 12_000;
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    #[expect(clippy::cast_possible_truncation, reason = "reduced modulo COUNT")]
    let seed = (std::process::id() % u32::from(COUNT)) as u16;
    for _ in 0..COUNT {
        let step = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % COUNT;
        let port = FIRST + (seed + step) % COUNT;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free port between {FIRST} and {}", FIRST + COUNT)
}

impl Service {
    /// Starts `binary args…` with the target's settings plus `extra`, logs to `logs/<name>.log`,
    /// and waits for `/healthz`.
    pub async fn start(
        name: &'static str,
        args: &[&str],
        target: &Target,
        extra: &[(&str, String)],
        logs: &Path,
    ) -> anyhow::Result<Self> {
        Self::start_at(name, args, target, extra, logs, free_port()?).await
    }

    /// [`Self::start`] on `port` (a restarted service keeps its address); the log is appended to.
    pub async fn start_at(
        name: &'static str,
        args: &[&str],
        target: &Target,
        extra: &[(&str, String)],
        logs: &Path,
        port: u16,
    ) -> anyhow::Result<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join(format!("{name}.log")))?;
        let mut command = Command::new(binary(binary_of(name))?);
        command
            .args(args)
            .env("TASKTRAIL_HTTP__HOST", "127.0.0.1")
            .env("TASKTRAIL_HTTP__PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (key, value) in target.env() {
            command.env(key, value);
        }
        for (key, value) in extra {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let mut service = Self {
            name,
            url: format!("http://127.0.0.1:{port}"),
            child,
        };
        service.wait_healthy(Duration::from_secs(60)).await?;
        Ok(service)
    }

    async fn wait_healthy(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("{} exited with {status}; see its log", self.name);
            }
            if let Ok(response) = reqwest::get(format!("{}/healthz", self.url)).await
                && response.status().is_success()
            {
                return Ok(());
            }
            anyhow::ensure!(
                started.elapsed() < timeout,
                "{} not healthy after {timeout:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Resident memory (VmRSS) in MiB.
    pub fn rss_mib(&self) -> f64 {
        rss_mib(self.child.id()).unwrap_or(0.0)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A value of its `/metrics`.
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = reqwest::get(format!("{}/metrics", self.url))
            .await?
            .text()
            .await?;
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|value| value.trim().parse().ok())
            .with_context(|| format!("no metric {name} at {}", self.url))
    }

    /// SIGKILL and reap.
    pub fn kill(mut self) {
        self.stop();
    }

    /// SIGKILL and reap, in place (before a restart replaces it).
    pub fn kill_now(&mut self) {
        self.stop();
    }

    /// How the process ended, if it has (without waiting).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn stop(&mut self) {
        let _ignored = self.child.kill();
        let _ignored = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

fn binary_of(name: &str) -> &str {
    match name {
        "command-api" | "command-api-stored" => "command-api",
        "query-api" => "query-api",
        _ => "projector",
    }
}

/// Resident memory of a process in MiB, from `/proc/<pid>/status`.
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// Runs `binary args…` with the target's settings to its end; its stderr and stdout, or an
/// error naming its exit status.
pub async fn run_to_end(
    name: &'static str,
    args: &[&str],
    target: &Target,
    logs: &Path,
) -> anyhow::Result<String> {
    let mut command = tokio::process::Command::new(binary(binary_of(name))?);
    command.args(args).stdin(Stdio::null());
    for (key, value) in target.env() {
        command.env(key, value);
    }
    let output = command
        .output()
        .await
        .with_context(|| format!("running {name}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    std::fs::write(logs.join(format!("{name}-{}.log", args.join("-"))), &text)?;
    anyhow::ensure!(output.status.success(), "{name} {args:?} failed: {text}");
    Ok(text)
}

/// Drops and creates database `name` on the server of `url`; its URL.
pub async fn fresh_database(url: &str, name: &str) -> anyhow::Result<String> {
    let (server, _) = url
        .rsplit_once('/')
        .context("a database URL ends in /<name>")?;
    let admin_url = format!("{server}/postgres");
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .with_context(|| format!("connecting to {admin_url}"))?;
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    Ok(format!("{server}/{name}"))
}

/// The event store's tables (what the command API's migrations create first).
pub async fn event_store_tables(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    sqlx::migrate!("../migrations").run(pool).await?;
    Ok(())
}

/// What each server says it is, asked from the server itself: PostgreSQL's `version()`, Redis's
/// `INFO server`, the MongoDB-protocol server's `buildInfo`, and for the Kafka-protocol broker
/// (whose protocol does not name its software) the `--version` of the process listening on its
/// port, when it runs on this machine.
pub async fn server_versions(target: &Target) -> std::collections::BTreeMap<String, String> {
    let mut versions = std::collections::BTreeMap::new();
    let unknown = |error: &dyn std::fmt::Display| format!("unknown ({error})");
    let postgres = async {
        let mut connection = sqlx::PgConnection::connect(&target.database_url).await?;
        let (version,): (String,) = sqlx::query_as("SELECT version()")
            .fetch_one(&mut connection)
            .await?;
        anyhow::Ok(version.split(" on ").next().unwrap_or(&version).to_owned())
    };
    versions.insert(
        "postgres".to_owned(),
        postgres.await.unwrap_or_else(|e| unknown(&e)),
    );
    let redis = async {
        let client = redis::Client::open(target.redis_url.as_str())?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut connection)
            .await?;
        let version = info
            .lines()
            .find_map(|line| line.strip_prefix("redis_version:"))
            .unwrap_or("?")
            .trim();
        anyhow::Ok(format!("Redis {version}"))
    };
    versions.insert(
        "redis".to_owned(),
        redis.await.unwrap_or_else(|e| unknown(&e)),
    );
    let mongo = async {
        let client = mongodb::Client::with_uri_str(&target.mongo_url).await?;
        let info = client
            .database("admin")
            .run_command(mongodb::bson::doc! { "buildInfo": 1 })
            .await?;
        let version = info.get_str("version").unwrap_or("?");
        let name = info
            .get_str("name")
            .or_else(|_| info.get_str("server"))
            .unwrap_or("MongoDB protocol");
        anyhow::Ok(format!("{name} {version}"))
    };
    versions.insert(
        "mongo".to_owned(),
        mongo.await.unwrap_or_else(|e| unknown(&e)),
    );
    let port = target
        .kafka_brokers
        .split(',')
        .next()
        .and_then(|broker| broker.rsplit(':').next())
        .and_then(|port| port.parse::<u16>().ok());
    versions.insert(
        "kafka".to_owned(),
        port.and_then(listening_program_version)
            .unwrap_or_else(|| "unknown (not a process on this machine)".to_owned()),
    );
    versions
}

/// `<program> --version` of the process listening on TCP `port` of this machine (from
/// `/proc/net/tcp` and the processes' open sockets).
fn listening_program_version(port: u16) -> Option<String> {
    let tcp = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let inode = tcp.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local_port = fields.get(1)?.rsplit(':').next()?;
        (u16::from_str_radix(local_port, 16).ok()? == port && *fields.get(3)? == "0A")
            .then(|| fields.get(9).map(|inode| (*inode).to_owned()))?
    })?;
    let socket = format!("socket:[{inode}]");
    for process in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        let owns = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == socket.as_str())
        });
        if owns {
            let exe = std::fs::read_link(process.path().join("exe")).ok()?;
            let output = Command::new(&exe).arg("--version").output().ok()?;
            let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            return Some(if version.is_empty() {
                exe.display().to_string()
            } else {
                version
            });
        }
    }
    None
}

/// CPU time of the machine and of every process at one moment (from `/proc`), to say how busy
/// the machine was while a latency was measured ([`CpuSnapshot::since`]).
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    /// Busy and total jiffies of all CPUs.
    machine: (u64, u64),
    /// Jiffies (user + system) and name of each process.
    processes: std::collections::HashMap<u32, (u64, String)>,
}

/// How busy the machine was between two [`CpuSnapshot`]s.
#[derive(Debug, Clone)]
pub struct CpuUse {
    /// Share of all CPUs' time that was busy (0–1).
    pub busy: f64,
    /// CPU seconds used by each program (processes of the same name added up: PostgreSQL's
    /// backends are one line), most first.
    pub programs: Vec<(String, f64)>,
    /// Wall-clock seconds between the two snapshots.
    pub seconds: f64,
}

impl CpuUse {
    /// The `n` programs that used the most CPU, each as a share of one core (1.0: a whole core).
    #[must_use]
    pub fn top(&self, n: usize) -> Vec<(String, f64)> {
        let seconds = self.seconds.max(f64::EPSILON);
        self.programs
            .iter()
            .take(n)
            .map(|(name, cpu)| (name.clone(), cpu / seconds))
            .collect()
    }
}

impl CpuSnapshot {
    /// The machine's CPU times now (zeros where `/proc` cannot be read).
    #[must_use]
    pub fn take() -> Self {
        let machine = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| {
                let fields: Vec<u64> = stat
                    .lines()
                    .next()?
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|f| f.parse().ok())
                    .collect();
                let total: u64 = fields.iter().sum();
                // idle and iowait are the 4th and 5th fields
                let idle =
                    fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
                Some((total - idle, total))
            })
            .unwrap_or((0, 0));
        let mut processes = std::collections::HashMap::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid …`: comm may hold spaces; utime and stime are fields 14, 15.
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let name = stat[open + 1..close].to_owned();
            let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            let jiffies = rest
                .get(11)
                .and_then(|u| u.parse::<u64>().ok())
                .zip(rest.get(12).and_then(|s| s.parse::<u64>().ok()))
                .map_or(0, |(user, system)| user + system);
            processes.insert(pid, (jiffies, name));
        }
        Self { machine, processes }
    }

    /// What the machine did from `self` to now: its busy share and the CPU time of each
    /// program.
    #[must_use]
    pub fn since(&self) -> CpuUse {
        let now = Self::take();
        let busy = now.machine.0.saturating_sub(self.machine.0);
        let total = now.machine.1.saturating_sub(self.machine.1).max(1);
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        // /proc counts in USER_HZ ticks, 100 a second on Linux.
        #[expect(clippy::cast_precision_loss, reason = "jiffies of minutes at most")]
        let seconds = |jiffies: u64| jiffies as f64 / 100.0;
        let mut programs = std::collections::HashMap::<String, u64>::new();
        for (pid, (jiffies, name)) in &now.processes {
            let before = self.processes.get(pid).map_or(0, |(j, _)| *j);
            *programs.entry(name.clone()).or_default() += jiffies.saturating_sub(before);
        }
        let mut programs: Vec<(String, f64)> = programs
            .into_iter()
            .filter(|(_, jiffies)| *jiffies > 0)
            .map(|(name, jiffies)| (name, seconds(jiffies)))
            .collect();
        programs.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        #[expect(clippy::cast_precision_loss, reason = "jiffies of minutes at most")]
        let (busy, elapsed) = (busy as f64 / total as f64, seconds(total) / cpus as f64);
        CpuUse {
            busy,
            programs,
            seconds: elapsed,
        }
    }
}

//! The projector's settings (`TASKTRAIL_*`, see `.env.example`).

use serde::Deserialize;
use service_runtime::settings::{
    DatabaseSettings, HttpSettings, KafkaSettings, MongoSettings, RedisSettings,
};
use service_runtime::telemetry::LogSettings;

/// The port of the projector's `/healthz`, `/readyz` and `/metrics` unless `TASKTRAIL_HTTP__PORT` says otherwise.
pub const DEFAULT_PORT: u16 = 8083;

/// Everything the projector reads from its settings.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// `/healthz`, `/readyz`, `/metrics`.
    pub http: HttpSettings,
    /// The event store: filling gaps and replays read it.
    #[serde(default)]
    pub database: DatabaseSettings,
    /// The event stream.
    #[serde(default)]
    pub kafka: KafkaSettings,
    /// The document read models.
    #[serde(default)]
    pub mongo: MongoSettings,
    /// The hot read models.
    #[serde(default)]
    pub redis: RedisSettings,
    /// Logging.
    #[serde(default)]
    pub log: LogSettings,
    /// The projector itself (`TASKTRAIL_PROJECTOR__*`).
    #[serde(default)]
    pub projector: ProjectorSettings,
}

/// `TASKTRAIL_PROJECTOR__*`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ProjectorSettings {
    /// Kafka consumer group (`GROUP_ID`, default `tasktrail-projector`).
    pub group_id: String,
    /// Messages per batch at most (`BATCH_SIZE`, default 20000). A batch is whatever has
    /// arrived, so this bounds only a backlog's batches: the bigger they are, the more events
    /// of one document a single write covers (catch-up over a 57,000-event backlog: 2,000 a
    /// batch 5,600 events/s, 20,000 a batch 8,800 events/s on secantusd-rs).
    pub batch_size: usize,
    /// The longest a fetch waits at the broker for new messages (`FETCH_WAIT_MAX_MS`, default
    /// 10): the most a quiet projector adds to the read-your-writes lag.
    pub fetch_wait_max_ms: u64,
    /// Consumer session timeout (`SESSION_TIMEOUT_MS`, default 6000).
    pub session_timeout_ms: u64,
    /// Consumer heartbeat interval (`HEARTBEAT_INTERVAL_MS`, default 500).
    pub heartbeat_interval_ms: u64,
    /// Seconds between two passes of the deadline job (`DEADLINE_INTERVAL_SECS`, default 60).
    pub deadline_interval_secs: u64,
    /// Events read from PostgreSQL per replay batch (`REPLAY_BATCH_SIZE`, default 10000: a
    /// bigger batch writes a document that several of its events change once).
    pub replay_batch_size: i64,
    /// Seconds between a replay's swap and dropping the old generation (`DROP_OLD_AFTER_SECS`, default 10).
    pub drop_old_after_secs: u64,
    /// About how many changes the change feed of `GET /stream` keeps (`STREAM_MAX_LEN`, default
    /// 10000): the window in which a client that reconnects with `Last-Event-ID` gets what it
    /// missed. 0 turns the feed off.
    pub stream_max_len: usize,
}

impl Default for ProjectorSettings {
    fn default() -> Self {
        Self {
            group_id: "tasktrail-projector".to_owned(),
            batch_size: 20_000,
            fetch_wait_max_ms: 10,
            session_timeout_ms: 6000,
            heartbeat_interval_ms: 500,
            deadline_interval_secs: 60,
            replay_batch_size: 10_000,
            drop_old_after_secs: 10,
            stream_max_len: read_model::changes::DEFAULT_MAX_LEN,
        }
    }
}

impl Settings {
    /// Defaults, then `TASKTRAIL_CONFIG_FILE`, then the environment.
    pub fn load() -> anyhow::Result<Self> {
        let settings: Self =
            service_runtime::settings::load(&[("http.port", &DEFAULT_PORT.to_string())])?;
        anyhow::ensure!(
            settings.projector.batch_size > 0 && settings.projector.replay_batch_size > 0,
            "TASKTRAIL_PROJECTOR__BATCH_SIZE and __REPLAY_BATCH_SIZE must be positive"
        );
        Ok(settings)
    }
}

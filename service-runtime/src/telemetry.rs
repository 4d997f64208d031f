//! Logging with `tracing`. Never log passwords, tokens or emails (STYLE.md, rule 12).

use serde::Deserialize;
use tracing_subscriber::EnvFilter;

/// How logs are written.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    #[default]
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// `TASKTRAIL_LOG__FORMAT` and `TASKTRAIL_LOG__FILTER` (an `EnvFilter` directive such as `info,sqlx=warn`).
#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    #[serde(default)]
    pub format: LogFormat,
    #[serde(default = "default_filter")]
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            filter: default_filter(),
        }
    }
}

fn default_filter() -> String {
    "info,sqlx=warn,rdkafka=warn,mongodb=warn".to_owned()
}

/// Installs the global subscriber. `RUST_LOG`, when set, wins over the settings' filter.
///
/// Calling it twice is harmless (the second call keeps the first subscriber), so tests may call it.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match settings.format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // An error only means a subscriber is already installed (tests): keep it.
    drop(result);
}

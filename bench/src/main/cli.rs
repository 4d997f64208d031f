//! The command line of `tasktrail-bench`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "tasktrail-bench",
    about = "tasktrail against its baselines, in one run"
)]
pub(crate) struct Cli {
    /// Short phases and small stores (seconds, for CI); the figures are rough.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Seconds of each load phase (default 10, 2 with --quick).
    #[arg(long)]
    pub(crate) seconds: Option<u64>,
    /// Concurrent clients of the closed-loop phases.
    #[arg(long, default_value_t = 32)]
    pub(crate) clients: usize,
    /// Events in the store the replay rebuilds (default 100000, 3000 with --quick).
    #[arg(long)]
    pub(crate) replay_events: Option<usize>,
    /// Also replay a store of this many events (default 1000000, none with --quick; 0: none).
    #[arg(long)]
    pub(crate) large_replay_events: Option<usize>,
    /// Tasks added to one project for the list query (default 10000, 2000 with --quick).
    #[arg(long)]
    pub(crate) project_tasks: Option<usize>,
    /// Events already stored for "commands with a full store" (default 1000000, 20000 with --quick).
    #[arg(long)]
    pub(crate) stored_events: Option<usize>,
    /// Events the relay drains from a backlog (default 50000, 5000 with --quick).
    #[arg(long)]
    pub(crate) drain_events: Option<usize>,
    /// Where the results go.
    #[arg(long, default_value = "bench/results")]
    pub(crate) out: PathBuf,
}

impl Cli {
    pub(crate) fn phase(&self) -> Duration {
        Duration::from_secs(self.seconds.unwrap_or(if self.quick { 2 } else { 10 }))
    }

    pub(crate) fn pick(&self, value: Option<usize>, full: usize, quick: usize) -> usize {
        value.unwrap_or(if self.quick { quick } else { full })
    }
}

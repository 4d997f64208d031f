//! The command line of `tasktrail-chaos`.

use std::path::PathBuf;

use clap::Parser;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "tasktrail-chaos",
    about = "kill and restart tasktrail's services and servers under load, then check nothing was lost"
)]
pub(crate) struct Cli {
    /// Seconds of load with faults.
    #[arg(long, default_value_t = 60)]
    pub(crate) seconds: u64,
    /// Concurrent users sending commands.
    #[arg(long, default_value_t = 8)]
    pub(crate) clients: usize,
    /// Seconds between two faults.
    #[arg(long, default_value_t = 4)]
    pub(crate) fault_every: u64,
    /// The servers' directory of `scripts/services` (pid files of the broker and MongoDB).
    #[arg(long, default_value = ".services")]
    pub(crate) services_dir: PathBuf,
    /// Where the services' logs go.
    #[arg(long, default_value = "bench/results/chaos-logs")]
    pub(crate) logs: PathBuf,
}

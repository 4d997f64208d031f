//! `projector <subcommand>`.

use clap::{Parser, Subcommand};

use crate::replay::Projection;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "projector",
    version,
    about = "Builds tasktrail's read models from its events"
)]
pub struct Cli {
    /// What to do (default: `run`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume the event stream and keep the read models up to date (the default).
    Run,
    /// Rebuild the read models from the event store into a new generation and swap it in.
    Replay {
        /// What `--dry-run` compares; a real replay always rebuilds every projection.
        #[arg(long, value_enum, default_value = "all")]
        projection: Projection,
        /// Build into a scratch generation, print the differences from the live one, drop it;
        /// exits 1 if anything differs.
        #[arg(long)]
        dry_run: bool,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Events that could not be applied.
    Parked {
        /// What to do with them.
        #[command(subcommand)]
        command: ParkedCommand,
    },
}

/// `projector parked …`.
#[derive(Debug, Subcommand)]
pub enum ParkedCommand {
    /// List parked aggregates and why.
    List,
    /// Apply a parked aggregate's events again (after a fix), from the event store.
    Retry {
        /// The aggregate id (or `type:id`).
        aggregate_id: String,
    },
    /// Drop the parked event for good and apply the events behind it.
    Drop {
        /// The aggregate id (or `type:id`).
        aggregate_id: String,
    },
}

//! `projector <subcommand>`.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "projector",
    version,
    about = "Builds tasktrail's read models from its events"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume the event stream and keep the read models up to date (the default).
    Run,
}

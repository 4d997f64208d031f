//! The projector: consumes the event stream and builds the read models.
//!
//! `main.rs` parses the command line ([`cli`]) and runs the chosen subcommand.

pub mod cli;
pub mod settings;
pub mod startup;

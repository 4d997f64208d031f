//! The command API: the write side of tasktrail over HTTP.
//!
//! `main.rs` only loads [`settings::Settings`] and runs [`startup::Application`].

pub mod settings;
pub mod startup;

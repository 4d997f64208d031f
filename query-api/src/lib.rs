//! The query API: the read side of tasktrail over HTTP (GET only).
//!
//! `main.rs` only loads [`settings::Settings`] and runs [`startup::Application`].

pub mod settings;
pub mod startup;

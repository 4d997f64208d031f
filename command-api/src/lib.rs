//! The command API: the write side of tasktrail over HTTP.
//!
//! A request flows JSON body → [`extract::AppJson`] DTO → validated domain values → a command
//! executed by the aggregate's [`event_store::CommandBus`] → `{id, version}` (see [`state`]).
//! `main.rs` only loads [`settings::Settings`] and runs [`startup::build`].

pub mod attachments;
pub mod demo;
pub mod error;
pub mod extract;
pub mod openapi;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;

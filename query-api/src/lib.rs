//! The query API: the read side of tasktrail over HTTP (GET only).
//!
//! A request flows: bearer token ([`extract::Viewer`]) → validated parameters
//! ([`extract::AppQuery`], [`extract::PathId`]) → the read models of the active generation
//! ([`store::ReadStore`]: Redis first for users, projects and statistics, MongoDB otherwise),
//! filtered by what the caller may see ([`state`]) → an API object ([`views`]).
//! [`stream`] pushes changes as server-sent events from the projector's change feed.
//! `main.rs` only loads [`settings::Settings`] and runs [`startup::build`].

pub mod consistency;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod pagination;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod store;
pub mod stream;
pub mod views;

//! The command API against the real PostgreSQL, Redis and Kafka-protocol broker
//! (`scripts/services up`): each test gets a fresh migrated database and its own key and topic
//! prefixes.

mod attachments;
mod commands;
mod demo;
mod helpers;
mod readiness;
mod router;

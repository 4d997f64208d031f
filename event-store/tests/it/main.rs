//! End-to-end tests of the event store against the real PostgreSQL (`scripts/services up`):
//! each test gets a fresh migrated database from `TestDatabase::new()`.

mod access_cache;
mod commit;
mod concurrency;
mod helpers;
mod notify;
mod read;
mod registry;
mod repository;
mod unavailable;
mod uniqueness;

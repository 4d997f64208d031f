//! The outbox relay against the real PostgreSQL and Kafka-protocol broker
//! (`scripts/services up`): each test gets a fresh migrated database and its own topics.

mod faults;
mod publishing;

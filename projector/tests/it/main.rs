//! End-to-end tests of the projector against the real servers (`scripts/services up`). Each
//! test has its own PostgreSQL database, topic prefix, consumer group, MongoDB database and
//! Redis key prefix.

mod helpers;
mod lag;
mod live;
mod parked;
mod readiness;
mod replay;

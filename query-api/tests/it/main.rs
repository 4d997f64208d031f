//! The query API's tests: in-process router tests and end-to-end tests against the real
//! servers (start them with `scripts/services up && source .services/env`).

mod attachments;
mod end_to_end;
mod evolution;
mod helpers;
mod indexes;
mod readiness;
mod reads;
mod resilience;
mod router;
mod security;
mod stream;

//! What the command API's tests share: its settings over a test database.

use serde_json::{Value, json};
use service_runtime::settings::{HttpSettings, Secret};
use tasktrail_command_api::settings::Settings;
use test_support::{TestDatabase, servers, unique_name};

/// The JWT secret of every test's command API.
pub const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256!";

/// The command API's settings over `db`, on a free port, with key and topic prefixes of its
/// own and a rate limit no test reaches.
pub fn settings(db: &TestDatabase) -> Settings {
    let mut settings: Settings =
        service_runtime::settings::load(&[("http.port", "0")]).expect("default settings");
    settings.http = HttpSettings::with_port(0);
    settings.database = db.settings();
    settings.redis = servers().redis_with_prefix(&unique_name("cmdtest"));
    settings.kafka = servers().kafka.clone();
    settings.kafka.topic_prefix = unique_name("cmdtest");
    settings.auth.jwt_secret = Secret::new(SECRET);
    settings.rate_limit.requests = 10_000;
    // Attachments (when scripts/services configured storage): keys of this test's own.
    settings.storage.prefix = unique_name("cmdtest");
    settings
}

/// The password of every test user.
pub const PASSWORD: &str = "correct horse";

/// The body of `POST /auth/register` for `username` (with [`PASSWORD`]).
pub fn registration(username: &str) -> Value {
    json!({
        "username": username, "email": format!("{username}@example.com"),
        "password": PASSWORD, "first_name": "Test", "last_name": username,
    })
}

//! `command-api create-admin` and `command-api demo-data` against the real PostgreSQL and Redis.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tasktrail_command_api::demo::{self, DEMO_ADMIN, DEMO_PASSWORD, DEMO_USERS, Seeded};
use tasktrail_command_api::startup;
use test_support::{TestDatabase, servers, unique_name};
use tower::ServiceExt as _;

use crate::helpers::settings;

async fn events(db: &TestDatabase, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&db.pool)
        .await
        .expect("count")
}

/// `POST /auth/token` for `username`; the status and the token's `role` claim.
async fn sign_in(router: &axum::Router, username: &str, password: &str) -> (StatusCode, String) {
    let request = Request::builder()
        .method("POST")
        .uri("/auth/token")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            serde_json::json!({ "username": username, "password": password }).to_string(),
        ))
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    let reply: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let role = reply["access_token"]
        .as_str()
        .and_then(|token| token.split('.').nth(1))
        .and_then(|claims| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(claims)
                .ok()
        })
        .and_then(|claims| serde_json::from_slice::<serde_json::Value>(&claims).ok())
        .and_then(|claims| claims["role"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, role)
}

#[tokio::test]
async fn demo_data_fills_an_empty_store_once_and_its_users_sign_in() {
    let db = TestDatabase::new().await;
    let mut settings = settings(&db);
    settings.relay.enabled = false;
    settings.storage = servers().storage_with_prefix(&unique_name("demo"));
    let Seeded::Added { events: added } = demo::seed(&settings).await.expect("demo data") else {
        panic!("the store was empty");
    };
    assert_eq!(added, events(&db, "SELECT count(*) FROM events").await);
    // Users, projects with members, tasks in every status, some overdue and assigned.
    for (what, sql, at_least) in [
        (
            "users",
            "SELECT count(*) FROM events WHERE event_type = 'UserRegistered'",
            4,
        ),
        (
            "projects",
            "SELECT count(*) FROM events WHERE event_type = 'ProjectCreated'",
            2,
        ),
        (
            "members",
            "SELECT count(*) FROM events WHERE event_type = 'ProjectMemberAdded'",
            3,
        ),
        (
            "done",
            "SELECT count(*) FROM events WHERE payload->'TaskStatusChanged'->>'to' = 'done'",
            1,
        ),
        (
            "in progress",
            "SELECT count(*) FROM events WHERE payload->'TaskStatusChanged'->>'to' = 'in_progress'",
            1,
        ),
        (
            "cancelled",
            "SELECT count(*) FROM events WHERE payload->'TaskStatusChanged'->>'to' = 'cancelled'",
            1,
        ),
        (
            "overdue and assigned",
            "SELECT count(*) FROM events WHERE event_type = 'TaskCreated' \
               AND (payload->'TaskCreated'->>'due_date')::date < current_date \
               AND payload->'TaskCreated'->>'assignee_id' IS NOT NULL",
            2,
        ),
        (
            "an attachment",
            "SELECT count(*) FROM events WHERE event_type = 'AttachmentAdded'",
            1,
        ),
    ] {
        let found = events(&db, sql).await;
        assert!(found >= at_least, "{what}: {found}");
    }

    // Never twice.
    assert_eq!(
        demo::seed(&settings).await.expect("second run"),
        Seeded::StoreNotEmpty
    );
    assert_eq!(added, events(&db, "SELECT count(*) FROM events").await);

    let router = startup::app(&settings).await.expect("app").router;
    for (username, ..) in DEMO_USERS {
        assert_eq!(
            sign_in(&router, username, DEMO_PASSWORD).await,
            (StatusCode::OK, "user".to_owned())
        );
    }
    assert_eq!(
        sign_in(&router, DEMO_ADMIN, DEMO_PASSWORD).await,
        (StatusCode::OK, "admin".to_owned())
    );
}

#[tokio::test]
async fn create_admin_registers_an_administrator_once() {
    let db = TestDatabase::new().await;
    let mut settings = settings(&db);
    settings.relay.enabled = false;
    demo::create_admin(&settings, "root", "root@example.com", "a long password")
        .await
        .expect("the first administrator");
    let taken = demo::create_admin(&settings, "root", "other@example.com", "a long password")
        .await
        .expect_err("the username is taken");
    assert!(taken.to_string().contains("taken"), "{taken}");
    let short = demo::create_admin(&settings, "root2", "root2@example.com", "short")
        .await
        .expect_err("a weak password");
    assert!(short.to_string().contains("password"), "{short}");
    let router = startup::app(&settings).await.expect("app").router;
    assert_eq!(
        sign_in(&router, "root", "a long password").await,
        (StatusCode::OK, "admin".to_owned())
    );
    // The demo does not run on a store that holds anything.
    assert_eq!(
        demo::seed(&settings).await.expect("demo"),
        Seeded::StoreNotEmpty
    );
}

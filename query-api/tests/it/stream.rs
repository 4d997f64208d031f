//! `GET /stream` end to end: commands → relay → Kafka → projector → change feed → the query
//! API's server-sent events, with several users at once.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use test_support::sse::{Event, EventStream};
use test_support::{TestDatabase, servers};

use crate::end_to_end::System;

const SOON: Duration = Duration::from_secs(30);
/// How long a test waits to be sure something does not come.
const A_WHILE: Duration = Duration::from_secs(2);

pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) token: String,
}

pub(crate) async fn user(system: &System, name: &str) -> User {
    let registered = system
        .command(
            Method::POST,
            "/auth/register",
            None,
            json!({
                "username": name, "email": format!("{name}@example.com"),
                "password": "correct horse", "first_name": name, "last_name": "Tester",
            }),
        )
        .await;
    let token = system
        .command(
            Method::POST,
            "/auth/token",
            None,
            json!({ "username": name, "password": "correct horse" }),
        )
        .await["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    User {
        id: registered["id"].as_str().expect("id").to_owned(),
        token,
    }
}

async fn open(system: &System, user: &User, query: &str, last: Option<&str>) -> EventStream {
    let url = format!("{}/stream{query}", system.query_url);
    let (status, stream) = EventStream::open(&system.http, &url, &user.token, last)
        .await
        .expect("GET /stream");
    assert_eq!(status, 200, "GET /stream{query}");
    stream.expect("a stream")
}

fn is(kind: &str, id: &str, version: i64) -> impl Fn(&Event) -> bool {
    let (kind, id) = (kind.to_owned(), id.to_owned());
    move |event| {
        let data = event.json();
        event.event == kind && data["id"] == id.as_str() && data["version"] == version
    }
}

pub(crate) async fn create(
    system: &System,
    owner: &User,
    path: &str,
    body: Value,
) -> (String, i64) {
    let reply = system
        .command(Method::POST, path, Some(&owner.token), body)
        .await;
    (
        reply["id"].as_str().expect("id").to_owned(),
        reply["version"].as_i64().expect("version"),
    )
}

/// A Redis connection and the key of `system`'s change feed, to write to it directly.
async fn feed(system: &System) -> (redis::aio::MultiplexedConnection, String) {
    let redis = redis::Client::open(servers().redis.url.expose())
        .expect("redis")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    (redis, read_model::changes::key(&system.read_side.prefix))
}

/// `PUT /tasks/{task}/priority` by `user`; the task's new version.
async fn set_priority(system: &System, user: &User, task: &str, priority: &str) -> i64 {
    system
        .command(
            Method::PUT,
            &format!("/tasks/{task}/priority"),
            Some(&user.token),
            json!({ "priority": priority }),
        )
        .await["version"]
        .as_i64()
        .expect("version")
}

/// `owner` adds (`POST`) or removes (`DELETE`) `member` in `project`; the project's version.
pub(crate) async fn membership(
    system: &System,
    method: Method,
    owner: &User,
    project: &str,
    member: &User,
) -> i64 {
    let (path, body) = if method == Method::DELETE {
        (
            format!("/projects/{project}/members/{}", member.id),
            json!({}),
        )
    } else {
        (
            format!("/projects/{project}/members"),
            json!({ "user_id": member.id }),
        )
    };
    system
        .command(method, &path, Some(&owner.token), body)
        .await["version"]
        .as_i64()
        .expect("version")
}

/// The `XADD` fields of a notification `n` for `recipient`, written straight into the feed.
fn notification(recipient: &str, n: usize, message: &str) -> [(&'static str, String); 6] {
    read_model::changes::Change {
        kind: read_model::changes::Kind::Notification,
        id: format!("n{n}"),
        version: 0,
        project_id: "p".to_owned(),
        audience: vec![recipient.to_owned()],
        document: json!({
            "_id": format!("n{n}"), "user_id": recipient, "kind": "task_assigned",
            "task_id": "t", "project_id": "p", "message": message,
            "actor_id": null, "created_at": "2026-12-06T00:00:00Z",
        })
        .to_string(),
    }
    .fields()
}

#[tokio::test]
async fn each_user_sees_only_what_they_may_and_a_removed_member_stops_seeing_it() {
    let system = System::start_on(TestDatabase::new().await).await;
    let alice = user(&system, "alice").await;
    let bob = user(&system, "bob").await;
    let carol = user(&system, "carol").await;
    let (apollo, _) = create(&system, &alice, "/projects", json!({ "name": "Apollo" })).await;
    let (hermes, _) = create(&system, &carol, "/projects", json!({ "name": "Hermes" })).await;
    membership(&system, Method::POST, &alice, &apollo, &bob).await;
    let (task, _) = create(
        &system,
        &alice,
        &format!("/projects/{apollo}/tasks"),
        json!({ "title": "Launch", "assignee_id": bob.id }),
    )
    .await;
    // The project-scoped stream needs the project in the read model.
    let (status, _) = system
        .query(&format!("/projects/{apollo}?min_version=2"), &alice.token)
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let mut bobs = open(&system, &bob, "", None).await;
    let mut carols = open(&system, &carol, "", None).await;
    let mut alices_apollo = open(&system, &alice, &format!("?project_id={apollo}"), None).await;

    // Alice changes the priority: bob (a member) and alice's Apollo stream see it.
    let version = set_priority(&system, &alice, &task, "urgent").await;
    let seen = bobs
        .next_where(SOON, is("task", &task, version))
        .await
        .expect("bob sees the change");
    assert_eq!(seen.json()["view"]["priority"], "urgent");
    assert_eq!(seen.json()["view"]["project_name"], "Apollo");
    assert!(seen.id.is_some(), "every change has an id to resume from");
    alices_apollo
        .next_where(SOON, is("task", &task, version))
        .await
        .expect("alice's project stream sees it");

    // Carol sees her own project's change, and nothing of Apollo came before it.
    let (carols_task, carols_version) = create(
        &system,
        &carol,
        &format!("/projects/{hermes}/tasks"),
        json!({ "title": "Deliver" }),
    )
    .await;
    let mut before_hers = Vec::new();
    loop {
        let event = carols.next(SOON).await.expect("carol's own change");
        if is("task", &carols_task, carols_version)(&event) {
            break;
        }
        before_hers.push(event);
    }
    assert!(
        before_hers
            .iter()
            .all(|e| e.json()["id"] != apollo.as_str() && e.json()["id"] != task.as_str()),
        "carol saw Apollo: {before_hers:?}"
    );
    assert!(
        alices_apollo
            .next_where(A_WHILE, |e| e.json()["id"] == carols_task.as_str())
            .await
            .is_none(),
        "?project_id= narrows the stream"
    );

    // Bob is removed from Apollo: he is told once, then sees nothing more of it.
    membership(&system, Method::DELETE, &alice, &apollo, &bob).await;
    let revoked = bobs
        .next_where(SOON, |e| e.event == "access_revoked")
        .await
        .expect("bob is told he lost access");
    assert_eq!(revoked.json()["id"], apollo.as_str());
    set_priority(&system, &alice, &task, "low").await;
    let (bobs_own, bobs_version) =
        create(&system, &bob, "/projects", json!({ "name": "Bob's" })).await;
    loop {
        let event = bobs.next(SOON).await.expect("bob's own project");
        assert_ne!(
            event.json()["id"],
            task.as_str(),
            "bob saw a task of a project he left: {event:?}"
        );
        if is("project", &bobs_own, bobs_version)(&event) {
            break;
        }
    }
}

#[tokio::test]
async fn a_client_that_reconnects_with_last_event_id_gets_what_it_missed() {
    let system = System::start_on(TestDatabase::new().await).await;
    let ada = user(&system, "ada").await;
    let (project, _) = create(&system, &ada, "/projects", json!({ "name": "Engine" })).await;
    let mut stream = open(&system, &ada, "", None).await;
    let (task, version) = create(
        &system,
        &ada,
        &format!("/projects/{project}/tasks"),
        json!({ "title": "Design" }),
    )
    .await;
    let first = stream
        .next_where(SOON, is("task", &task, version))
        .await
        .expect("the creation");
    drop(stream);

    // Two changes while the client is away.
    for label in ["gears", "steam"] {
        system
            .command(
                Method::POST,
                &format!("/tasks/{task}/labels"),
                Some(&ada.token),
                json!({ "label": label }),
            )
            .await;
    }
    let mut resumed = open(&system, &ada, "", first.id.as_deref()).await;
    // Each change is the document as a batch left it: two events applied in one batch come as
    // one change at the later version.
    let mut missed = Vec::new();
    while missed
        .last()
        .is_none_or(|e: &Event| e.json()["version"] != version + 2)
    {
        missed.push(resumed.next(SOON).await.expect("the missed changes"));
    }
    assert!(
        missed
            .iter()
            .all(|e| e.event == "task" && e.json()["id"] == task.as_str()),
        "{missed:?}"
    );
    let last = missed.last().expect("one").json();
    assert_eq!(last["view"]["labels"], json!(["gears", "steam"]));

    // An id the feed trimmed long ago: the client is told to reload first.
    let mut stale = open(&system, &ada, "", Some("1-0")).await;
    let (mut redis, key) = feed(&system).await;
    let _: i64 = redis::cmd("XTRIM")
        .arg(&key)
        .arg("MAXLEN")
        .arg(0)
        .query_async(&mut redis)
        .await
        .expect("trim");
    drop(stale);
    stale = open(&system, &ada, "", first.id.as_deref()).await;
    let reset = stale.next(SOON).await.expect("an event");
    assert_eq!(reset.event, "reset", "{reset:?}");

    // An id later than any the feed made (forged, or from before Redis lost its data): the
    // client is told to reload, and the stream carries on from the newest change.
    let mut ahead = open(&system, &ada, "", Some("99999999999999-0")).await;
    let reset = ahead.next(SOON).await.expect("an event");
    assert_eq!(reset.event, "reset", "{reset:?}");
    let version = set_priority(&system, &ada, &task, "high").await;
    ahead
        .next_where(SOON, is("task", &task, version))
        .await
        .expect("live changes after the reset");
}

#[tokio::test]
async fn a_member_removed_whose_change_never_reaches_the_feed_loses_access_at_a_heartbeat() {
    // No change feed at all: only the heartbeat's look at the read model can tell.
    let system = System::start_with(TestDatabase::new().await, |query, projector| {
        query.stream.heartbeat_secs = 1;
        projector.projector.stream_max_len = 0;
    })
    .await;
    let alice = user(&system, "alice").await;
    let bob = user(&system, "bob").await;
    let (apollo, _) = create(&system, &alice, "/projects", json!({ "name": "Apollo" })).await;
    let added = membership(&system, Method::POST, &alice, &apollo, &bob).await;
    let (status, _) = system
        .query(
            &format!("/projects/{apollo}?min_version={added}"),
            &bob.token,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "bob is a member");
    let mut bobs = open(&system, &bob, "", None).await;
    membership(&system, Method::DELETE, &alice, &apollo, &bob).await;
    let revoked = bobs
        .next_where(SOON, |e| e.event == "access_revoked")
        .await
        .expect("bob is told at a heartbeat");
    assert_eq!(revoked.json()["id"], apollo.as_str());
}

#[tokio::test]
async fn stopping_the_server_ends_open_streams() {
    let mut app = crate::helpers::TestApp::spawn().await;
    let ada = crate::helpers::user("ada", "Ada", "Lovelace");
    let token = app.token(&ada.id, domain::Role::User).await;
    let url = format!("{}/stream", app.url);
    let (status, stream) = EventStream::open(&app.http, &url, &token, None)
        .await
        .expect("GET /stream");
    assert_eq!(status, 200);
    let mut stream = stream.expect("a stream");
    let stopped = app.stop();
    let end = stream
        .next_where(SOON, |e| e.event == "end")
        .await
        .expect("the stream is ended");
    assert_eq!(end.json()["reason"], "shutdown");
    tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .expect("the server stops without waiting for the stream's client")
        .expect("the server task")
        .expect("served");
}

#[tokio::test]
async fn a_revoked_token_ends_the_stream() {
    let system = System::start_with(TestDatabase::new().await, |query, _| {
        query.stream.heartbeat_secs = 1;
    })
    .await;
    let ada = user(&system, "ada").await;
    let mut stream = open(&system, &ada, "", None).await;
    system
        .command(Method::POST, "/auth/logout", Some(&ada.token), json!({}))
        .await;
    let end = stream
        .next_where(SOON, |e| e.event == "end")
        .await
        .expect("the stream ends");
    assert_eq!(end.json()["reason"], "revoked_token");
    assert!(stream.next(A_WHILE).await.is_none() && stream.ended());
}

#[tokio::test]
async fn a_slow_client_is_cut_off_while_the_others_keep_up() {
    let system = System::start_on(TestDatabase::new().await).await;
    let ada = user(&system, "ada").await;
    let mut slow = open(&system, &ada, "", None).await;
    let mut fast = open(&system, &ada, "", None).await;
    // Notifications for ada straight into the feed, 40 MB of them: far more than the socket
    // buffers of the slow client hold, so it falls more than the buffer (1024) behind.
    let (mut redis, key) = feed(&system).await;
    let padding = "x".repeat(2000);
    let (chunks, per_chunk) = (80, 250);
    let total = chunks * per_chunk;
    let received = std::sync::atomic::AtomicUsize::new(0);
    let writer = async {
        for chunk in 0..chunks {
            // The fast client keeps up: the feed is never more than one chunk ahead of it.
            while received.load(std::sync::atomic::Ordering::Relaxed) + per_chunk
                < chunk * per_chunk
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let mut pipe = redis::pipe();
            for n in 0..per_chunk {
                let fields = notification(&ada.id, chunk * per_chunk + n, &padding);
                pipe.cmd("XADD")
                    .arg(&key)
                    .arg("*")
                    .arg(&fields[..])
                    .ignore();
            }
            let () = pipe.query_async(&mut redis).await.expect("XADD");
        }
    };
    let reader = async {
        while received.load(std::sync::atomic::Ordering::Relaxed) < total {
            let event = fast.next(SOON).await.expect("the fast client keeps up");
            assert_eq!(event.event, "notification", "{event:?}");
            received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    };
    tokio::join!(writer, reader);
    // The slow client reads now: what its socket held, then `lagged`, then the end.
    let lagged = slow
        .next_where(SOON, |e| e.event == "lagged")
        .await
        .expect("the slow client is told it lagged");
    assert!(
        lagged.json()["missed"].as_u64().unwrap_or(0) > 0,
        "{lagged:?}"
    );
    assert!(slow.next(A_WHILE).await.is_none() && slow.ended());
}

#[tokio::test]
async fn bad_stream_requests_are_refused() {
    let system = System::start_on(TestDatabase::new().await).await;
    let ada = user(&system, "ada").await;
    let url = format!("{}/stream", system.query_url);
    let (status, _) = EventStream::open(&system.http, &url, "not-a-token", None)
        .await
        .expect("request");
    assert_eq!(status, 401);
    let (status, _) = EventStream::open(&system.http, &url, &ada.token, Some("yesterday"))
        .await
        .expect("request");
    assert_eq!(status, 422);
    let elsewhere = format!("{url}?project_id={}", uuid::Uuid::new_v4());
    let (status, _) = EventStream::open(&system.http, &elsewhere, &ada.token, None)
        .await
        .expect("request");
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_resume_gets_every_missed_change_across_pages() {
    let system = System::start_on(TestDatabase::new().await).await;
    let ada = user(&system, "ada").await;
    let (mut redis, key) = feed(&system).await;
    let numbered = |n: usize| notification(&ada.id, n, &format!("number {n}"));
    let first: String = redis::cmd("XADD")
        .arg(&key)
        .arg("*")
        .arg(&numbered(0)[..])
        .query_async(&mut redis)
        .await
        .expect("XADD");
    // Missed while away: more than two pages of the resume (200 each).
    let mut pipe = redis::pipe();
    for n in 1..=450 {
        pipe.cmd("XADD")
            .arg(&key)
            .arg("*")
            .arg(&numbered(n)[..])
            .ignore();
    }
    let () = pipe.query_async(&mut redis).await.expect("XADD");
    let mut resumed = open(&system, &ada, "", Some(&first)).await;
    for n in 1..=450 {
        let event = resumed.next(SOON).await.expect("every missed change");
        assert_eq!(
            (
                event.event.as_str(),
                event.json()["view"]["message"].clone()
            ),
            ("notification", json!(format!("number {n}"))),
            "{event:?}"
        );
    }
}

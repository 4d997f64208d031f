//! Every query the query API sends is served by an index: the API talks to MongoDB through a
//! recording proxy while every route and filter is called on a populated database, then each
//! recorded `find`, `aggregate`, `count` and `distinct` is explained on the real server and a
//! collection scan anywhere in its winning plan fails the test.

use std::sync::{Arc, Mutex};

use mongodb::bson::{Bson, Document, doc};
use read_model::documents::{NotificationView, kind, status};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{TestApp, at, day, id, project, task, user};
use domain::Role;

/// The commands the proxy saw, in order.
type Recorded = Arc<Mutex<Vec<Document>>>;

const QUERIES: [&str; 4] = ["find", "aggregate", "count", "distinct"];

/// A proxy on 127.0.0.1 in front of `upstream` (`host:port`) that records the query commands
/// of every OP_MSG it forwards; returns its address.
async fn recording_proxy(upstream: String, recorded: Recorded) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                continue;
            };
            let recorded = Arc::clone(&recorded);
            tokio::spawn(async move {
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let replies = tokio::spawn(async move {
                    let _copied = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
                // Client → server, one message at a time (header, then the rest).
                loop {
                    let mut header = [0_u8; 16];
                    if client_read.read_exact(&mut header).await.is_err() {
                        break;
                    }
                    let length = i32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
                    let opcode = i32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
                    let mut body = vec![0_u8; usize::try_from(length).unwrap_or(16) - 16];
                    if client_read.read_exact(&mut body).await.is_err() {
                        break;
                    }
                    // OP_MSG: flag bits, then sections; kind 0 is the command document.
                    if opcode == 2013
                        && body.get(4) == Some(&0)
                        && let Ok(command) = Document::from_reader(&body[5..])
                        && command
                            .keys()
                            .next()
                            .is_some_and(|name| QUERIES.contains(&name.as_str()))
                    {
                        recorded.lock().expect("lock").push(command);
                    }
                    if server_write.write_all(&header).await.is_err()
                        || server_write.write_all(&body).await.is_err()
                    {
                        break;
                    }
                }
                replies.abort();
            });
        }
    });
    address
}

/// Whether a plan (any nested stage) scans a whole collection.
fn scans_collection(plan: &Bson) -> bool {
    match plan {
        Bson::Document(document) => document.iter().any(|(key, value)| {
            (key == "stage" && value.as_str() == Some("COLLSCAN")) || scans_collection(value)
        }),
        Bson::Array(items) => items.iter().any(scans_collection),
        _ => false,
    }
}

/// Whether an explain output's winning plans (wherever they are nested: a `find`, or an
/// aggregation's first stage) scan a collection; also `false` when there is no winning plan.
fn winning_plan_scans(explained: &Bson) -> bool {
    match explained {
        Bson::Document(document) => document.iter().any(|(key, value)| {
            if key == "winningPlan" {
                scans_collection(value)
            } else {
                winning_plan_scans(value)
            }
        }),
        Bson::Array(items) => items.iter().any(winning_plan_scans),
        _ => false,
    }
}

/// Whether an explain output names a winning plan at all.
fn has_winning_plan(explained: &Bson) -> bool {
    match explained {
        Bson::Document(document) => document
            .iter()
            .any(|(key, value)| key == "winningPlan" || has_winning_plan(value)),
        Bson::Array(items) => items.iter().any(has_winning_plan),
        _ => false,
    }
}

/// The command as `explain` takes it: without the driver's session and routing fields.
fn explainable(mut command: Document) -> Document {
    for field in [
        "$db",
        "lsid",
        "$clusterTime",
        "txnNumber",
        "$readPreference",
        "cursor",
    ] {
        command.remove(field);
    }
    if command.contains_key("aggregate") {
        command.insert("cursor", doc! {});
    }
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_query_of_every_route_uses_an_index() {
    let recorded: Recorded = Arc::default();
    let servers = test_support::servers();
    let upstream = servers
        .mongo
        .url
        .expose()
        .trim_start_matches("mongodb://")
        .split(['/', '?'])
        .next()
        .expect("a host")
        .to_owned();
    let proxy = recording_proxy(upstream, Arc::clone(&recorded)).await;
    let app = TestApp::spawn_with(|settings| {
        settings.mongo.url = service_runtime::settings::Secret::new(format!(
            "mongodb://{proxy}/?directConnection=true&retryWrites=false"
        ));
    })
    .await;
    read_model::ensure_indexes(&app.mongo, 1)
        .await
        .expect("indexes");

    // A populated database: users, projects with many tasks, notifications.
    let ada = user("ada", "Ada", "Lovelace");
    let bob = user("bob", "Bob", "Builder");
    app.put_user(&ada).await;
    app.put_user(&bob).await;
    for n in 0..50 {
        app.put_user(&user(&format!("user{n}"), "Some", &format!("One{n}")))
            .await;
    }
    let launch = project("Launch", &ada.id, &[&bob.id]);
    app.put_project(&launch).await;
    for n in 0..20 {
        app.put_project(&project(&format!("Other {n}"), &bob.id, &[]))
            .await;
    }
    for n in 0..300 {
        let mut t = task(&launch, &format!("Task {n}"), n);
        t.status = status::ALL[usize::try_from(n).unwrap_or(0) % 4].to_owned();
        t.assignee_id = (n % 2 == 0).then(|| bob.id.clone());
        t.due_date = Some(day(n % 30 - 15));
        app.put_task(&t).await;
    }
    for n in 0..30 {
        app.put_notification(&NotificationView {
            id: id(),
            user_id: bob.id.clone(),
            kind: kind::TASK_ASSIGNED.to_owned(),
            task_id: id(),
            project_id: launch.id.clone(),
            message: "m".to_owned(),
            actor_id: Some(ada.id.clone()),
            created_at: at(n),
        })
        .await;
    }

    let bob_token = app.token(&bob.id, Role::User).await;
    let admin = app.token(&ada.id, Role::Admin).await;
    let p = &launch.id;
    let paths = [
        "/me".to_owned(),
        "/users".to_owned(),
        "/users?limit=5".to_owned(),
        "/users/search?query=one".to_owned(),
        format!("/users/{}", bob.id),
        "/users/by-username/bob".to_owned(),
        "/projects".to_owned(),
        format!("/projects/{p}"),
        "/projects/by-name/Launch".to_owned(),
        format!("/projects/{p}/stats"),
        "/stats/me".to_owned(),
        "/tasks".to_owned(),
        "/tasks?sort=due_date".to_owned(),
        "/tasks?sort=updated_at".to_owned(),
        "/tasks?status=pending".to_owned(),
        format!("/tasks?project_id={p}&limit=50"),
        format!("/projects/{p}/tasks?status=done"),
        "/tasks?assignee_id=me".to_owned(),
        format!("/tasks?project_id={p}&overdue=true"),
        format!("/tasks?project_id={p}&overdue=false"),
        format!("/tasks?project_id={p}&q=task%201"),
        format!("/tasks?project_id={p}&sort=due_date"),
        format!("/tasks?project_id={p}&sort=updated_at&order=asc"),
        "/notifications".to_owned(),
        "/notifications?unread=true".to_owned(),
    ];
    for token in [&bob_token, &admin] {
        for path in &paths {
            let reply = app.get(path, Some(token)).await;
            assert!(reply.status.as_u16() < 500, "{path}: {}", reply.status);
            // The second page too, where there is one.
            if let Some(cursor) = reply.body["next_cursor"].as_str() {
                let separator = if path.contains('?') { '&' } else { '?' };
                let next = format!("{path}{separator}cursor={cursor}");
                let reply = app.get(&next, Some(token)).await;
                assert_eq!(reply.status.as_u16(), 200, "{next}");
            }
        }
    }

    let commands = recorded.lock().expect("lock").clone();
    assert!(
        commands.len() > paths.len(),
        "only {} queries recorded",
        commands.len()
    );
    let mut scans = Vec::new();
    for command in commands {
        let explained = app
            .mongo
            .run_command(
                doc! { "explain": explainable(command.clone()), "verbosity": "queryPlanner" },
            )
            .await
            .unwrap_or_else(|error| panic!("explain {command}: {error}"));
        let explained = Bson::Document(explained);
        assert!(
            has_winning_plan(&explained),
            "explain of {command} names no winning plan: {explained}"
        );
        if winning_plan_scans(&explained) {
            scans.push(command.to_string());
        }
    }
    assert!(
        scans.is_empty(),
        "{} queries scan a collection:\n{}",
        scans.len(),
        scans.join("\n")
    );
}

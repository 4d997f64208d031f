//! End-to-end reads against the real servers, with read models seeded directly: users,
//! projects and who may see them, task filters / sorting / pagination, statistics,
//! notifications.

use std::collections::HashSet;

use domain::Role;
use read_model::documents::NotificationView;
use read_model::keys;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, at, day, project, task, user};

#[tokio::test]
async fn users_are_listed_searched_and_found_by_id_and_username() {
    let app = TestApp::spawn().await;
    let alice = user("alice", "Alice", "Smith");
    let bob = user("bob", "Robert", "Alison");
    let carol = user("carol", "Carol", "Jones");
    for u in [&alice, &bob, &carol] {
        app.put_user(u).await;
    }
    let token = app.token(&alice.id, Role::User).await;

    let first = app.ok("/users?limit=2", &token).await;
    let names: Vec<_> = first["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|u| u["username"].as_str().expect("username"))
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = app
        .ok(&format!("/users?limit=2&cursor={cursor}"), &token)
        .await;
    assert_eq!(second["items"][0]["username"], "carol");
    assert!(second.get("next_cursor").is_none(), "{second}");

    // Case-insensitive prefix of first name, last name or username.
    let found = app.get("/users/search?query=ALI", Some(&token)).await;
    let mut hits: Vec<_> = found.ids();
    hits.sort();
    let mut expected = vec![alice.id.clone(), bob.id.clone()];
    expected.sort();
    assert_eq!(
        hits, expected,
        "alice (username/first name) and bob (last name Alison)"
    );
    assert_eq!(
        app.get("/users/search?query=.*", Some(&token))
            .await
            .ids()
            .len(),
        0
    );

    // Own e-mail is shown, others' is not.
    let me = app.ok("/me", &token).await;
    assert_eq!(me["id"], alice.id.as_str());
    assert_eq!(me["email"], "alice@example.com");
    let other = app.ok(&format!("/users/{}", bob.id), &token).await;
    assert_eq!(other["username"], "bob");
    assert!(other.get("email").is_none(), "{other}");
    assert!(other.get("username_lower").is_none(), "{other}");
    let admin = app.token(&carol.id, Role::Admin).await;
    assert_eq!(
        app.ok(&format!("/users/{}", bob.id), &admin).await["email"],
        "bob@example.com"
    );

    assert_eq!(
        app.ok("/users/by-username/Carol", &token).await["id"],
        carol.id.as_str()
    );
    let missing = app.get("/users/by-username/nobody", Some(&token)).await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let missing = app
        .get(&format!("/users/{}", uuid::Uuid::new_v4()), Some(&token))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn users_and_projects_are_read_from_redis_first() {
    let app = TestApp::spawn().await;
    let mut alice = user("alice", "Alice", "Smith");
    app.put_user(&alice).await;
    alice.first_name = "Cached".to_owned();
    app.cache_user(&alice).await;
    let token = app.token(&alice.id, Role::User).await;
    assert_eq!(app.ok("/me", &token).await["first_name"], "Cached");

    let mut p = project("Apollo", &alice.id, &[]);
    app.put_project(&p).await;
    p.description = "from redis".to_owned();
    app.cache_project(&p).await;
    let body = app.ok(&format!("/projects/{}", p.id), &token).await;
    assert_eq!(body["description"], "from redis");
    assert!(
        app.metrics()
            .await
            .contains("tasktrail_query_redis_hits_total 2")
    );

    // A miss is filled read-through: set only if absent, and expiring.
    let only_in_mongo = project("Hermes", &alice.id, &[]);
    app.put_project(&only_in_mongo).await;
    let path = format!("/projects/{}", only_in_mongo.id);
    assert_eq!(app.ok(&path, &token).await["name"], "Hermes");
    let key = keys::project(&app.prefix, 1, &only_in_mongo.id);
    let mut redis = app.redis.clone();
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .expect("TTL");
    assert!(ttl > 0, "a read-through copy expires (ttl {ttl})");
    assert_eq!(app.ok(&path, &token).await["name"], "Hermes");
    assert!(
        app.metrics()
            .await
            .contains("tasktrail_query_redis_hits_total 3")
    );
}

#[tokio::test]
async fn projects_and_their_tasks_are_visible_to_owner_members_and_admins_only() {
    let app = TestApp::spawn().await;
    let owner = user("owner", "O", "W");
    let member = user("member", "M", "E");
    let stranger = user("stranger", "S", "T");
    let admin = user("admin", "A", "D");
    let mine = project("Apollo", &owner.id, &[&member.id]);
    let mut theirs = project("Zeus", &stranger.id, &[]);
    theirs.created_at = at(10);
    app.put_project(&mine).await;
    app.put_project(&theirs).await;
    let my_task = task(&mine, "Launch", 1);
    let their_task = task(&theirs, "Secret", 2);
    app.put_task(&my_task).await;
    app.put_task(&their_task).await;

    let owner_token = app.token(&owner.id, Role::User).await;
    let member_token = app.token(&member.id, Role::User).await;
    let stranger_token = app.token(&stranger.id, Role::User).await;
    let admin_token = app.token(&admin.id, Role::Admin).await;

    for token in [&owner_token, &member_token] {
        assert_eq!(
            app.get("/projects", Some(token)).await.ids(),
            [mine.id.as_str()]
        );
        assert_eq!(
            app.get("/goals", Some(token)).await.ids(),
            [mine.id.as_str()]
        );
        assert_eq!(
            app.ok(&format!("/projects/{}", mine.id), token).await["name"],
            "Apollo"
        );
        assert_eq!(
            app.ok("/projects/by-name/apollo", token).await["id"],
            mine.id.as_str()
        );
        assert_eq!(
            app.get("/tasks", Some(token)).await.ids(),
            [my_task.id.as_str()]
        );
        assert_eq!(
            app.get(&format!("/goals/{}/tasks", mine.id), Some(token))
                .await
                .ids(),
            [my_task.id.as_str()]
        );
        assert_eq!(
            app.ok(&format!("/tasks/{}", my_task.id), token).await["title"],
            "Launch"
        );
    }
    // Another user's project and its tasks do not exist for me.
    for path in [
        format!("/projects/{}", theirs.id),
        format!("/goals/{}", theirs.id),
        "/projects/by-name/Zeus".to_owned(),
        format!("/projects/{}/tasks", theirs.id),
        format!("/projects/{}/stats", theirs.id),
        format!("/tasks/{}", their_task.id),
        format!("/tasks?project_id={}", theirs.id),
    ] {
        let reply = app.get(&path, Some(&owner_token)).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}: {}",
            reply.body
        );
    }
    assert_eq!(
        app.get("/projects", Some(&stranger_token)).await.ids(),
        [theirs.id.as_str()]
    );
    // Admins see everything, newest first.
    assert_eq!(
        app.get("/projects", Some(&admin_token)).await.ids(),
        [theirs.id.clone(), mine.id.clone()]
    );
    assert_eq!(app.get("/tasks", Some(&admin_token)).await.ids().len(), 2);
    assert_eq!(
        app.ok(&format!("/tasks/{}", their_task.id), &admin_token)
            .await["title"],
        "Secret"
    );
}

#[tokio::test]
async fn a_task_shows_the_current_names_of_its_project_and_assignee() {
    let app = TestApp::spawn().await;
    let owner = user("owner", "O", "W");
    let assignee = user("ada", "A", "L");
    let mut apollo = project("Apollo", &owner.id, &[&assignee.id]);
    app.put_user(&owner).await;
    app.put_project(&apollo).await;
    let mut assigned = task(&apollo, "Launch", 1);
    assigned.assignee_id = Some(assignee.id.clone());
    let unassigned = task(&apollo, "Land", 2);
    app.put_task(&assigned).await;
    app.put_task(&unassigned).await;
    let token = app.token(&owner.id, Role::User).await;

    // The assignee is not in the read model yet: no username, and no error.
    let one = app.ok(&format!("/tasks/{}", assigned.id), &token).await;
    assert_eq!(
        (&one["project_name"], &one["assignee_username"]),
        (&json!("Apollo"), &Value::Null)
    );

    // A rename and a registration change one document each; every task shows them at once.
    // (One task reads its names from the hot copies, which the first read filled from MongoDB:
    // the rename writes both copies, as the projector does.)
    apollo.name = "Artemis".to_owned();
    apollo.version += 1;
    app.put_project(&apollo).await;
    app.cache_project(&apollo).await;
    app.put_user(&assignee).await;
    let one = app.ok(&format!("/tasks/{}", assigned.id), &token).await;
    assert_eq!(
        (&one["project_name"], &one["assignee_username"]),
        (&json!("Artemis"), &json!("ada"))
    );
    let page = app
        .ok(
            &format!("/tasks?project_id={}&sort=created_at&order=asc", apollo.id),
            &token,
        )
        .await;
    let shown: Vec<(Value, Value)> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| (t["project_name"].clone(), t["assignee_username"].clone()))
        .collect();
    assert_eq!(
        shown,
        [
            (json!("Artemis"), json!("ada")),
            (json!("Artemis"), Value::Null)
        ]
    );
}

#[tokio::test]
async fn tasks_are_filtered_sorted_and_paginated() {
    let app = TestApp::spawn().await;
    let owner = user("owner", "O", "W");
    let dev = user("dev", "D", "V");
    let p = project("Apollo", &owner.id, &[&dev.id]);
    app.put_project(&p).await;
    let mut all = Vec::new();
    for i in 0..25_i64 {
        let mut t = task(&p, &format!("Task {i:02}"), i);
        t.status = ["pending", "in_progress", "done", "cancelled"][(i % 4) as usize].to_owned();
        if i % 2 == 0 {
            t.assignee_id = Some(dev.id.clone());
        }
        t.due_date = match i % 3 {
            0 => None,
            1 => Some(day(-(i + 1))),
            _ => Some(day(i + 1)),
        };
        t.updated_at = at(100 - i);
        app.put_task(&t).await;
        all.push(t);
    }
    let mut gone = task(&p, "Deleted one", 50);
    gone.deleted = true;
    app.put_task(&gone).await;
    let token = app.token(&dev.id, Role::User).await;

    // Default: newest first, 20 per page, then the rest; no duplicates, deleted left out.
    let first = app
        .get(&format!("/projects/{}/tasks", p.id), Some(&token))
        .await;
    assert_eq!(first.ids().len(), 20);
    assert_eq!(first.ids()[0], all[24].id);
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("next page")
        .to_owned();
    let second = app
        .get(
            &format!("/projects/{}/tasks?cursor={cursor}", p.id),
            Some(&token),
        )
        .await;
    assert_eq!(second.ids().len(), 5);
    assert!(second.body.get("next_cursor").is_none());
    let seen: HashSet<_> = first.ids().into_iter().chain(second.ids()).collect();
    assert_eq!(seen.len(), 25);
    assert!(!seen.contains(&gone.id));

    // Every sort, walked 7 at a time in both orders, matches the same sort done here.
    for (sort, key) in [("created_at", 0), ("due_date", 1), ("updated_at", 2)] {
        for order in ["asc", "desc"] {
            let mut walked = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut path = format!(
                    "/tasks?project_id={}&sort={sort}&order={order}&limit=7",
                    p.id
                );
                if let Some(cursor) = &cursor {
                    path.push_str(&format!("&cursor={cursor}"));
                }
                let page = app.get(&path, Some(&token)).await;
                assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
                walked.extend(page.ids());
                match page.body["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
            let mut expected = all.clone();
            expected.sort_by(|a, b| {
                let ordering = match key {
                    0 => a.created_at.cmp(&b.created_at),
                    1 => a.due_date.cmp(&b.due_date),
                    _ => a.updated_at.cmp(&b.updated_at),
                }
                .then_with(|| a.id.cmp(&b.id));
                if order == "desc" {
                    ordering.reverse()
                } else {
                    ordering
                }
            });
            let expected: Vec<_> = expected.into_iter().map(|t| t.id).collect();
            assert_eq!(walked, expected, "sort={sort} order={order}");
        }
    }
    // A cursor of one order is refused by another.
    let reply = app
        .get(
            &format!("/tasks?sort=due_date&cursor={cursor}"),
            Some(&token),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);

    let ids_where = |filter: fn(&read_model::documents::TaskView) -> bool| {
        let mut ids: Vec<_> = all
            .iter()
            .filter(|t| filter(t))
            .map(|t| t.id.clone())
            .collect();
        ids.sort();
        ids
    };
    let fetch = |query: String| {
        let app = &app;
        let token = &token;
        async move {
            let reply = app
                .get(&format!("/tasks?limit=100&{query}"), Some(token))
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
            let mut ids = reply.ids();
            ids.sort();
            ids
        }
    };
    let today = day(0);
    assert_eq!(
        fetch("status=done".into()).await,
        ids_where(|t| t.status == "done")
    );
    assert_eq!(
        fetch(format!("assignee_id={}", dev.id)).await,
        ids_where(|t| t.assignee_id.is_some())
    );
    assert_eq!(
        fetch("assignee_id=me".into()).await,
        ids_where(|t| t.assignee_id.is_some())
    );
    let overdue = fetch("overdue=true".into()).await;
    assert!(!overdue.is_empty());
    assert_eq!(overdue, ids_where(|t| t.is_overdue(day(0))));
    let _ = today;
    assert_eq!(
        fetch("overdue=false".into()).await,
        ids_where(|t| !t.is_overdue(day(0)))
    );
    assert_eq!(
        fetch("overdue=true&status=pending".into()).await,
        ids_where(|t| t.is_overdue(day(0)) && t.status == "pending")
    );
    assert_eq!(
        fetch("q=SK%2007".into()).await,
        ids_where(|t| t.title == "Task 07")
    );
    assert_eq!(fetch("q=(".into()).await, Vec::<String>::new());
    let overdue_flag = app.ok(&format!("/tasks/{}", all[1].id), &token).await;
    assert_eq!(overdue_flag["overdue"], true, "{overdue_flag}");
    let deleted = app.get(&format!("/tasks/{}", gone.id), Some(&token)).await;
    assert_eq!(deleted.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn project_statistics_come_from_redis_or_from_mongodb() {
    let app = TestApp::spawn().await;
    let owner = user("owner", "O", "W");
    let dev = user("dev", "D", "V");
    let p = project("Apollo", &owner.id, &[&dev.id]);
    app.put_project(&p).await;
    let specs = [
        ("pending", Some(&dev.id), Some(day(-2)), None),
        ("in_progress", Some(&dev.id), Some(day(3)), None),
        ("done", Some(&dev.id), None, Some(day(-1))),
        ("done", None, Some(day(-5)), Some(day(0))),
        ("cancelled", None, None, None),
    ];
    for (i, (status, assignee, due, completed)) in specs.into_iter().enumerate() {
        let mut t = task(&p, &format!("T{i}"), i64::try_from(i).expect("small"));
        t.status = status.to_owned();
        t.assignee_id = assignee.cloned();
        t.due_date = due;
        t.completed_on = completed;
        if i < 2 {
            "urgent".clone_into(&mut t.priority);
            t.priority_rank = Some(3);
            t.labels = vec!["bug".to_owned(), format!("only{i}")];
        }
        if i == 4 {
            // Written before priorities: not counted by priority (as the projector counts).
            t.priority_rank = None;
        }
        app.put_task(&t).await;
    }
    let token = app.token(&owner.id, Role::User).await;

    let stats = app.ok(&format!("/projects/{}/stats", p.id), &token).await;
    assert_eq!(stats["source"], "mongodb", "{stats}");
    assert_eq!(
        stats["by_priority"],
        serde_json::json!({ "low": 0, "normal": 2, "high": 0, "urgent": 2 })
    );
    assert_eq!(
        stats["by_label"],
        serde_json::json!({ "bug": 2, "only0": 1, "only1": 1 })
    );
    assert_eq!(stats["by_status"]["done"], 2, "{stats}");
    assert_eq!(stats["total"], 5);
    assert_eq!(
        stats["overdue"], 1,
        "only the open task due in the past: {stats}"
    );
    assert_eq!(stats["by_assignee"][0]["assignee_id"], dev.id.as_str());
    assert_eq!(stats["by_assignee"][0]["total"], 3);
    assert_eq!(
        stats["completed_per_day"].as_array().expect("days").len(),
        2
    );

    let key = keys::project_stats(&app.prefix, 1, &p.id);
    let done_field = keys::done_field(day(0));
    let old_field = keys::done_field(day(-400));
    let assignee_field = keys::assignee_field(&dev.id, "pending");
    app.redis_hash(
        &key,
        &[
            ("status:pending", 7),
            ("status:done", 1),
            (assignee_field.as_str(), 4),
            (done_field.as_str(), 1),
            (old_field.as_str(), 9),
            ("version", 99),
        ],
    )
    .await;
    let stats = app.ok(&format!("/projects/{}/stats", p.id), &token).await;
    assert_eq!(stats["source"], "redis", "{stats}");
    assert_eq!(stats["by_status"]["pending"], 7);
    assert_eq!(stats["total"], 8);
    assert_eq!(
        stats["overdue"], 1,
        "overdue is always counted at read time"
    );
    assert_eq!(stats["by_assignee"][0]["by_status"]["pending"], 4);
    assert_eq!(
        stats["completed_per_day"].as_array().expect("days").len(),
        1,
        "days outside the window are left out: {stats}"
    );

    // My statistics as an assignee.
    let dev_token = app.token(&dev.id, Role::User).await;
    let mine = app.ok("/stats/me", &dev_token).await;
    assert_eq!(mine["source"], "mongodb");
    assert_eq!(mine["total"], 3);
    assert_eq!(mine["overdue"], 1);
    assert_eq!(mine["completed_per_day"][0]["count"], 1);
    app.redis_hash(
        &keys::user_stats(&app.prefix, 1, &dev.id),
        &[("status:done", 5)],
    )
    .await;
    let mine = app.ok("/stats/me", &dev_token).await;
    assert_eq!(
        (mine["source"].as_str(), mine["by_status"]["done"].as_i64()),
        (Some("redis"), Some(5))
    );
}

#[tokio::test]
async fn notifications_are_mine_newest_first_and_read_up_to_my_watermark() {
    let app = TestApp::spawn().await;
    let mut me = user("me", "M", "E");
    let other = user("other", "O", "T");
    let notification = |recipient: &str, n: i64| NotificationView {
        id: format!("{}:{recipient}", uuid::Uuid::new_v4()),
        user_id: recipient.to_owned(),
        kind: "task_assigned".to_owned(),
        task_id: uuid::Uuid::new_v4().to_string(),
        project_id: uuid::Uuid::new_v4().to_string(),
        message: format!("n{n}"),
        actor_id: None,
        created_at: at(n),
    };
    for n in 0..5 {
        app.put_notification(&notification(&me.id, n)).await;
    }
    app.put_notification(&notification(&other.id, 9)).await;
    app.put_user(&me).await;
    let token = app.token(&me.id, Role::User).await;
    let messages = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|n| n["message"].as_str().expect("message").to_owned())
            .collect()
    };
    let all = app.ok("/notifications?limit=3", &token).await;
    assert_eq!(messages(&all), ["n4", "n3", "n2"]);
    let cursor = all["next_cursor"].as_str().expect("next page");
    let rest = app
        .ok(&format!("/notifications?limit=3&cursor={cursor}"), &token)
        .await;
    assert_eq!(messages(&rest), ["n1", "n0"]);
    let unread = app.ok("/notifications?unread=true", &token).await;
    assert_eq!(messages(&unread), ["n4", "n3", "n2", "n1", "n0"]);
    let read = app.ok("/notifications?unread=false", &token).await;
    assert_eq!(messages(&read), Vec::<String>::new());

    // I read everything up to n2 (inclusive).
    me.notifications_read_up_to = Some(at(2));
    me.version = 2;
    app.put_user(&me).await;
    app.cache_user(&me).await;
    let unread = app.ok("/notifications?unread=true", &token).await;
    assert_eq!(messages(&unread), ["n4", "n3"]);
    let read = app.ok("/notifications?unread=false", &token).await;
    assert_eq!(messages(&read), ["n2", "n1", "n0"]);
    let all = app.ok("/notifications", &token).await;
    let flags: Vec<bool> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| n["read"].as_bool().expect("read"))
        .collect();
    assert_eq!(flags, [false, false, true, true, true]);
    // Read-your-writes on my own user (the version of the command reply).
    let waited = app
        .ok(
            &format!(
                "/notifications?wait_for={}&min_version=2&unread=true",
                me.id
            ),
            &token,
        )
        .await;
    assert_eq!(messages(&waited), ["n4", "n3"]);
}

//! Attachments end to end: uploaded through the command API into the Garage bucket, shown in
//! the task's views by the projector, downloaded through the query API's short-lived redirect
//! by members only, and deleted from the bucket after their removal.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::{TestDatabase, dead_address, eventually, servers};

use crate::end_to_end::System;
use crate::stream::{User, create, membership, user};

const SOON: Duration = Duration::from_secs(30);

/// A client that does not follow redirects, to look at them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn upload(system: &System, owner: &User, task: &str, name: &str, bytes: &[u8]) -> Value {
    let response = system
        .http
        .post(format!(
            "{}/tasks/{task}/attachments?file_name={name}",
            system.command_url
        ))
        .bearer_auth(&owner.token)
        .body(bytes.to_vec())
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.expect("reply")
}

async fn download(system: &System, user: Option<&User>, path: &str) -> reqwest::Response {
    let mut request = no_redirects().get(format!("{}{path}", system.query_url));
    if let Some(user) = user {
        request = request.bearer_auth(&user.token);
    }
    request.send().await.expect("download")
}

#[tokio::test]
async fn members_download_attachments_through_a_short_lived_redirect_and_removal_deletes_the_file()
{
    let _ = servers().storage_with_prefix("check");
    let system = System::start_on(TestDatabase::new().await).await;
    let ada = user(&system, "ada").await;
    let bob = user(&system, "bob").await;
    let eve = user(&system, "eve").await;
    let (project, _) = create(&system, &ada, "/projects", json!({ "name": "Files" })).await;
    membership(&system, Method::POST, &ada, &project, &bob).await;
    let (task, _) = create(
        &system,
        &ada,
        &format!("/projects/{project}/tasks"),
        json!({ "title": "Spec" }),
    )
    .await;
    let text = "plan: ship it\n".as_bytes();
    let added = upload(&system, &ada, &task, "plan%20v1.txt", text).await;
    let attachment = added["attachment_id"].as_str().expect("id").to_owned();
    let version = added["version"].as_i64().expect("version");

    // The task's view lists it, for the member too.
    let (status, view) = system
        .query(&format!("/tasks/{task}?min_version={version}"), &bob.token)
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let listed = &view["attachments"][0];
    assert_eq!(listed["id"], attachment.as_str());
    assert_eq!(listed["file_name"], "plan v1.txt");
    assert_eq!(listed["content_type"], "text/plain");
    assert_eq!(listed["size"], text.len());
    let path = listed["download_path"].as_str().expect("path").to_owned();
    assert_eq!(path, format!("/tasks/{task}/attachments/{attachment}"));
    assert!(
        listed.get("storage_key").is_none(),
        "the storage key is internal"
    );

    // A member is redirected to the bytes, served as a download.
    let redirect = download(&system, Some(&bob), &path).await;
    assert_eq!(redirect.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(redirect.headers()["x-content-type-options"], "nosniff");
    assert_eq!(redirect.headers()["cache-control"], "no-store");
    let location = redirect.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let file = reqwest::get(&location).await.expect("storage GET");
    assert_eq!(file.status(), StatusCode::OK);
    assert_eq!(file.headers()["content-type"], "text/plain");
    let disposition = file.headers()["content-disposition"]
        .to_str()
        .expect("ascii");
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(
        disposition.contains("filename*=UTF-8''plan%20v1.txt"),
        "{disposition}"
    );
    assert_eq!(file.bytes().await.expect("bytes").as_ref(), text);
    // The URL is signed: changed, it is refused.
    let tampered = location.replace(&attachment, &uuid::Uuid::now_v7().to_string());
    let refused = reqwest::get(&tampered).await.expect("storage GET");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    // Nobody else gets it.
    assert_eq!(
        download(&system, Some(&eve), &path).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        download(&system, None, &path).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let unknown = format!("/tasks/{task}/attachments/{}", uuid::Uuid::now_v7());
    assert_eq!(
        download(&system, Some(&ada), &unknown).await.status(),
        StatusCode::NOT_FOUND
    );

    // The history shows the addition and the removal.
    let removed = system
        .command(
            Method::DELETE,
            &format!("/tasks/{task}/attachments/{attachment}"),
            Some(&ada.token),
            json!({}),
        )
        .await;
    let version = removed["version"].as_i64().expect("version");
    let (_, history) = system
        .query(&format!("/tasks/{task}/history"), &ada.token)
        .await;
    let types: Vec<&str> = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|event| event["event_type"].as_str())
        .collect();
    assert!(
        types.contains(&"AttachmentAdded") && types.contains(&"AttachmentRemoved"),
        "{types:?}"
    );
    let gone = download(
        &system,
        Some(&ada),
        &format!("{path}?min_version={version}"),
    )
    .await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    // The cleaner deletes the bytes: the old URL stops working.
    eventually(SOON, "the removed attachment's file is deleted", || {
        let location = location.clone();
        async move {
            let status = reqwest::get(&location).await.expect("storage GET").status();
            (status == StatusCode::NOT_FOUND).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn storage_down_answers_503_for_downloads_and_nothing_else() {
    let _ = servers().storage_with_prefix("check");
    let system = System::start_with(TestDatabase::new().await, |query, _| {
        query.storage.endpoint = format!("http://{}", dead_address());
    })
    .await;
    let ada = user(&system, "ada").await;
    let (project, _) = create(&system, &ada, "/projects", json!({ "name": "Files" })).await;
    let (task, _) = create(
        &system,
        &ada,
        &format!("/projects/{project}/tasks"),
        json!({ "title": "Spec" }),
    )
    .await;
    let added = upload(&system, &ada, &task, "a.txt", b"hello").await;
    let version = added["version"].as_i64().expect("version");
    let attachment = added["attachment_id"].as_str().expect("id");
    let (status, view) = system
        .query(&format!("/tasks/{task}?min_version={version}"), &ada.token)
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let reply = download(
        &system,
        Some(&ada),
        &format!("/tasks/{task}/attachments/{attachment}"),
    )
    .await;
    assert_eq!(reply.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = reply.json().await.expect("body");
    assert_eq!(body["error"]["details"]["dependency"], "object storage");
}

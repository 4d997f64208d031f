//! Attachments against the real servers: the files go to the Garage bucket `scripts/services`
//! runs (each test under a key prefix of its own), the events to PostgreSQL, and the cleaner
//! reads them back from the Kafka-protocol broker.

use std::sync::Arc;
use std::time::Duration;

use attachment_store::AttachmentStore;
use chrono::Utc;
use domain::FileName;
use event_store::{CommandBus, Registry};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tasktrail_command_api::attachments;
use tasktrail_command_api::settings::Settings;
use tasktrail_command_api::startup;
use tasktrail_command_api::state::Commands;
use test_support::{TestDatabase, dead_address, eventually, servers, spawn, unique_name};
use uuid::Uuid;

use crate::helpers::{PASSWORD, registration, settings};

/// A PNG's first bytes (its signature and the start of its header).
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
/// A Linux executable's first bytes.
const ELF: &[u8] = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0>\0";

struct App {
    url: String,
    http: reqwest::Client,
    db: TestDatabase,
    store: AttachmentStore,
}

struct Reply {
    status: StatusCode,
    body: Value,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
    fn attachment_id(&self) -> Uuid {
        self.body["attachment_id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no attachment id in {}", self.body))
    }
}

/// A member (the project's owner) with a task, and a stranger.
struct Scene {
    owner: String,
    stranger: String,
    task_id: Uuid,
}

impl App {
    async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let db = TestDatabase::new().await;
        let mut settings = settings(&db);
        settings.storage = servers().storage_with_prefix(&unique_name("att"));
        // The test's own view of the bucket, whatever `configure` does to the service's.
        let store = AttachmentStore::from_settings(&settings.storage)
            .expect("storage settings")
            .expect("storage configured");
        configure(&mut settings);
        let url = spawn(
            startup::build(settings)
                .await
                .expect("build the command API"),
        );
        Self {
            url,
            http: reqwest::Client::new(),
            db,
            store,
        }
    }

    async fn reply(response: reqwest::Response) -> Reply {
        let status = response.status();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, body }
    }

    async fn send(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::reply(request.send().await.expect("request")).await
    }

    async fn user(&self, name: &str) -> String {
        let http = &self.http;
        let registered = http
            .post(format!("{}/auth/register", self.url))
            .json(&registration(name))
            .send()
            .await
            .expect("register");
        assert!(registered.status().is_success(), "register {name}");
        let token: Value = http
            .post(format!("{}/auth/token", self.url))
            .json(&json!({ "username": name, "password": PASSWORD }))
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("token body");
        token["access_token"].as_str().expect("a token").to_owned()
    }

    async fn scene(&self) -> Scene {
        let owner = self.user("owner").await;
        let stranger = self.user("stranger").await;
        let project = self
            .send(
                Method::POST,
                "/projects",
                &owner,
                Some(json!({ "name": "Files" })),
            )
            .await;
        assert_eq!(project.status, StatusCode::CREATED, "{}", project.body);
        let task = self
            .send(
                Method::POST,
                &format!(
                    "/projects/{}/tasks",
                    project.body["id"].as_str().expect("id")
                ),
                &owner,
                Some(json!({ "title": "With files" })),
            )
            .await;
        assert_eq!(task.status, StatusCode::CREATED, "{}", task.body);
        Scene {
            owner,
            stranger,
            task_id: task.body["id"].as_str().expect("id").parse().expect("uuid"),
        }
    }

    /// `POST /tasks/{id}/attachments` with the raw bytes.
    async fn upload(
        &self,
        token: &str,
        task_id: Uuid,
        file_name: Option<&str>,
        bytes: &[u8],
    ) -> Reply {
        let mut url = format!("{}/tasks/{task_id}/attachments", self.url);
        if let Some(name) = file_name {
            url = format!("{url}?file_name={}", urlencode(name));
        }
        let response = self
            .http
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("upload");
        Self::reply(response).await
    }

    /// `POST /tasks/{id}/attachments` as `multipart/form-data`, the file in part `part`.
    async fn upload_multipart(
        &self,
        token: &str,
        task_id: Uuid,
        part: &str,
        file_name: &str,
        bytes: &[u8],
    ) -> Reply {
        let boundary = "tasktrail-test-boundary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nignored\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"{part}\"; filename=\"{file_name}\"\r\n\
             Content-Type: image/png\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let response = self
            .http
            .post(format!("{}/tasks/{task_id}/attachments", self.url))
            .bearer_auth(token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .expect("upload");
        Self::reply(response).await
    }

    /// The payloads of the task's `AttachmentAdded` events.
    async fn added(&self, task_id: Uuid) -> Vec<Value> {
        sqlx::query_scalar::<_, Value>(
            "SELECT payload->'AttachmentAdded' FROM events
              WHERE aggregate_id = $1 AND event_type = 'AttachmentAdded' ORDER BY sequence",
        )
        .bind(task_id.to_string())
        .fetch_all(&self.db.pool)
        .await
        .expect("events")
    }

    /// Waits until no object is stored at `key` (the cleaner deleted it).
    async fn gone(&self, key: &str, what: &str) {
        eventually(Duration::from_secs(30), what, || async {
            (!self.store.exists(key).await.expect("head")).then_some(())
        })
        .await;
    }

    /// Every object of this test's prefix.
    async fn objects(&self) -> Vec<String> {
        let far = Utc::now() + chrono::Duration::days(1);
        let mut keys: Vec<String> = self
            .store
            .objects_before(far)
            .await
            .expect("list")
            .into_iter()
            .map(|object| object.key)
            .collect();
        keys.sort();
        keys
    }

    /// `POST /tasks/{id}/attachments/uploads`, which must answer 201.
    async fn start_upload(&self, token: &str, task: Uuid) -> Reply {
        let ticket = self
            .send(
                Method::POST,
                &format!("/tasks/{task}/attachments/uploads"),
                token,
                None,
            )
            .await;
        assert_eq!(ticket.status, StatusCode::CREATED, "{}", ticket.body);
        assert_eq!(ticket.body["method"], "PUT");
        ticket
    }

    /// `POST /tasks/{id}/attachments/{attachment}/complete` of `report.pdf`.
    async fn complete(&self, token: &str, task: Uuid, id: Uuid, sha256: String) -> Reply {
        self.send(
            Method::POST,
            &format!("/tasks/{task}/attachments/{id}/complete"),
            token,
            Some(json!({ "file_name": "report.pdf", "sha256": sha256 })),
        )
        .await
    }

    /// The task commands over this test's database, for the sweep.
    fn task_commands(&self) -> Commands<domain::Task> {
        let pool = self.db.pool.clone();
        Commands::new(
            CommandBus::new(pool.clone(), Registry::new(pool).task_services()),
            "tasks",
            Arc::from("http://127.0.0.1:8082"),
        )
    }
}

fn urlencode(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn a_member_attaches_files_raw_and_multipart_and_the_events_record_what_was_stored() {
    let app = App::spawn().await;
    let scene = app.scene().await;
    let text = b"hello attachments\n";
    let raw = app
        .upload(
            &scene.owner,
            scene.task_id,
            Some("../../etc/notes\u{1b}.txt"),
            text,
        )
        .await;
    assert_eq!(raw.status, StatusCode::CREATED, "{}", raw.body);
    assert_eq!(raw.body["id"], scene.task_id.to_string());
    assert_eq!(raw.body["version"], 2);
    let png = app
        .upload_multipart(&scene.owner, scene.task_id, "file", "pixel.png", PNG)
        .await;
    assert_eq!(png.status, StatusCode::CREATED, "{}", png.body);
    // Over one 5 MiB part: the multipart path to storage.
    let big: Vec<u8> = b"0123456789abcdef\n"
        .iter()
        .copied()
        .cycle()
        .take(6 * 1024 * 1024 + 3)
        .collect();
    let large = app
        .upload(&scene.owner, scene.task_id, Some("big.txt"), &big)
        .await;
    assert_eq!(large.status, StatusCode::CREATED, "{}", large.body);

    let added = app.added(scene.task_id).await;
    assert_eq!(added.len(), 3);
    let expect = [
        (
            raw.attachment_id(),
            "notes.txt",
            "text/plain",
            text.to_vec(),
        ),
        (png.attachment_id(), "pixel.png", "image/png", PNG.to_vec()),
        (large.attachment_id(), "big.txt", "text/plain", big),
    ];
    for (event, (id, name, content_type, bytes)) in added.iter().zip(&expect) {
        assert_eq!(event["attachment_id"], id.to_string());
        assert_eq!(event["file_name"], *name);
        assert_eq!(event["content_type"], *content_type);
        assert_eq!(event["size"], bytes.len());
        assert_eq!(event["sha256"], sha256_hex(bytes));
        assert_eq!(event["storage_key"], app.store.key(scene.task_id, *id));
        assert!(
            app.store
                .exists(&app.store.key(scene.task_id, *id))
                .await
                .expect("head")
        );
    }
}

#[tokio::test]
async fn strangers_and_missing_tasks_store_nothing() {
    let app = App::spawn().await;
    let scene = app.scene().await;
    let refused = app
        .upload(&scene.stranger, scene.task_id, Some("x.txt"), b"hello")
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let missing = app
        .upload(&scene.owner, Uuid::now_v7(), Some("x.txt"), b"hello")
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    let ticket = app
        .send(
            Method::POST,
            &format!("/tasks/{}/attachments/uploads", scene.task_id),
            &scene.stranger,
            None,
        )
        .await;
    assert_eq!(ticket.status, StatusCode::FORBIDDEN, "{}", ticket.body);
    assert_eq!(app.objects().await, Vec::<String>::new());
}

#[tokio::test]
async fn hostile_files_are_refused_and_leave_nothing_behind() {
    let app = App::spawn_with(|settings| settings.storage.max_bytes = 4096).await;
    let scene = app.scene().await;
    let (owner, task) = (&scene.owner, scene.task_id);

    // Too large: refused by its declared length, and while it streams (multipart framing).
    let declared = app
        .upload(owner, task, Some("big.txt"), &[b'a'; 5000])
        .await;
    assert_eq!(
        declared.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        declared.body
    );
    assert_eq!(declared.code(), "file_too_large");
    assert_eq!(declared.body["error"]["details"]["max_bytes"], 4096);
    let streamed = app
        .upload_multipart(owner, task, "file", "big.txt", &[b'a'; 5000])
        .await;
    assert_eq!(
        streamed.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        streamed.body
    );

    // Not an accepted type, whatever its name and Content-Type say.
    let elf = app.upload(owner, task, Some("photo.png"), ELF).await;
    assert_eq!(
        elf.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        elf.body
    );
    assert_eq!(elf.code(), "unsupported_file_type");
    let elf = app
        .upload_multipart(owner, task, "file", "photo.png", ELF)
        .await;
    assert_eq!(
        elf.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        elf.body
    );
    let binary = app.upload(owner, task, Some("data.bin"), b"ab\0cd").await;
    assert_eq!(
        binary.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        binary.body
    );

    // Empty, nameless, or no file part at all.
    let empty = app.upload(owner, task, Some("empty.txt"), b"").await;
    assert_eq!(
        empty.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        empty.body
    );
    assert_eq!(empty.code(), "empty_file");
    let nameless = app.upload(owner, task, None, b"hello").await;
    assert_eq!(
        nameless.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        nameless.body
    );
    let dots = app.upload(owner, task, Some("../.."), b"hello").await;
    assert_eq!(
        dots.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        dots.body
    );
    let no_part = app
        .upload_multipart(owner, task, "attachment", "a.png", PNG)
        .await;
    assert_eq!(
        no_part.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        no_part.body
    );
    assert_eq!(
        app.objects().await,
        Vec::<String>::new(),
        "a refusal left a file"
    );

    // Markup is kept as plain text (downloads are never rendered); names lose paths and
    // control characters.
    let html = app
        .upload(
            owner,
            task,
            Some("C:\\temp\\page\u{202E}lmth.html"),
            b"<script>alert(1)</script>",
        )
        .await;
    assert_eq!(html.status, StatusCode::CREATED, "{}", html.body);
    let added = app.added(task).await;
    assert_eq!(added[0]["content_type"], "text/plain");
    assert_eq!(added[0]["file_name"], "pagelmth.html");
    assert_eq!(app.objects().await.len(), 1);
}

#[tokio::test]
async fn a_presigned_upload_becomes_an_attachment_only_once_its_bytes_check_out() {
    let app = App::spawn().await;
    let scene = app.scene().await;
    let (owner, task) = (&scene.owner, scene.task_id);
    let start = || app.start_upload(owner, task);
    let put = |url: &str, bytes: &'static [u8]| {
        let request = reqwest::Client::new().put(url).body(bytes);
        async move {
            let response = request.send().await.expect("PUT to storage");
            assert!(response.status().is_success(), "PUT: {}", response.status());
        }
    };
    let complete = |id: Uuid, sha256: String| app.complete(owner, task, id, sha256);
    let pdf: &'static [u8] = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n";

    // Nothing uploaded yet.
    let ticket = start().await;
    let id = ticket.attachment_id();
    let early = complete(id, sha256_hex(pdf)).await;
    assert_eq!(early.status, StatusCode::NOT_FOUND, "{}", early.body);
    assert_eq!(early.code(), "upload_not_found");

    // The wrong checksum: refused, and the bytes are gone.
    put(ticket.body["upload_url"].as_str().expect("url"), pdf).await;
    let wrong = complete(id, sha256_hex(b"something else")).await;
    assert_eq!(
        wrong.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        wrong.body
    );
    assert_eq!(wrong.code(), "checksum_mismatch");
    assert!(
        !app.store
            .exists(&app.store.key(task, id))
            .await
            .expect("head")
    );

    // An executable under a harmless name: refused, and gone.
    let ticket = start().await;
    put(ticket.body["upload_url"].as_str().expect("url"), ELF).await;
    let elf = complete(ticket.attachment_id(), sha256_hex(ELF)).await;
    assert_eq!(
        elf.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        elf.body
    );
    assert_eq!(app.objects().await, Vec::<String>::new());

    // The real thing, once.
    let ticket = start().await;
    let id = ticket.attachment_id();
    put(ticket.body["upload_url"].as_str().expect("url"), pdf).await;
    let done = complete(id, sha256_hex(pdf)).await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.body);
    assert_eq!(done.attachment_id(), id);
    let again = complete(id, sha256_hex(pdf)).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(again.code(), "attachment_exists");
    let added = app.added(task).await;
    assert_eq!(added.len(), 1);
    assert_eq!(added[0]["content_type"], "application/pdf");
    assert_eq!(added[0]["size"], pdf.len());
}

#[tokio::test]
async fn removing_an_attachment_or_deleting_its_task_deletes_the_files_after_the_events() {
    let app = App::spawn_with(|settings| settings.relay.poll_interval_ms = 50).await;
    let scene = app.scene().await;
    let (owner, task) = (&scene.owner, scene.task_id);
    let first = app
        .upload(owner, task, Some("a.txt"), b"first")
        .await
        .attachment_id();
    let second = app
        .upload(owner, task, Some("b.txt"), b"second")
        .await
        .attachment_id();
    let (first_key, second_key) = (app.store.key(task, first), app.store.key(task, second));

    let removed = app
        .send(
            Method::DELETE,
            &format!("/tasks/{task}/attachments/{first}"),
            owner,
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
    let again = app
        .send(
            Method::DELETE,
            &format!("/tasks/{task}/attachments/{first}"),
            owner,
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.body);
    assert_eq!(again.code(), "attachment_not_found");
    app.gone(&first_key, "the removed attachment's file is deleted")
        .await;
    assert!(app.store.exists(&second_key).await.expect("head"));

    let deleted = app
        .send(Method::DELETE, &format!("/tasks/{task}"), owner, None)
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    app.gone(&second_key, "the deleted task's files are deleted")
        .await;
}

#[tokio::test]
async fn the_sweep_deletes_files_no_attachment_owns_and_keeps_the_rest() {
    // No sweep of its own, and no events for the cleaner (no relay): the test sweeps itself,
    // and the removed attachment's file is still there, as if the cleaner had not run yet.
    let app = App::spawn_with(|settings| {
        settings.storage.sweep_interval_secs = 0;
        settings.relay.enabled = false;
    })
    .await;
    let scene = app.scene().await;
    let (owner, task) = (&scene.owner, scene.task_id);
    let kept = app
        .upload(owner, task, Some("kept.txt"), b"kept")
        .await
        .attachment_id();
    let removed = app
        .upload(owner, task, Some("gone.txt"), b"gone")
        .await
        .attachment_id();
    let reply = app
        .send(
            Method::DELETE,
            &format!("/tasks/{task}/attachments/{removed}"),
            owner,
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    // Bytes whose command never came: on this task, and on a task that does not exist.
    let name = FileName::clean("orphan.txt").expect("name");
    let orphan = app.store.key(task, Uuid::now_v7());
    let stray = app.store.key(Uuid::now_v7(), Uuid::now_v7());
    for key in [&orphan, &stray] {
        app.store
            .put(
                key,
                &name,
                Box::pin(futures::stream::iter([Ok::<_, std::io::Error>(
                    bytes::Bytes::from_static(b"orphan"),
                )])),
            )
            .await
            .expect("put");
    }
    let tasks = app.task_commands();

    // Within the grace period nothing is touched.
    let swept = attachments::sweep(&app.store, &tasks, Duration::from_secs(3600))
        .await
        .expect("sweep");
    assert_eq!(swept, attachments::Swept::default());
    assert_eq!(app.objects().await.len(), 4);

    let swept = attachments::sweep(&app.store, &tasks, Duration::ZERO)
        .await
        .expect("sweep");
    assert_eq!(
        swept,
        attachments::Swept {
            checked: 4,
            deleted: 3
        }
    );
    assert_eq!(app.objects().await, vec![app.store.key(task, kept)]);
}

#[tokio::test]
async fn storage_down_answers_503_for_attachments_and_nothing_else() {
    let app = App::spawn_with(|settings| {
        settings.storage.endpoint = format!("http://{}", dead_address());
    })
    .await;
    let scene = app.scene().await;
    let upload = app
        .upload(&scene.owner, scene.task_id, Some("a.txt"), b"hello")
        .await;
    assert_eq!(
        upload.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        upload.body
    );
    assert_eq!(
        upload.body["error"]["details"]["dependency"],
        "object storage"
    );
    let ticket = app
        .send(
            Method::POST,
            &format!("/tasks/{}/attachments/uploads", scene.task_id),
            &scene.owner,
            None,
        )
        .await;
    assert_eq!(
        ticket.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ticket.body
    );
    // Everything else works.
    let edited = app
        .send(
            Method::PATCH,
            &format!("/tasks/{}", scene.task_id),
            &scene.owner,
            Some(json!({ "title": "Still fine" })),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    assert!(app.added(scene.task_id).await.is_empty());
}

#[tokio::test]
async fn without_storage_settings_attachment_routes_answer_503() {
    let app = App::spawn_with(|settings| {
        settings.storage.access_key_id = String::new();
    })
    .await;
    let scene = app.scene().await;
    let upload = app
        .upload(&scene.owner, scene.task_id, Some("a.txt"), b"hello")
        .await;
    assert_eq!(
        upload.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        upload.body
    );
}

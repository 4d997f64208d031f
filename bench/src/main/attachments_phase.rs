//! Attachments: upload and download of 1 KB and 20 MB files through the APIs, against the same
//! operations sent straight to the same S3 server from the client crate (`object_store`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use tasktrail_bench::load::{self, Throughput};
use tasktrail_bench::product::{Actor, Api};
use tasktrail_bench::report::{Report, progress as say};

/// The small and the large file.
const SMALL: usize = 1024;
const LARGE: usize = 20 * 1024 * 1024;
/// Tasks the small uploads go to, and how many each takes (a task holds at most 100).
const TASKS: usize = 100;
const PER_TASK: usize = 90;

/// Measures attachments against the running APIs and adds the figures to `report`.
pub(crate) async fn measure(
    api: &Api,
    actor: &Actor,
    clients: usize,
    phase: Duration,
    quick: bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    let settings: attachment_store::StorageSettings =
        service_runtime::settings::load::<Storage>(&[])
            .context("TASKTRAIL_STORAGE__* settings")?
            .storage;
    if !settings.configured() {
        report.note(
            "attachments: not measured (no TASKTRAIL_STORAGE__ACCESS_KEY_ID; run scripts/services up)"
                .to_owned(),
        );
        return Ok(());
    }
    let direct: Arc<dyn ObjectStore> = Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(&settings.endpoint)
            .with_region(&settings.region)
            .with_bucket_name(&settings.bucket)
            .with_access_key_id(&settings.access_key_id)
            .with_secret_access_key(settings.secret_access_key.expose())
            .with_allow_http(true)
            .build()?,
    );
    let (task, _) = api.create_task(actor, 0).await?;
    let small = Bytes::from(text(SMALL));
    let large = Bytes::from(text(LARGE));
    let large_rounds = if quick { 2 } else { 8 };
    let clients = clients.min(8);

    say("attachments: 1 KB uploads, through the API and straight to storage");
    // A task holds at most 100 attachments, and uploads to one task at once would conflict
    // (one aggregate): upload n goes to task n % TASKS.
    let mut tasks = Vec::with_capacity(TASKS);
    for n in 0..TASKS {
        tasks.push(api.create_task(actor, n as u64 + 1).await?.0);
    }
    let tasks = Arc::new(tasks);
    let through = {
        let (api, actor, tasks, body) = (
            api.clone(),
            actor.clone(),
            Arc::clone(&tasks),
            small.clone(),
        );
        let most = (TASKS * PER_TASK) as u64;
        load::closed_loop(clients, phase, most, move |_, n| {
            let (api, actor, body) = (api.clone(), actor.clone(), body.clone());
            let task = tasks[usize::try_from(n).unwrap_or(0) % TASKS].clone();
            async move { upload(&api, &actor, &task, body).await.map(drop) }
        })
        .await
    };
    if through.ok + through.errors >= (TASKS * PER_TASK) as u64 {
        report.note(format!(
            "attachments: the 1 KB upload phase ran out of its {TASKS} tasks before its time: \
             raise TASKS in attachments_phase.rs"
        ));
    }
    let straight = {
        let (direct, body) = (Arc::clone(&direct), small.clone());
        load::closed_loop(clients, phase, u64::MAX, move |client, n| {
            let (direct, body) = (Arc::clone(&direct), body.clone());
            async move {
                let path = Path::from(format!("bench-direct/small/{client}-{n}"));
                direct.put(&path, PutPayload::from(body)).await?;
                Ok(())
            }
        })
        .await
    };
    compare(
        report,
        "1 KB attachment upload",
        "req/s",
        &through,
        &straight,
        1.0,
    );

    say("attachments: 1 KB downloads, through the API's redirect and straight from storage");
    let attachment = upload(api, actor, &task, small.clone()).await?;
    let through = {
        let (api, actor, path) = (
            api.clone(),
            actor.clone(),
            download_path(&task, &attachment),
        );
        load::closed_loop(clients, phase, u64::MAX, move |_, _| {
            let (api, actor, path) = (api.clone(), actor.clone(), path.clone());
            async move { download(&api, &actor, &path).await.map(drop) }
        })
        .await
    };
    direct
        .put(
            &Path::from("bench-direct/small/read"),
            PutPayload::from(small.clone()),
        )
        .await?;
    let straight = {
        let direct = Arc::clone(&direct);
        load::closed_loop(clients, phase, u64::MAX, move |_, _| {
            let direct = Arc::clone(&direct);
            async move {
                direct
                    .get(&Path::from("bench-direct/small/read"))
                    .await?
                    .bytes()
                    .await?;
                Ok(())
            }
        })
        .await
    };
    compare(
        report,
        "1 KB attachment download",
        "req/s",
        &through,
        &straight,
        1.0,
    );

    say("attachments: 20 MB uploads and downloads, one at a time");
    let mb = |throughput: &Throughput| throughput.per_second * (LARGE as f64) / 1_048_576.0;
    let through_up = {
        let (api, actor, task, body) = (api.clone(), actor.clone(), task.clone(), large.clone());
        load::closed_loop(1, Duration::from_secs(3600), large_rounds, move |_, _| {
            let (api, actor, task, body) = (api.clone(), actor.clone(), task.clone(), body.clone());
            async move { upload(&api, &actor, &task, body).await.map(drop) }
        })
        .await
    };
    let straight_up = {
        let (direct, body) = (Arc::clone(&direct), large.clone());
        load::closed_loop(1, Duration::from_secs(3600), large_rounds, move |_, n| {
            let (direct, body) = (Arc::clone(&direct), body.clone());
            async move {
                let path = Path::from(format!("bench-direct/large/{n}"));
                direct.put(&path, PutPayload::from(body)).await?;
                Ok(())
            }
        })
        .await
    };
    compare_values(
        report,
        "20 MB attachment upload",
        mb(&through_up),
        mb(&straight_up),
        &through_up,
        &straight_up,
    );
    let attachment = upload(api, actor, &task, large.clone()).await?;
    let through_down = {
        let (api, actor, path) = (
            api.clone(),
            actor.clone(),
            download_path(&task, &attachment),
        );
        load::closed_loop(1, Duration::from_secs(3600), large_rounds, move |_, _| {
            let (api, actor, path) = (api.clone(), actor.clone(), path.clone());
            async move {
                let bytes = download(&api, &actor, &path).await?;
                anyhow::ensure!(bytes == LARGE, "downloaded {bytes} bytes");
                Ok(())
            }
        })
        .await
    };
    let straight_down = {
        let direct = Arc::clone(&direct);
        load::closed_loop(1, Duration::from_secs(3600), large_rounds, move |_, _| {
            let direct = Arc::clone(&direct);
            async move {
                direct
                    .get(&Path::from("bench-direct/large/0"))
                    .await?
                    .bytes()
                    .await?;
                Ok(())
            }
        })
        .await
    };
    compare_values(
        report,
        "20 MB attachment download",
        mb(&through_down),
        mb(&straight_down),
        &through_down,
        &straight_down,
    );
    Ok(())
}

/// The `TASKTRAIL_STORAGE__*` section alone.
#[derive(serde::Deserialize)]
struct Storage {
    #[serde(default)]
    storage: attachment_store::StorageSettings,
}

/// `bytes` of text (an accepted type).
fn text(bytes: usize) -> Vec<u8> {
    b"tasktrail attachment benchmark\n"
        .iter()
        .copied()
        .cycle()
        .take(bytes)
        .collect()
}

/// The download path of an attachment, read as a client that just uploaded it reads it
/// (`min_version`: the query API waits for the projector).
fn download_path(task: &str, attachment: &Uploaded) -> String {
    format!(
        "/tasks/{task}/attachments/{}?min_version={}",
        attachment.id, attachment.version
    )
}

/// `POST /tasks/{task}/attachments`: the attachment's id.
async fn upload(api: &Api, actor: &Actor, task: &str, body: Bytes) -> anyhow::Result<Uploaded> {
    let response = api
        .http
        .post(format!(
            "{}/tasks/{task}/attachments?file_name=bench.txt",
            api.command
        ))
        .bearer_auth(&actor.token)
        .body(body)
        .send()
        .await?;
    anyhow::ensure!(response.status() == 201, "upload: {}", response.status());
    let reply: serde_json::Value = response.json().await?;
    Ok(Uploaded {
        id: reply["attachment_id"]
            .as_str()
            .map(str::to_owned)
            .context("no attachment id")?,
        version: reply["version"].as_u64().context("no version")?,
    })
}

/// An uploaded attachment: its id, and its task's version after it.
struct Uploaded {
    id: String,
    version: u64,
}

/// `GET` of the download path, then the storage URL it redirects to: the bytes received.
async fn download(api: &Api, actor: &Actor, path: &str) -> anyhow::Result<usize> {
    let redirect = api
        .no_redirects
        .get(format!("{}{path}", api.query))
        .bearer_auth(&actor.token)
        .send()
        .await?;
    anyhow::ensure!(redirect.status() == 307, "download: {}", redirect.status());
    let location = redirect
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .context("no Location")?
        .to_owned();
    let file = api.http.get(location).send().await?;
    anyhow::ensure!(file.status() == 200, "storage: {}", file.status());
    Ok(file.bytes().await?.len())
}

fn compare(
    report: &mut Report,
    name: &str,
    unit: &str,
    through: &Throughput,
    straight: &Throughput,
    scale: f64,
) {
    let baseline = format!("object_store straight to the S3 server: {name}");
    report.baseline(&baseline, straight.per_second * scale, unit);
    report.product(
        &format!("{name} through the API"),
        through.per_second * scale,
        unit,
        Some((&baseline, straight.per_second * scale)),
    );
    report.errors(&format!("{name} through the API"), through.errors);
    report.errors(&baseline, straight.errors);
}

fn compare_values(
    report: &mut Report,
    name: &str,
    through_mb: f64,
    straight_mb: f64,
    through: &Throughput,
    straight: &Throughput,
) {
    let baseline = format!("object_store straight to the S3 server: {name}");
    report.baseline(&baseline, straight_mb, "MiB/s");
    report.product(
        &format!("{name} through the API"),
        through_mb,
        "MiB/s",
        Some((&baseline, straight_mb)),
    );
    report.errors(&format!("{name} through the API"), through.errors);
    report.errors(&baseline, straight.errors);
}

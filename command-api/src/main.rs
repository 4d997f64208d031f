use tasktrail_command_api::settings::Settings;
use tasktrail_command_api::{demo, startup};

const USAGE: &str = "usage: command-api [migrate | create-admin USERNAME EMAIL | demo-data]
  (no argument)  serve the command API
  migrate        apply the database migrations and exit
  create-admin   register an administrator (the password is read from TASKTRAIL_ADMIN_PASSWORD)
  demo-data      on an empty event store, add demo users, projects and tasks (TASKTRAIL_DEMO_DATA=false: skip)";

/// mimalloc rather than glibc's allocator: under the benchmark's load (32 clients creating
/// tasks), glibc's `malloc` and `free` took 17% of the command API's CPU in a `perf` profile,
/// mimalloc's take 10%. The query API and the projector use it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    service_runtime::telemetry::init(&settings.log);
    match std::env::args().nth(1).as_deref() {
        None => service_runtime::http::run(startup::build(settings), "command API").await,
        Some("migrate") => {
            let pool = event_store::connect_lazy(&settings.database)?;
            event_store::migrate(&pool).await
        }
        Some("create-admin") => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            let [username, email] = args.as_slice() else {
                anyhow::bail!("create-admin takes a username and an e-mail address\n{USAGE}");
            };
            let password = std::env::var("TASKTRAIL_ADMIN_PASSWORD").map_err(|_| {
                anyhow::anyhow!("set TASKTRAIL_ADMIN_PASSWORD to the new administrator's password")
            })?;
            let id = demo::create_admin(&settings, username, email, &password).await?;
            tracing::info!(%id, username, "administrator registered");
            Ok(())
        }
        Some("demo-data") => {
            if std::env::var("TASKTRAIL_DEMO_DATA")
                .is_ok_and(|v| matches!(v.as_str(), "false" | "0"))
            {
                tracing::info!("TASKTRAIL_DEMO_DATA is off: no demo data");
                return Ok(());
            }
            match demo::seed(&settings).await? {
                demo::Seeded::Added { events } => {
                    let url = format!("http://127.0.0.1:{}", settings.http.port);
                    tracing::info!(events, "{}", demo::sign_in_help(&url));
                }
                demo::Seeded::StoreNotEmpty => {
                    tracing::info!("the event store is not empty: no demo data added");
                }
            }
            Ok(())
        }
        Some("-h" | "--help") => {
            tracing::info!("{USAGE}");
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown argument {other:?}\n{USAGE}"),
    }
}

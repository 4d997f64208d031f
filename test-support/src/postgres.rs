//! One fresh PostgreSQL database per test, cloned from a migrated template.

use std::str::FromStr as _;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions as _, Connection as _, Executor as _, PgConnection, PgPool};

use service_runtime::settings::{DatabaseSettings, Secret};

use crate::{server_down, servers, unique_name};

/// A database of its own for one test, with every migration applied. Dropped (with `FORCE`)
/// when the value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    pub pool: PgPool,
    pub name: String,
    /// A URL for this database, to hand to a service's settings.
    pub url: String,
}

impl TestDatabase {
    /// Settings of a service that uses this database.
    #[must_use]
    pub fn settings(&self) -> DatabaseSettings {
        DatabaseSettings {
            url: Secret::new(self.url.clone()),
            ..DatabaseSettings::default()
        }
    }
    /// Creates the database from the template of the current migrations (made once per
    /// migration set, under an advisory lock, so parallel test processes agree).
    pub async fn new() -> Self {
        let base = base_options();
        let mut admin = admin_connection(&base).await;
        let template = ensure_template(&mut admin, &base).await;
        let name = unique_name("tasktrail_test");
        admin
            .execute(format!(r#"CREATE DATABASE "{name}" TEMPLATE "{template}""#).as_str())
            .await
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        let options = base.clone().database(&name);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone())
            .await
            .unwrap_or_else(|e| panic!("connecting to test database {name}: {e}"));
        let url = options.to_url_lossy().to_string();
        Self { pool, name, url }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let base = base_options();
        // Drop runs outside async code; do the clean-up on a thread with its own runtime.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async move {
                    if let Ok(mut admin) = base.database("postgres").connect().await {
                        let _ignored = admin
                            .execute(
                                format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#)
                                    .as_str(),
                            )
                            .await;
                    }
                });
            }
        });
        let _ignored = cleanup.join();
    }
}

fn base_options() -> PgConnectOptions {
    let url = servers().database.url.expose();
    PgConnectOptions::from_str(url)
        .unwrap_or_else(|e| panic!("invalid TASKTRAIL_DATABASE__URL: {e}"))
}

async fn admin_connection(base: &PgConnectOptions) -> PgConnection {
    let options = base.clone().database("postgres");
    match PgConnection::connect_with(&options).await {
        Ok(connection) => connection,
        Err(error) => server_down(
            "PostgreSQL",
            &format!("{}:{}", options.get_host(), options.get_port()),
            error,
        ),
    }
}

/// The template's name carries a digest of the migrations, so a changed migration gets a new one.
async fn ensure_template(admin: &mut PgConnection, base: &PgConnectOptions) -> String {
    let digest = event_store::MIGRATOR
        .iter()
        .flat_map(|m| m.checksum.iter().copied())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, byte| {
            (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    let template = format!("tasktrail_template_{digest:016x}");
    sqlx::query("SELECT pg_advisory_lock(727274)")
        .execute(&mut *admin)
        .await
        .unwrap_or_else(|e| panic!("advisory lock: {e}"));
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut *admin)
            .await
            .unwrap_or_else(|e| panic!("looking up {template}: {e}"));
    if !exists {
        let building = format!("{template}_building");
        admin
            .execute(format!(r#"DROP DATABASE IF EXISTS "{building}" WITH (FORCE)"#).as_str())
            .await
            .unwrap_or_else(|e| panic!("dropping {building}: {e}"));
        admin
            .execute(format!(r#"CREATE DATABASE "{building}""#).as_str())
            .await
            .unwrap_or_else(|e| panic!("creating {building}: {e}"));
        let mut connection = PgConnection::connect_with(&base.clone().database(&building))
            .await
            .unwrap_or_else(|e| panic!("connecting to {building}: {e}"));
        event_store::MIGRATOR
            .run(&mut connection)
            .await
            .unwrap_or_else(|e| panic!("migrating {building}: {e}"));
        let _closed = connection.close().await;
        // Renaming last makes the template appear only once it is complete.
        admin
            .execute(format!(r#"ALTER DATABASE "{building}" RENAME TO "{template}""#).as_str())
            .await
            .unwrap_or_else(|e| panic!("renaming {building}: {e}"));
    }
    sqlx::query("SELECT pg_advisory_unlock(727274)")
        .execute(&mut *admin)
        .await
        .unwrap_or_else(|e| panic!("advisory unlock: {e}"));
    template
}

/// Four transaction ids across a power of ten (`p - 2, p - 1, p, p + 1`, e.g. 998..1001), all
/// below the oldest running transaction of the cluster, so events given them count as committed
/// long ago. The text of these ids does not sort as their numbers (`"1000" < "999"`): tests of
/// reads in commit order use them. A fresh cluster has used only a few thousand ids, so the
/// power of ten is the largest one below its current id.
///
/// # Panics
/// The cluster has used fewer than a dozen transaction ids, or PostgreSQL is unreachable.
pub async fn xids_across_a_digit_boundary(pool: &PgPool) -> [i64; 4] {
    let xmin: String = sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
        .fetch_one(pool)
        .await
        .expect("the snapshot's xmin");
    let xmin: i64 = xmin.parse().expect("xmin is a number");
    let mut power = 10_i64;
    while power * 10 + 1 < xmin {
        power *= 10;
    }
    assert!(
        power + 1 < xmin,
        "the cluster has used too few transaction ids ({xmin})"
    );
    [power - 2, power - 1, power, power + 1]
}

//! Fresh databases for tests, on both backends.
//!
//! SQLite gets a new file in the temp directory. PostgreSQL gets a new database on the server
//! named by `ATTEST_TEST_POSTGRES_URL` (a URL whose user may create databases); without it the
//! PostgreSQL half of a test is skipped with a message, except under `CI=true`, where a
//! missing PostgreSQL is a failure. [`store_test!`](crate::store_test) and
//! [`db_test!`](crate::db_test) run one test body on both.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use attest_config::DatabaseUrl;
use sea_orm::{ConnectionTrait, Database, Statement};

use crate::Store;

/// The environment variable naming the PostgreSQL server for tests.
pub const POSTGRES_URL_VAR: &str = "ATTEST_TEST_POSTGRES_URL";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    Sqlite,
    Postgres,
}

/// A fresh database of its own.
pub struct TestDb {
    pub store: Store,
    /// Its URL, for tests that run commands against it.
    pub url: DatabaseUrl,
}

fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("attest_test_{}_{}_{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst))
}

impl TestDb {
    /// A new database on `backend`, migrated or left empty; `None` when PostgreSQL is not
    /// configured outside CI.
    pub async fn create(backend: TestBackend, migrated: bool) -> Result<Option<TestDb>, String> {
        let url = match backend {
            TestBackend::Sqlite => {
                let path = std::env::temp_dir().join(format!("{}.db", unique_name()));
                DatabaseUrl::parse(&format!("sqlite://{}?mode=rwc", path.display())).map_err(str::to_owned)?
            }
            TestBackend::Postgres => match postgres_database().await? {
                Some(url) => url,
                None => return Ok(None),
            },
        };
        let store = Store::connect_url(&url, 5, Duration::from_secs(30)).await.map_err(|e| e.to_string())?;
        if migrated {
            store.migrate_up(None).await.map_err(|e| e.to_string())?;
        }
        Ok(Some(TestDb { store, url }))
    }

    /// A new SQLite file database, migrated.
    pub async fn sqlite() -> Result<TestDb, String> {
        TestDb::create(TestBackend::Sqlite, true).await?.ok_or_else(|| "SQLite is always available".to_owned())
    }

    /// A new PostgreSQL database, migrated; `None` when no server is configured outside CI.
    pub async fn postgres() -> Result<Option<TestDb>, String> {
        TestDb::create(TestBackend::Postgres, true).await
    }
}

/// Creates a new database on the test server and returns its URL.
async fn postgres_database() -> Result<Option<DatabaseUrl>, String> {
    let Some(admin) = std::env::var(POSTGRES_URL_VAR).ok().filter(|v| !v.is_empty()) else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            return Err(format!("{POSTGRES_URL_VAR} is not set: PostgreSQL tests cannot be skipped in CI"));
        }
        eprintln!("skipping the PostgreSQL half of this test: {POSTGRES_URL_VAR} is not set");
        return Ok(None);
    };
    let name = unique_name();
    let db = Database::connect(admin.clone()).await.map_err(|e| format!("cannot reach {POSTGRES_URL_VAR}: {e}"))?;
    db.execute_raw(Statement::from_string(db.get_database_backend(), format!("CREATE DATABASE {name}")))
        .await
        .map_err(|e| format!("cannot create test database: {e}"))?;
    let _ = db.close().await;
    let mut url = url::Url::parse(&admin).map_err(|e| format!("{POSTGRES_URL_VAR} is not a URL: {e}"))?;
    url.set_path(&name);
    DatabaseUrl::parse(url.as_str()).map(Some).map_err(str::to_owned)
}

/// Declares a test that runs once on SQLite and once on PostgreSQL, each on a fresh migrated
/// database: `store_test!(name, |store| { ... })` expands to `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! store_test {
    ($name:ident, |$store:ident| $body:block) => {
        $crate::db_test!($name, true, |db| {
            let $store = db.store.clone();
            $body
        });
    };
}

/// Like [`store_test!`](crate::store_test) but hands the test the whole
/// [`TestDb`](crate::testing::TestDb) (store and URL) and says whether the schema is applied:
/// `db_test!(name, migrated, |db| { ... })`.
#[macro_export]
macro_rules! db_test {
    ($name:ident, $migrated:expr, |$db:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let backend = $crate::testing::TestBackend::Sqlite;
                let $db = $crate::testing::TestDb::create(backend, $migrated).await.unwrap().unwrap();
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let backend = $crate::testing::TestBackend::Postgres;
                let Some($db) = $crate::testing::TestDb::create(backend, $migrated).await.unwrap() else {
                    return;
                };
                $body
            }
        }
    };
}

//! Attest's storage: the entitlement graph, sync runs, lifecycle events and the audit chain, on SQLite or
//! PostgreSQL through sea-orm. This is the only crate that writes SQL.
//!
//! Methods are grouped by area (`store.changes()`, `store.outbox()`, `store.directory()`…, see
//! [`areas`]); `Store` itself connects, migrates and reports the schema. Functions follow one
//! naming rule: `get_*` returns an item or `NotFound`, `find_*` an
//! `Option`, `list_*` a page or collection, `upsert_*` takes a batch. Nothing here reads the
//! clock: callers pass `now`.

pub mod areas;
mod audit;
mod changes;
mod commands;
mod connectors;
mod directory;
mod entitlements;
mod entity;
mod error;
mod grants;
mod id_set;
mod inherited;
mod job_leases;
mod lifecycle;
mod mail;
mod principals;
mod queue;
mod requests;
mod resources;
mod reviews;
mod schema;
mod scim;
mod setup;
mod sql;
mod sync_requests;
mod sync_runs;
mod sync_state;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod upsert;
mod web;

use std::time::Duration;

use attest_config::{DatabaseBackend, DatabaseConfig, DatabaseUrl};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend};

pub use areas::{
    Audit, Changes, Connectors, Directory, Grants, Leases, Lifecycle, Outbox, Principals, Resources, Reviews, Syncs,
    Web,
};
pub use audit::{AuditFilter, AuditPage, AuditVerification};
pub use changes::{AttemptOutcome, ChangeFilter, Enqueued};
pub use connectors::NewConnector;
pub use directory::{
    AccessView, ConnectorScope, HeldGrant, HolderView, Named, PersonFacets, PersonKeys, PersonRow, ResourceRef,
    ResourceSummary,
};
pub use error::StoreError;
pub use grants::{GrantRow, GrantUpsert, KeyFilter};
pub use id_set::IdSet;
pub use lifecycle::{LifecycleEventView, LifecycleFilter};
pub use mail::MailFilter;
pub use requests::{
    ACTIVATION_UNKNOWN_AFTER_MINUTES, CatalogEntry, Drift, DueRequest, HeldAccess, NewRequest, PolicyScope, Request,
    RequestApprover, RequestFilter, Voted,
};
pub use reviews::{
    AdvancedStage, Campaign, ClosedInstance, Decided, GrantScope, InboxCounts, Instance, InstanceMail, Item,
    ItemFilter, ItemOrder, NewItem, Progress, ScopedGrant, StageDecision,
};
pub use schema::{MigrationState, SchemaStatus};
pub use scim::{
    Account, MappedRole, RoleMapping, ScimAccount, ScimGroup, ScimGroupEdit, ScimMatch, ScimMember, ScimPage,
    ScimToken, ScimUser, ScimUserWrite, ScimWriteError,
};
/// A column's new value in a request's step (`Requests::step`).
pub use sea_orm::Value as SetValue;
pub use setup::ConsentAttempt;
pub use sync_requests::SyncRequest;
pub use sync_runs::{INTERRUPTED, SyncRunFinish};
pub use sync_state::SyncedTable;
pub use web::{LOCAL_TENANT, MAX_SIGN_INS_IN_PROGRESS, Profile, WebSession, WebUser};

/// Upserts report, per input row in order, the id of the stored row, and what was written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Upserted<Id> {
    /// The stored row's id for each input row, in input order.
    pub ids: Vec<Id>,
    pub counts: attest_domain::KindCounts,
}

/// A handle on the database. Cheap to clone (a connection pool).
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    statistics: std::sync::Arc<sql::Statistics>,
    /// Set on a handle from [`Store::recording`]: lifecycle events are appended, attributed to
    /// this run, with the changes written through it.
    recording: Option<attest_domain::SyncRunId>,
    /// Signs the audit events this handle appends, and checks signed ones (see
    /// `attest_domain::audit`). Without it events get a plain hash.
    audit_key: Option<attest_domain::audit::ChainKey>,
    /// Lets one of this process's hot-path writers (SCIM) at a time ask SQLite for its write
    /// lock: writers that find it taken are put to sleep by SQLite's busy handler in steps of up
    /// to 100 ms, which is what a request's p99 then measures; queueing here costs none of that.
    write_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Store {
    /// The same store, signing the audit events it appends with `key` and checking signed ones.
    pub fn with_audit_key(mut self, key: attest_domain::audit::ChainKey) -> Store {
        self.audit_key = Some(key);
        self
    }

    /// Connects with the configured pool settings. A SQLite file's directory is created if
    /// missing; SQLite runs in WAL mode with foreign keys on.
    pub async fn connect(config: &DatabaseConfig) -> Result<Store, StoreError> {
        Store::connect_url(&config.url, config.max_connections, config.connect_timeout).await
    }

    /// Connects to `url` with an explicit pool size and timeout.
    pub async fn connect_url(url: &DatabaseUrl, max_connections: u32, timeout: Duration) -> Result<Store, StoreError> {
        if let Some(path) = url.sqlite_path()
            && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Connect {
                url: url.redacted(),
                message: format!("cannot create directory {}: {e}", dir.display()),
            })?;
        }
        if let Some(path) = url.sqlite_path() {
            create_private(&path).map_err(|e| StoreError::Connect {
                url: url.redacted(),
                message: format!("cannot create {}: {e}", path.display()),
            })?;
        }
        let mut options = ConnectOptions::new(url.expose().to_owned());
        options
            .max_connections(max_connections)
            .min_connections(0)
            .connect_timeout(timeout)
            .acquire_timeout(timeout)
            // Statements are traced by our own spans; sqlx's per-statement logs would print values.
            .sqlx_logging(false);
        if url.backend() == DatabaseBackend::Sqlite {
            options.map_sqlx_sqlite_opts(|opts| {
                use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
                opts.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(30))
                    // 32 MiB of page cache per connection (SQLite's default is 2 MiB): index
                    // probes over millions of grants stay in memory instead of re-reading pages.
                    .pragma("cache_size", "-32768")
            });
        }
        let db = Database::connect(options)
            .await
            .map_err(|e| StoreError::Connect { url: url.redacted(), message: error::describe_connect_error(&e) })?;
        Ok(Store {
            db,
            statistics: Default::default(),
            recording: None,
            audit_key: None,
            write_gate: Default::default(),
        })
    }

    /// Starts a transaction that writes. On SQLite it takes the write lock at `BEGIN`
    /// (`IMMEDIATE`): a deferred transaction that reads first and writes later fails at once
    /// with "database is locked" when another writer committed in between, instead of waiting
    /// its turn. PostgreSQL ignores the mode.
    pub(crate) async fn begin_write(&self) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
        use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        self.db.begin_with_options(options).await
    }

    /// On SQLite, this process's turn to write (see `write_gate`); PostgreSQL needs none.
    pub(crate) async fn sqlite_write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend() {
            DbBackend::Sqlite => Some(self.write_gate.lock().await),
            _ => None,
        }
    }

    /// Which SQL dialect the database speaks.
    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(self) -> Result<(), StoreError> {
        self.db.close().await.map_err(StoreError::from)
    }
}

#[cfg(test)]
mod tests;

/// Creates a new SQLite database file readable and writable by its owner only (`0600`, like the
/// secrets key): it holds the whole directory and the audit log. SQLite gives its `-wal` and
/// `-shm` files the database file's permissions. An existing file is left as it is.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

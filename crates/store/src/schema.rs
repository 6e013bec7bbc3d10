//! Migrations: apply, roll back, report, and refuse a schema newer than this build.

use attest_migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
use serde::Serialize;

use crate::{Store, StoreError};

/// Where one migration stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationState {
    Applied,
    Pending,
    /// Applied to the database but unknown to this build (a newer Attest ran).
    Unknown,
}

/// Every migration this build knows plus any the database has that it does not.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaStatus {
    pub migrations: Vec<(String, MigrationState)>,
}

impl SchemaStatus {
    pub fn pending(&self) -> impl Iterator<Item = &str> {
        self.with_state(MigrationState::Pending)
    }
    pub fn unknown(&self) -> impl Iterator<Item = &str> {
        self.with_state(MigrationState::Unknown)
    }
    fn with_state(&self, state: MigrationState) -> impl Iterator<Item = &str> {
        self.migrations.iter().filter(move |(_, s)| *s == state).map(|(n, _)| n.as_str())
    }
}

fn known_migrations() -> Vec<String> {
    Migrator::migrations().iter().map(|m| m.name().to_owned()).collect()
}

impl Store {
    /// Reads which migrations are applied without changing anything.
    pub async fn schema_status(&self) -> Result<SchemaStatus, StoreError> {
        let applied = self.applied_migrations().await?;
        let known = known_migrations();
        let mut migrations: Vec<(String, MigrationState)> = known
            .iter()
            .map(|name| {
                let state = if applied.contains(name) { MigrationState::Applied } else { MigrationState::Pending };
                (name.clone(), state)
            })
            .collect();
        migrations.extend(
            applied.into_iter().filter(|name| !known.contains(name)).map(|name| (name, MigrationState::Unknown)),
        );
        Ok(SchemaStatus { migrations })
    }

    /// Applies pending migrations (all, or `steps`), returning the names applied. Refuses a
    /// database that has migrations this build does not know.
    pub async fn migrate_up(&self, steps: Option<u32>) -> Result<Vec<String>, StoreError> {
        let before = self.check_not_newer().await?;
        match self.sqlite_schema_transaction().await? {
            Some(txn) => {
                Migrator::up(&txn, steps).await?;
                txn.commit().await?;
            }
            None => Migrator::up(&self.db, steps).await?,
        }
        let after = self.schema_status().await?;
        Ok(after
            .migrations
            .into_iter()
            .filter(|(name, state)| *state == MigrationState::Applied && !before.contains(name))
            .map(|(name, _)| name)
            .collect())
    }

    /// Rolls back the last `steps` migrations (default 1), returning the names rolled back.
    pub async fn migrate_down(&self, steps: u32) -> Result<Vec<String>, StoreError> {
        let before = self.check_not_newer().await?;
        match self.sqlite_schema_transaction().await? {
            Some(txn) => {
                Migrator::down(&txn, Some(steps)).await?;
                txn.commit().await?;
            }
            None => Migrator::down(&self.db, Some(steps)).await?,
        }
        let after = self.applied_migrations().await?;
        Ok(before.into_iter().rev().filter(|name| !after.contains(name)).collect())
    }

    /// On SQLite, one transaction for migrating, its schema read first. A pooled connection
    /// caches the schema, and SQLite checks a new statement's "already exists" against that
    /// cache without re-reading it (it re-reads only after "no such table"): after another
    /// connection's DDL (a roll back, then forward) a migration could fail on an index that is
    /// gone. Reading `sqlite_master` inside the transaction brings the cache up to date, and the
    /// whole migration then runs on that connection. PostgreSQL needs none of this (and
    /// sea-orm-migration gives each of its migrations a transaction of its own).
    async fn sqlite_schema_transaction(&self) -> Result<Option<sea_orm::DatabaseTransaction>, StoreError> {
        if self.backend() != sea_orm::DbBackend::Sqlite {
            return Ok(None);
        }
        let txn = self.db.begin().await?;
        txn.execute_unprepared("SELECT count(*) FROM sqlite_master").await?;
        Ok(Some(txn))
    }

    /// Fails unless every known migration is applied and none is unknown: what the server and
    /// commands that use the graph check before they start.
    pub async fn ensure_schema_current(&self) -> Result<(), StoreError> {
        let status = self.schema_status().await?;
        self.refuse_unknown(&status)?;
        let pending: Vec<&str> = status.pending().collect();
        match pending.first() {
            None => Ok(()),
            Some(first) => Err(StoreError::SchemaBehind { pending: pending.len(), first: (*first).to_owned() }),
        }
    }

    async fn check_not_newer(&self) -> Result<Vec<String>, StoreError> {
        let status = self.schema_status().await?;
        self.refuse_unknown(&status)?;
        Ok(status
            .migrations
            .into_iter()
            .filter(|(_, state)| *state == MigrationState::Applied)
            .map(|(name, _)| name)
            .collect())
    }

    fn refuse_unknown(&self, status: &SchemaStatus) -> Result<(), StoreError> {
        match status.unknown().last() {
            None => Ok(()),
            Some(newest) => Err(StoreError::SchemaTooNew {
                database: newest.to_owned(),
                binary: known_migrations().last().cloned().unwrap_or_else(|| "(none)".into()),
            }),
        }
    }

    /// Names in `seaql_migrations`, oldest first; empty when the table does not exist yet.
    async fn applied_migrations(&self) -> Result<Vec<String>, StoreError> {
        let backend = self.backend();
        let exists_sql = match backend {
            sea_orm::DbBackend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'seaql_migrations'"
            }
            _ => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'seaql_migrations'",
        };
        let exists = self
            .db
            .query_one_raw(Statement::from_string(backend, exists_sql))
            .await?
            .map(|row| row.try_get_by_index::<i64>(0))
            .transpose()?
            .unwrap_or(0);
        if exists == 0 {
            return Ok(Vec::new());
        }
        let rows = self
            .db
            .query_all_raw(Statement::from_string(backend, "SELECT version FROM seaql_migrations ORDER BY version"))
            .await?;
        rows.iter().map(|row| row.try_get_by_index::<String>(0).map_err(StoreError::from)).collect()
    }
}

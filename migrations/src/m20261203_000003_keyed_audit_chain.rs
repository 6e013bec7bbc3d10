//! Room for keyed audit hashes: a signed event's hash is `hmac-sha256:` and 64 hex digits, past
//! the 64 characters the columns were made for. SQLite does not enforce lengths; PostgreSQL's
//! columns are widened.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

const COLUMNS: [(&str, &str); 3] = [("audit_events", "hash"), ("audit_events", "prev_hash"), ("audit_head", "hash")];

async fn set_length(manager: &SchemaManager<'_>, length: u32) -> Result<(), DbErr> {
    let db = manager.get_connection();
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    for (table, column) in COLUMNS {
        let sql = format!("ALTER TABLE {table} ALTER COLUMN {column} TYPE varchar({length})");
        db.execute_raw(Statement::from_string(DbBackend::Postgres, sql)).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_length(manager, 128).await
    }

    /// Fails on PostgreSQL once keyed events exist (they do not fit): the chain cannot go back.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_length(manager, 64).await
    }
}

//! PostgreSQL: `review_items.instance_id` and `review_assignments.item_id` lose their foreign
//! keys. Starting a campaign writes a million items and their assignments in one transaction,
//! and PostgreSQL checks each inserted row's key with a trigger that looks up and locks the
//! parent row: 5.7 of the 28.9 s the benchmark's start spent writing. Both keys hold by
//! construction: the items carry the id of the instance inserted just before them, and the
//! assignments the ids those items' insert returned, in the same transaction; reassignment
//! checks the item is one of the instance's; and nothing deletes instances or items, so the
//! cascades never ran. The other tables keep theirs.
//!
//! SQLite keeps them: it checks a key by probing the parent's primary key, which costs little,
//! and dropping a constraint there means rebuilding the table.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const KEYS: [(&str, &str, &str, &str); 2] = [
    ("review_assignments", "review_assignments_item_id_fkey", "item_id", "review_items"),
    ("review_items", "review_items_instance_id_fkey", "instance_id", "campaign_instances"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        for (table, key, _, _) in KEYS {
            manager
                .get_connection()
                .execute_unprepared(&format!("ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {key}"))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        for (table, key, column, parent) in KEYS {
            manager
                .get_connection()
                .execute_unprepared(&format!(
                    "ALTER TABLE {table} ADD CONSTRAINT {key} FOREIGN KEY ({column}) REFERENCES {parent} (id) ON DELETE CASCADE"
                ))
                .await?;
        }
        Ok(())
    }
}

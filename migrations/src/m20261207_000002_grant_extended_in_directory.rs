//! `grants.extended_in_directory_at`: when a sync found a just-in-time grant made permanent, or
//! given a later end, in the directory itself (a PIM schedule read with no end, or one past the
//! end Attest set). Cleared when the directory's end is back within. Drives the
//! "made permanent in Entra" kind of out-of-band change.
//!
//! `grants.directory_end_confirmed_at`: when a sync first found the directory keeping Attest's
//! end. Only a grant whose end the directory once kept can be found extended: one Attest gave
//! without an end there (a tenant without PIM) is Attest's to end, whatever a schedule says.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Grants {
    Table,
    ExtendedInDirectoryAt,
    DirectoryEndConfirmedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a table one column at a time.
        for column in [Grants::ExtendedInDirectoryAt, Grants::DirectoryEndConfirmedAt] {
            let column = ColumnDef::new(column).timestamp_with_time_zone().null().to_owned();
            manager.alter_table(Table::alter().table(Grants::Table).add_column(column).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Grants::DirectoryEndConfirmedAt, Grants::ExtendedInDirectoryAt] {
            manager.alter_table(Table::alter().table(Grants::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}

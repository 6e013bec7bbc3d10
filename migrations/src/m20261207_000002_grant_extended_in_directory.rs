//! `grants.extended_in_directory_at`: when a sync found a just-in-time grant made permanent, or
//! given a later end, in the directory itself (a PIM schedule read with no end, or one past the
//! end Attest set). Cleared when the directory's end is back within Attest's. Drives the
//! "made permanent in Entra" kind of out-of-band change.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Grants {
    Table,
    ExtendedInDirectoryAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let column = ColumnDef::new(Grants::ExtendedInDirectoryAt).timestamp_with_time_zone().null().to_owned();
        manager.alter_table(Table::alter().table(Grants::Table).add_column(column).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Grants::Table).drop_column(Grants::ExtendedInDirectoryAt).to_owned())
            .await
    }
}

//! Sync requests: "Sync now" asks for a connector's sync in the database, so whichever replica
//! runs the scheduler next picks it up, and a restart does not forget it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SyncRequests {
    Table,
    ConnectorId,
    Mode,
    RequestedBy,
    RequestedAt,
}

#[derive(DeriveIden)]
enum Connectors {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SyncRequests::Table)
                    .col(big_integer(SyncRequests::ConnectorId).primary_key())
                    .col(string(SyncRequests::Mode))
                    .col(string(SyncRequests::RequestedBy))
                    .col(timestamp_with_time_zone(SyncRequests::RequestedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(SyncRequests::Table, SyncRequests::ConnectorId)
                            .to(Connectors::Table, Connectors::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(SyncRequests::Table).to_owned()).await
    }
}

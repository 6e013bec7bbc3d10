//! Rotating a connector's certificate without downtime: Attest generates the new key pair and
//! keeps it in `connectors.pending_credentials` (sealed like `credentials`) while an owner
//! uploads the new certificate to the app registration; the connector switches to it only once
//! a token has been obtained with it, so the old certificate keeps working until then.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Connectors {
    Table,
    PendingCredentials,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let column = ColumnDef::new(Connectors::PendingCredentials).binary().null().to_owned();
        manager.alter_table(Table::alter().table(Connectors::Table).add_column(column).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Connectors::Table).drop_column(Connectors::PendingCredentials).to_owned())
            .await
    }
}

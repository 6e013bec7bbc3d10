//! `access_requests.activation_due_at`: for an approved request its requester activates in
//! Entra themselves (PIM self-activation), when it fails if they have not. Set when the access
//! job first finds it waiting, so the job looks at it again only then, however many wait.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AccessRequests {
    Table,
    ActivationDueAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let column = ColumnDef::new(AccessRequests::ActivationDueAt).timestamp_with_time_zone().null().to_owned();
        manager.alter_table(Table::alter().table(AccessRequests::Table).add_column(column).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(AccessRequests::Table).drop_column(AccessRequests::ActivationDueAt).to_owned(),
            )
            .await
    }
}

//! The change queue (outbox): every operation on the directory, with its idempotency key,
//! origin, state, attempts, lease and result.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Changes {
    Table,
    Id,
    ConnectorId,
    Kind,
    Action,
    IdempotencyKey,
    Origin,
    OriginRef,
    RequestedBy,
    State,
    Result,
    Attempts,
    NextAttemptAt,
    LastError,
    GraphRequestId,
    Verified,
    ApprovedBy,
    LeaseOwner,
    LeaseExpiresAt,
    CreatedAt,
    UpdatedAt,
    FinishedAt,
}

// Declared here so this migration never changes with later entities.
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
                    .table(Changes::Table)
                    .col(big_pk_auto(Changes::Id))
                    .col(big_integer(Changes::ConnectorId))
                    .col(string(Changes::Kind))
                    .col(text(Changes::Action))
                    .col(string_uniq(Changes::IdempotencyKey))
                    .col(string(Changes::Origin))
                    .col(string_null(Changes::OriginRef))
                    .col(string(Changes::RequestedBy))
                    .col(string(Changes::State))
                    .col(string_null(Changes::Result))
                    .col(integer(Changes::Attempts).default(0))
                    .col(timestamp_with_time_zone(Changes::NextAttemptAt))
                    .col(text_null(Changes::LastError))
                    .col(string_null(Changes::GraphRequestId))
                    .col(boolean_null(Changes::Verified))
                    .col(string_null(Changes::ApprovedBy))
                    .col(string_null(Changes::LeaseOwner))
                    .col(timestamp_with_time_zone_null(Changes::LeaseExpiresAt))
                    .col(timestamp_with_time_zone(Changes::CreatedAt))
                    .col(timestamp_with_time_zone(Changes::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Changes::FinishedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Changes::Table, Changes::ConnectorId)
                            .to(Connectors::Table, Connectors::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Workers look for due work by state and time; people list by state, newest first.
        manager
            .create_index(
                Index::create()
                    .name("ix_changes_due")
                    .table(Changes::Table)
                    .col(Changes::State)
                    .col(Changes::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("ix_changes_connector").table(Changes::Table).col(Changes::ConnectorId).to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Changes::Table).to_owned()).await
    }
}

//! Connecting a tenant from the web: integration owners invited by mail to finish admin
//! consent, the consent round trip, and where a connector stands and why.
//!
//! - `connectors` gains `status_reason` (what went wrong, in words an owner acts on),
//!   `status_changed_at`, `connected_at` / `connected_by` (the first time the permissions were
//!   verified, and by whose consent), `attention_mailed_at` (the owners were told of this
//!   episode of trouble; cleared when it is connected again, so each episode mails once) and
//!   `connected_notified_at` (whoever invited the owners was told it is done), and the last
//!   readiness check (`last_check`, its JSON report, and `last_checked_at`) the connector page
//!   shows as a checklist without asking Microsoft on every view.
//! - `connector_owners.tenant_id`: the tenant an owner signs in to Attest from, when it is not
//!   the connector's own (an owner of a subsidiary's tenant signs in from the parent's).
//! - `connector_invitations`: one per owner asked to finish setup. Only the hash of the link's
//!   token is kept; `used_at` makes it single-use, `expires_at` ends it, and the mail columns
//!   mark what was sent, so a restart sends nothing twice.
//! - `consent_attempts`: an owner on their way to the admin-consent page, under the hash of the
//!   `state` sent there, bound to their Attest account; taken once by the callback.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Connectors {
    Table,
    StatusReason,
    StatusChangedAt,
    ConnectedAt,
    ConnectedBy,
    AttentionMailedAt,
    ConnectedNotifiedAt,
    LastCheck,
    LastCheckedAt,
}

#[derive(DeriveIden)]
enum ConnectorOwners {
    Table,
    TenantId,
}

#[derive(DeriveIden)]
enum ConnectorInvitations {
    Table,
    Id,
    ConnectorId,
    Email,
    TokenHash,
    InvitedBy,
    InvitedByEmail,
    CreatedAt,
    ExpiresAt,
    MailedAt,
    RemindedAt,
    UsedAt,
    UsedBy,
}

#[derive(DeriveIden)]
enum ConsentAttempts {
    Table,
    StateHash,
    ConnectorId,
    InvitationId,
    UserId,
    CreatedAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            ColumnDef::new(Connectors::StatusReason).text().null().to_owned(),
            ColumnDef::new(Connectors::StatusChangedAt).timestamp_with_time_zone().null().to_owned(),
            ColumnDef::new(Connectors::ConnectedAt).timestamp_with_time_zone().null().to_owned(),
            ColumnDef::new(Connectors::ConnectedBy).string().null().to_owned(),
            ColumnDef::new(Connectors::AttentionMailedAt).timestamp_with_time_zone().null().to_owned(),
            ColumnDef::new(Connectors::ConnectedNotifiedAt).timestamp_with_time_zone().null().to_owned(),
            ColumnDef::new(Connectors::LastCheck).text().null().to_owned(),
            ColumnDef::new(Connectors::LastCheckedAt).timestamp_with_time_zone().null().to_owned(),
        ] {
            manager.alter_table(Table::alter().table(Connectors::Table).add_column(column).to_owned()).await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(ConnectorOwners::Table)
                    .add_column(ColumnDef::new(ConnectorOwners::TenantId).string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ConnectorInvitations::Table)
                    .col(big_pk_auto(ConnectorInvitations::Id))
                    .col(big_integer(ConnectorInvitations::ConnectorId))
                    .col(string(ConnectorInvitations::Email))
                    .col(string(ConnectorInvitations::TokenHash).unique_key())
                    .col(string(ConnectorInvitations::InvitedBy))
                    .col(string_null(ConnectorInvitations::InvitedByEmail))
                    .col(timestamp_with_time_zone(ConnectorInvitations::CreatedAt))
                    .col(timestamp_with_time_zone(ConnectorInvitations::ExpiresAt))
                    .col(timestamp_with_time_zone_null(ConnectorInvitations::MailedAt))
                    .col(timestamp_with_time_zone_null(ConnectorInvitations::RemindedAt))
                    .col(timestamp_with_time_zone_null(ConnectorInvitations::UsedAt))
                    .col(string_null(ConnectorInvitations::UsedBy))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_connector_invitations_connector")
                    .table(ConnectorInvitations::Table)
                    .col(ConnectorInvitations::ConnectorId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ConsentAttempts::Table)
                    .col(string(ConsentAttempts::StateHash).primary_key())
                    .col(big_integer(ConsentAttempts::ConnectorId))
                    .col(big_integer_null(ConsentAttempts::InvitationId))
                    .col(big_integer(ConsentAttempts::UserId))
                    .col(timestamp_with_time_zone(ConsentAttempts::CreatedAt))
                    .col(timestamp_with_time_zone(ConsentAttempts::ExpiresAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [ConsentAttempts::Table.into_iden(), ConnectorInvitations::Table.into_iden()] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        manager
            .alter_table(Table::alter().table(ConnectorOwners::Table).drop_column(ConnectorOwners::TenantId).to_owned())
            .await?;
        for column in [
            Connectors::StatusReason,
            Connectors::StatusChangedAt,
            Connectors::ConnectedAt,
            Connectors::ConnectedBy,
            Connectors::AttentionMailedAt,
            Connectors::ConnectedNotifiedAt,
            Connectors::LastCheck,
            Connectors::LastCheckedAt,
        ] {
            manager.alter_table(Table::alter().table(Connectors::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}

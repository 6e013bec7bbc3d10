//! Attest's own accounts provisioned by Entra over SCIM 2.0.
//!
//! - `scim_tokens`: bearer tokens Entra's provisioning service presents ("Secret Token"), only
//!   their SHA-256 hash kept; several at once for rotation; each named, attributed (created by,
//!   last used) and revocable. `tenant_id` is the tenant whose people the token provisions.
//! - `scim_users`: users as Entra pushed them. `id` is the SCIM id Attest assigns (a UUID);
//!   `user_name_key` (lower-cased `userName`) is unique, as SCIM requires; `resource` keeps the
//!   attributes exactly as sent (JSON). `web_user_id` is the Attest account the user is.
//! - `scim_groups` and `scim_group_members`: groups as pushed, and their members (a table, not
//!   a JSON array: a group of 100,000 members changes a row per member, not a blob).
//! - `role_mappings`: a pushed group or a synced Entra group whose members hold an Attest role.
//! - `web_users.disabled_at`: the account may not sign in (deactivated by SCIM, or its directory
//!   user disabled); `web_users.source`: how it came (`sign_in`, `scim`, `import`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ScimTokens {
    Table,
    Id,
    Name,
    TokenHash,
    TenantId,
    CreatedBy,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum ScimUsers {
    Table,
    Id,
    UserName,
    UserNameKey,
    ExternalId,
    DisplayName,
    WorkEmail,
    Active,
    Resource,
    WebUserId,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ScimGroups {
    Table,
    Id,
    DisplayName,
    DisplayNameKey,
    ExternalId,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ScimGroupMembers {
    Table,
    GroupId,
    UserId,
}

#[derive(DeriveIden)]
enum RoleMappings {
    Table,
    Id,
    GroupKind,
    GroupId,
    GroupName,
    Role,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebUsers {
    Table,
    DisabledAt,
    Source,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ScimTokens::Table)
                    .col(big_pk_auto(ScimTokens::Id))
                    .col(string(ScimTokens::Name))
                    .col(string(ScimTokens::TokenHash).unique_key())
                    .col(string_null(ScimTokens::TenantId))
                    .col(string(ScimTokens::CreatedBy))
                    .col(timestamp_with_time_zone(ScimTokens::CreatedAt))
                    .col(timestamp_with_time_zone_null(ScimTokens::LastUsedAt))
                    .col(timestamp_with_time_zone_null(ScimTokens::RevokedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ScimUsers::Table)
                    .col(string(ScimUsers::Id).primary_key())
                    .col(string(ScimUsers::UserName))
                    .col(string(ScimUsers::UserNameKey).unique_key())
                    .col(string_null(ScimUsers::ExternalId))
                    .col(string_null(ScimUsers::DisplayName))
                    .col(string_null(ScimUsers::WorkEmail))
                    .col(boolean(ScimUsers::Active))
                    .col(text(ScimUsers::Resource))
                    .col(big_integer_null(ScimUsers::WebUserId))
                    .col(big_integer(ScimUsers::Version))
                    .col(timestamp_with_time_zone(ScimUsers::CreatedAt))
                    .col(timestamp_with_time_zone(ScimUsers::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("ix_scim_users_external_id", ScimUsers::ExternalId),
            ("ix_scim_users_web_user", ScimUsers::WebUserId),
            ("ix_scim_users_work_email", ScimUsers::WorkEmail),
        ] {
            manager.create_index(Index::create().name(name).table(ScimUsers::Table).col(column).to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(ScimGroups::Table)
                    .col(string(ScimGroups::Id).primary_key())
                    .col(string(ScimGroups::DisplayName))
                    .col(string(ScimGroups::DisplayNameKey))
                    .col(string_null(ScimGroups::ExternalId))
                    .col(big_integer(ScimGroups::Version))
                    .col(timestamp_with_time_zone(ScimGroups::CreatedAt))
                    .col(timestamp_with_time_zone(ScimGroups::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("ix_scim_groups_name", ScimGroups::DisplayNameKey),
            ("ix_scim_groups_external_id", ScimGroups::ExternalId),
        ] {
            manager.create_index(Index::create().name(name).table(ScimGroups::Table).col(column).to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(ScimGroupMembers::Table)
                    .col(string(ScimGroupMembers::GroupId))
                    .col(string(ScimGroupMembers::UserId))
                    .primary_key(Index::create().col(ScimGroupMembers::GroupId).col(ScimGroupMembers::UserId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_scim_group_members_user")
                    .table(ScimGroupMembers::Table)
                    .col(ScimGroupMembers::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RoleMappings::Table)
                    .col(big_pk_auto(RoleMappings::Id))
                    .col(string(RoleMappings::GroupKind))
                    .col(string(RoleMappings::GroupId))
                    .col(string(RoleMappings::GroupName))
                    .col(string(RoleMappings::Role))
                    .col(string(RoleMappings::CreatedBy))
                    .col(timestamp_with_time_zone(RoleMappings::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_role_mappings")
                    .table(RoleMappings::Table)
                    .col(RoleMappings::GroupKind)
                    .col(RoleMappings::GroupId)
                    .col(RoleMappings::Role)
                    .unique()
                    .to_owned(),
            )
            .await?;
        for column in [
            ColumnDef::new(WebUsers::DisabledAt).timestamp_with_time_zone().null().to_owned(),
            ColumnDef::new(WebUsers::Source).string().not_null().default("sign_in").to_owned(),
        ] {
            manager.alter_table(Table::alter().table(WebUsers::Table).add_column(column).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [WebUsers::DisabledAt, WebUsers::Source] {
            manager.alter_table(Table::alter().table(WebUsers::Table).drop_column(column).to_owned()).await?;
        }
        for table in [
            RoleMappings::Table.into_iden(),
            ScimGroupMembers::Table.into_iden(),
            ScimGroups::Table.into_iden(),
            ScimUsers::Table.into_iden(),
            ScimTokens::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

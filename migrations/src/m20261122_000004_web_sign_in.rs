//! Web sign-in: users (keyed by tenant and object id), server-side sessions, sign-ins in
//! progress, and one-time break-glass login links. Tokens are stored only as SHA-256 hashes.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebUsers {
    Table,
    Id,
    TenantId,
    ObjectId,
    DisplayName,
    Email,
    Roles,
    CreatedAt,
    LastSignInAt,
}

#[derive(DeriveIden)]
enum WebSessions {
    Table,
    TokenHash,
    UserId,
    CsrfToken,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum SignInAttempts {
    Table,
    StateHash,
    Nonce,
    Verifier,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum LoginLinks {
    Table,
    TokenHash,
    CreatedBy,
    ExpiresAt,
    UsedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebUsers::Table)
                    .col(big_pk_auto(WebUsers::Id))
                    .col(string(WebUsers::TenantId))
                    .col(string(WebUsers::ObjectId))
                    .col(string(WebUsers::DisplayName))
                    .col(string_null(WebUsers::Email))
                    .col(text(WebUsers::Roles).default("[]"))
                    .col(timestamp_with_time_zone(WebUsers::CreatedAt))
                    .col(timestamp_with_time_zone_null(WebUsers::LastSignInAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_web_users_identity")
                    .table(WebUsers::Table)
                    .col(WebUsers::TenantId)
                    .col(WebUsers::ObjectId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebSessions::Table)
                    .col(string(WebSessions::TokenHash).primary_key())
                    .col(big_integer(WebSessions::UserId))
                    .col(string(WebSessions::CsrfToken))
                    .col(timestamp_with_time_zone(WebSessions::CreatedAt))
                    .col(timestamp_with_time_zone(WebSessions::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(WebSessions::Table, WebSessions::UserId)
                            .to(WebUsers::Table, WebUsers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SignInAttempts::Table)
                    .col(string(SignInAttempts::StateHash).primary_key())
                    .col(string(SignInAttempts::Nonce))
                    .col(string(SignInAttempts::Verifier))
                    .col(timestamp_with_time_zone(SignInAttempts::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(LoginLinks::Table)
                    .col(string(LoginLinks::TokenHash).primary_key())
                    .col(string(LoginLinks::CreatedBy))
                    .col(timestamp_with_time_zone(LoginLinks::ExpiresAt))
                    .col(timestamp_with_time_zone_null(LoginLinks::UsedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            LoginLinks::Table.into_iden(),
            SignInAttempts::Table.into_iden(),
            WebSessions::Table.into_iden(),
            WebUsers::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

//! The entitlement graph (connectors, principals, resources, entitlements, grants), sync runs
//! and the hash-chained audit log.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Connectors {
    Table,
    Id,
    Name,
    Kind,
    TenantId,
    Status,
    Settings,
    Credentials,
    LastFullSyncAt,
    LastDeltaSyncAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ConnectorOwners {
    Table,
    ConnectorId,
    Email,
}

#[derive(DeriveIden)]
enum SyncCursors {
    Table,
    ConnectorId,
    ObjectType,
    Cursor,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Principals {
    Table,
    Id,
    ConnectorId,
    ExternalId,
    Kind,
    DisplayName,
    UserPrincipalName,
    Email,
    JobTitle,
    Department,
    OfficeLocation,
    UsageLocation,
    EmployeeId,
    ManagerExternalId,
    AccountEnabled,
    UserType,
    CreatedInSourceAt,
    LastSignInAt,
    DeletedAt,
    Attributes,
    FirstSeenAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Resources {
    Table,
    Id,
    ConnectorId,
    ExternalId,
    Kind,
    DisplayName,
    Description,
    Attributes,
    DeletedAt,
    FirstSeenAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Entitlements {
    Table,
    Id,
    ConnectorId,
    ResourceId,
    Key,
    DisplayName,
    Description,
    Requestable,
    Sensitive,
    MaxDurationSecs,
    DeletedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Grants {
    Table,
    Id,
    ConnectorId,
    EntitlementId,
    PrincipalId,
    Source,
    ViaPrincipalId,
    Scope,
    ExternalRef,
    FirstSeenAt,
    LastSeenAt,
    EndedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum SyncRuns {
    Table,
    Id,
    ConnectorId,
    Mode,
    Trigger,
    Status,
    StartedAt,
    FinishedAt,
    Counts,
    Requests,
    ResourceUnits,
    Error,
    Notes,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Seq,
    OccurredAt,
    Actor,
    Action,
    TargetKind,
    TargetId,
    Details,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum AuditHead {
    Table,
    Id,
    Seq,
    Hash,
}

const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn fk(from: (impl IntoIden, impl IntoIden), to: (impl IntoIden, impl IntoIden)) -> ForeignKeyCreateStatement {
    ForeignKey::create().from(from.0, from.1).to(to.0, to.1).take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Connectors::Table)
                    .col(big_pk_auto(Connectors::Id))
                    .col(string_uniq(Connectors::Name))
                    .col(string(Connectors::Kind))
                    .col(string_null(Connectors::TenantId))
                    .col(string(Connectors::Status))
                    .col(text(Connectors::Settings).default("{}"))
                    .col(binary_null(Connectors::Credentials))
                    .col(timestamp_with_time_zone_null(Connectors::LastFullSyncAt))
                    .col(timestamp_with_time_zone_null(Connectors::LastDeltaSyncAt))
                    .col(timestamp_with_time_zone(Connectors::CreatedAt))
                    .col(timestamp_with_time_zone(Connectors::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ConnectorOwners::Table)
                    .col(big_integer(ConnectorOwners::ConnectorId))
                    .col(string(ConnectorOwners::Email))
                    .primary_key(Index::create().col(ConnectorOwners::ConnectorId).col(ConnectorOwners::Email))
                    .foreign_key(
                        &mut fk(
                            (ConnectorOwners::Table, ConnectorOwners::ConnectorId),
                            (Connectors::Table, Connectors::Id),
                        )
                        .on_delete(ForeignKeyAction::Cascade)
                        .take(),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SyncCursors::Table)
                    .col(big_integer(SyncCursors::ConnectorId))
                    .col(string(SyncCursors::ObjectType))
                    .col(text(SyncCursors::Cursor))
                    .col(timestamp_with_time_zone(SyncCursors::UpdatedAt))
                    .primary_key(Index::create().col(SyncCursors::ConnectorId).col(SyncCursors::ObjectType))
                    .foreign_key(
                        &mut fk((SyncCursors::Table, SyncCursors::ConnectorId), (Connectors::Table, Connectors::Id))
                            .on_delete(ForeignKeyAction::Cascade)
                            .take(),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Principals::Table)
                    .col(big_pk_auto(Principals::Id))
                    .col(big_integer(Principals::ConnectorId))
                    .col(string(Principals::ExternalId))
                    .col(string(Principals::Kind))
                    .col(text(Principals::DisplayName))
                    .col(string_null(Principals::UserPrincipalName))
                    .col(string_null(Principals::Email))
                    .col(string_null(Principals::JobTitle))
                    .col(string_null(Principals::Department))
                    .col(string_null(Principals::OfficeLocation))
                    .col(string_null(Principals::UsageLocation))
                    .col(string_null(Principals::EmployeeId))
                    .col(string_null(Principals::ManagerExternalId))
                    .col(boolean_null(Principals::AccountEnabled))
                    .col(string_null(Principals::UserType))
                    .col(timestamp_with_time_zone_null(Principals::CreatedInSourceAt))
                    .col(timestamp_with_time_zone_null(Principals::LastSignInAt))
                    .col(timestamp_with_time_zone_null(Principals::DeletedAt))
                    .col(text(Principals::Attributes).default("{}"))
                    .col(timestamp_with_time_zone(Principals::FirstSeenAt))
                    .col(timestamp_with_time_zone(Principals::UpdatedAt))
                    .foreign_key(&mut fk(
                        (Principals::Table, Principals::ConnectorId),
                        (Connectors::Table, Connectors::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_principals_external")
                    .table(Principals::Table)
                    .col(Principals::ConnectorId)
                    .col(Principals::ExternalId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("ix_principals_email").table(Principals::Table).col(Principals::Email).to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_principals_kind")
                    .table(Principals::Table)
                    .col(Principals::ConnectorId)
                    .col(Principals::Kind)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Resources::Table)
                    .col(big_pk_auto(Resources::Id))
                    .col(big_integer(Resources::ConnectorId))
                    .col(string(Resources::ExternalId))
                    .col(string(Resources::Kind))
                    .col(text(Resources::DisplayName))
                    .col(text_null(Resources::Description))
                    .col(text(Resources::Attributes).default("{}"))
                    .col(timestamp_with_time_zone_null(Resources::DeletedAt))
                    .col(timestamp_with_time_zone(Resources::FirstSeenAt))
                    .col(timestamp_with_time_zone(Resources::UpdatedAt))
                    .foreign_key(&mut fk(
                        (Resources::Table, Resources::ConnectorId),
                        (Connectors::Table, Connectors::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_resources_external")
                    .table(Resources::Table)
                    .col(Resources::ConnectorId)
                    .col(Resources::Kind)
                    .col(Resources::ExternalId)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Entitlements::Table)
                    .col(big_pk_auto(Entitlements::Id))
                    .col(big_integer(Entitlements::ConnectorId))
                    .col(big_integer(Entitlements::ResourceId))
                    .col(string(Entitlements::Key))
                    .col(text(Entitlements::DisplayName))
                    .col(text_null(Entitlements::Description))
                    .col(boolean(Entitlements::Requestable).default(false))
                    .col(boolean(Entitlements::Sensitive).default(false))
                    .col(big_integer_null(Entitlements::MaxDurationSecs))
                    .col(timestamp_with_time_zone_null(Entitlements::DeletedAt))
                    .col(timestamp_with_time_zone(Entitlements::CreatedAt))
                    .col(timestamp_with_time_zone(Entitlements::UpdatedAt))
                    .foreign_key(&mut fk(
                        (Entitlements::Table, Entitlements::ConnectorId),
                        (Connectors::Table, Connectors::Id),
                    ))
                    .foreign_key(&mut fk(
                        (Entitlements::Table, Entitlements::ResourceId),
                        (Resources::Table, Resources::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_entitlements_key")
                    .table(Entitlements::Table)
                    .col(Entitlements::ResourceId)
                    .col(Entitlements::Key)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Grants::Table)
                    .col(big_pk_auto(Grants::Id))
                    .col(big_integer(Grants::ConnectorId))
                    .col(big_integer(Grants::EntitlementId))
                    .col(big_integer(Grants::PrincipalId))
                    .col(string(Grants::Source))
                    .col(big_integer_null(Grants::ViaPrincipalId))
                    .col(string(Grants::Scope).default(""))
                    .col(string_null(Grants::ExternalRef))
                    .col(timestamp_with_time_zone(Grants::FirstSeenAt))
                    .col(timestamp_with_time_zone(Grants::LastSeenAt))
                    .col(timestamp_with_time_zone_null(Grants::EndedAt))
                    .col(timestamp_with_time_zone_null(Grants::ExpiresAt))
                    // An inherited grant always names the group it flows from; no other grant does.
                    .check(
                        Expr::col(Grants::Source)
                            .eq("inherited")
                            .and(Expr::col(Grants::ViaPrincipalId).is_not_null())
                            .or(Expr::col(Grants::Source)
                                .ne("inherited")
                                .and(Expr::col(Grants::ViaPrincipalId).is_null())),
                    )
                    .foreign_key(&mut fk((Grants::Table, Grants::ConnectorId), (Connectors::Table, Connectors::Id)))
                    .foreign_key(&mut fk(
                        (Grants::Table, Grants::EntitlementId),
                        (Entitlements::Table, Entitlements::Id),
                    ))
                    .foreign_key(&mut fk((Grants::Table, Grants::PrincipalId), (Principals::Table, Principals::Id)))
                    .foreign_key(&mut fk((Grants::Table, Grants::ViaPrincipalId), (Principals::Table, Principals::Id)))
                    .to_owned(),
            )
            .await?;
        // At most one current direct/JIT grant per principal, entitlement and scope...
        manager
            .create_index(
                Index::create()
                    .name("ux_grants_current_direct")
                    .table(Grants::Table)
                    .col(Grants::EntitlementId)
                    .col(Grants::PrincipalId)
                    .col(Grants::Scope)
                    .unique()
                    .and_where(Expr::col(Grants::EndedAt).is_null())
                    .and_where(Expr::col(Grants::Source).ne("inherited"))
                    .to_owned(),
            )
            .await?;
        // ...and one current inherited grant per principal, entitlement and group it flows from.
        manager
            .create_index(
                Index::create()
                    .name("ux_grants_current_inherited")
                    .table(Grants::Table)
                    .col(Grants::EntitlementId)
                    .col(Grants::PrincipalId)
                    .col(Grants::ViaPrincipalId)
                    .unique()
                    .and_where(Expr::col(Grants::EndedAt).is_null())
                    .and_where(Expr::col(Grants::Source).eq("inherited"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                // History by principal and by entitlement. Both are composite on purpose:
                // whichever index the planner picks for an (entitlement, principal) probe, the
                // probe finds one row.
                Index::create()
                    .name("ix_grants_principal")
                    .table(Grants::Table)
                    .col(Grants::PrincipalId)
                    .col(Grants::EntitlementId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_grants_entitlement")
                    .table(Grants::Table)
                    .col(Grants::EntitlementId)
                    .col(Grants::PrincipalId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_grants_expiry")
                    .table(Grants::Table)
                    .col(Grants::ExpiresAt)
                    .and_where(Expr::col(Grants::ExpiresAt).is_not_null())
                    .and_where(Expr::col(Grants::EndedAt).is_null())
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SyncRuns::Table)
                    .col(big_pk_auto(SyncRuns::Id))
                    .col(big_integer(SyncRuns::ConnectorId))
                    .col(string(SyncRuns::Mode))
                    .col(string(SyncRuns::Trigger))
                    .col(string(SyncRuns::Status))
                    .col(timestamp_with_time_zone(SyncRuns::StartedAt))
                    .col(timestamp_with_time_zone_null(SyncRuns::FinishedAt))
                    .col(text(SyncRuns::Counts).default("{}"))
                    .col(big_integer(SyncRuns::Requests).default(0))
                    .col(big_integer(SyncRuns::ResourceUnits).default(0))
                    .col(text_null(SyncRuns::Error))
                    .col(text(SyncRuns::Notes).default("[]"))
                    .foreign_key(
                        &mut fk((SyncRuns::Table, SyncRuns::ConnectorId), (Connectors::Table, Connectors::Id))
                            .on_delete(ForeignKeyAction::Cascade)
                            .take(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_sync_runs_connector")
                    .table(SyncRuns::Table)
                    .col(SyncRuns::ConnectorId)
                    .col(SyncRuns::StartedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(big_integer(AuditEvents::Seq).primary_key())
                    .col(timestamp_with_time_zone(AuditEvents::OccurredAt))
                    .col(string(AuditEvents::Actor))
                    .col(string(AuditEvents::Action))
                    .col(string_null(AuditEvents::TargetKind))
                    .col(string_null(AuditEvents::TargetId))
                    .col(text(AuditEvents::Details))
                    .col(string_len(AuditEvents::PrevHash, 64))
                    .col(string_len(AuditEvents::Hash, 64))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_events_occurred")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::OccurredAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_events_target")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::TargetKind)
                    .col(AuditEvents::TargetId)
                    .to_owned(),
            )
            .await?;

        // The chain head: one row, locked by every append so appends are serialised on every
        // backend, and kept apart from the events so cutting events off the end is detectable.
        manager
            .create_table(
                Table::create()
                    .table(AuditHead::Table)
                    .col(integer(AuditHead::Id).primary_key())
                    .col(big_integer(AuditHead::Seq))
                    .col(string_len(AuditHead::Hash, 64))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(AuditHead::Table)
                    .columns([AuditHead::Id, AuditHead::Seq, AuditHead::Hash])
                    .values([1.into(), 0i64.into(), GENESIS_HASH.into()])
                    .map_err(|e| DbErr::Migration(e.to_string()))?
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Reverse order of creation, so foreign keys never dangle.
        for table in [
            AuditHead::Table.into_iden(),
            AuditEvents::Table.into_iden(),
            SyncRuns::Table.into_iden(),
            Grants::Table.into_iden(),
            Entitlements::Table.into_iden(),
            Resources::Table.into_iden(),
            Principals::Table.into_iden(),
            SyncCursors::Table.into_iden(),
            ConnectorOwners::Table.into_iden(),
            Connectors::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

//! Lifecycle events: what syncs saw change in the directory (principals created, disabled,
//! enabled, deleted, restored; memberships and assignments added and removed).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LifecycleEvents {
    Table,
    Id,
    ConnectorId,
    SyncRunId,
    Kind,
    PrincipalId,
    EntitlementId,
    GrantId,
    DetectedAt,
}

// The referenced tables, declared here so this migration never changes with later entities.
#[derive(DeriveIden)]
enum Connectors {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum SyncRuns {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Principals {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Entitlements {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Grants {
    Table,
    Id,
}

fn fk(
    column: LifecycleEvents,
    to: (impl IntoIden, impl IntoIden),
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create().from(LifecycleEvents::Table, column).to(to.0, to.1).on_delete(on_delete).take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LifecycleEvents::Table)
                    .col(big_pk_auto(LifecycleEvents::Id))
                    .col(big_integer(LifecycleEvents::ConnectorId))
                    .col(big_integer_null(LifecycleEvents::SyncRunId))
                    .col(string(LifecycleEvents::Kind))
                    .col(big_integer(LifecycleEvents::PrincipalId))
                    .col(big_integer_null(LifecycleEvents::EntitlementId))
                    .col(big_integer_null(LifecycleEvents::GrantId))
                    .col(timestamp_with_time_zone(LifecycleEvents::DetectedAt))
                    .foreign_key(&mut fk(
                        LifecycleEvents::ConnectorId,
                        (Connectors::Table, Connectors::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        LifecycleEvents::SyncRunId,
                        (SyncRuns::Table, SyncRuns::Id),
                        ForeignKeyAction::SetNull,
                    ))
                    .foreign_key(&mut fk(
                        LifecycleEvents::PrincipalId,
                        (Principals::Table, Principals::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        LifecycleEvents::EntitlementId,
                        (Entitlements::Table, Entitlements::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        LifecycleEvents::GrantId,
                        (Grants::Table, Grants::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        // Consumers read a connector's events in order from a remembered id; a principal's
        // history is read by principal.
        for (name, columns) in [
            ("ix_lifecycle_events_connector", [LifecycleEvents::ConnectorId, LifecycleEvents::Id]),
            ("ix_lifecycle_events_principal", [LifecycleEvents::PrincipalId, LifecycleEvents::Id]),
        ] {
            let mut index = Index::create();
            index.name(name).table(LifecycleEvents::Table);
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(LifecycleEvents::Table).to_owned()).await
    }
}

//! The directory objects a change is about, as columns: the target (group, application, role or
//! user) and the principal gaining or losing access. A principal's page lists the changes that
//! involve them through these indexes instead of searching every change's JSON.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Changes {
    Table,
    TargetObject,
    PrincipalObject,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Changes::TargetObject, Changes::PrincipalObject] {
            manager
                .alter_table(
                    Table::alter().table(Changes::Table).add_column(ColumnDef::new(column).string().null()).to_owned(),
                )
                .await?;
        }
        // Existing changes: their action's JSON names the objects.
        let field = |name: &str| match manager.get_database_backend() {
            DbBackend::Postgres => format!("(action::json ->> '{name}')"),
            _ => format!("json_extract(action, '$.{name}')"),
        };
        let backfill = format!(
            "UPDATE changes SET target_object = COALESCE({}, {}, {}, {}), principal_object = COALESCE({}, {}, {})",
            field("group"),
            field("app"),
            field("role"),
            field("user"),
            field("member"),
            field("owner"),
            field("principal"),
        );
        let db = manager.get_connection();
        db.execute_raw(Statement::from_string(db.get_database_backend(), backfill)).await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_changes_target_object")
                    .table(Changes::Table)
                    .col(Changes::TargetObject)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_changes_principal_object")
                    .table(Changes::Table)
                    .col(Changes::PrincipalObject)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for index in ["ix_changes_target_object", "ix_changes_principal_object"] {
            manager.drop_index(Index::drop().name(index).table(Changes::Table).to_owned()).await?;
        }
        for column in [Changes::TargetObject, Changes::PrincipalObject] {
            manager.alter_table(Table::alter().table(Changes::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}

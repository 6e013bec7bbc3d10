//! Effective access: an inherited grant Entra does not honour (a nested member of a group
//! assigned an application role, a service principal in such a group) is kept as a row marked
//! with why it is ineffective and the nested group it is listed through; and each connector
//! remembers which version of the inheritance rules derived its inherited grants, so an upgrade
//! that changes the rules derives them again at the next sync.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Grants {
    Table,
    IneffectiveReason,
    ThroughPrincipalId,
}

#[derive(DeriveIden)]
enum Connectors {
    Table,
    InheritedRules,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Grants::Table)
                    .add_column(ColumnDef::new(Grants::IneffectiveReason).string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Grants::Table)
                    .add_column(ColumnDef::new(Grants::ThroughPrincipalId).big_integer().null())
                    .to_owned(),
            )
            .await?;
        // 0: derived by rules before this version (every transitive member got everything).
        manager
            .alter_table(
                Table::alter()
                    .table(Connectors::Table)
                    .add_column(ColumnDef::new(Connectors::InheritedRules).integer().not_null().default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Connectors::Table).drop_column(Connectors::InheritedRules).to_owned())
            .await?;
        for column in [Grants::ThroughPrincipalId, Grants::IneffectiveReason] {
            manager.alter_table(Table::alter().table(Grants::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}

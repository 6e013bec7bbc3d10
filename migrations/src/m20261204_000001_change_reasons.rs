//! Why a change was asked for, and a second person's refusal: the requester's optional reason
//! (shown to the approver and kept in the audit log), and who denied a sensitive change and why
//! (a denial is the approver's decision, distinct from the requester withdrawing it).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Changes {
    Table,
    Reason,
    DeniedBy,
    DeniedById,
    DenialReason,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            ColumnDef::new(Changes::Reason).text().null().to_owned(),
            ColumnDef::new(Changes::DeniedBy).string().null().to_owned(),
            ColumnDef::new(Changes::DeniedById).string().null().to_owned(),
            ColumnDef::new(Changes::DenialReason).text().null().to_owned(),
        ] {
            manager.alter_table(Table::alter().table(Changes::Table).add_column(column).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Changes::Reason, Changes::DeniedBy, Changes::DeniedById, Changes::DenialReason] {
            manager.alter_table(Table::alter().table(Changes::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}

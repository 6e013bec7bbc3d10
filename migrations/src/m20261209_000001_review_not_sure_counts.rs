//! `review_inbox_counts.not_sure`: a reviewer's items answered "not sure" (Entra's "Don't
//! know"), counted beside pending, approved and revoked so the inbox pages and filters by them
//! without counting assignments.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ReviewInboxCounts {
    Table,
    NotSure,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let column = ColumnDef::new(ReviewInboxCounts::NotSure).big_integer().not_null().default(0).to_owned();
        manager.alter_table(Table::alter().table(ReviewInboxCounts::Table).add_column(column).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(ReviewInboxCounts::Table).drop_column(ReviewInboxCounts::NotSure).to_owned(),
            )
            .await
    }
}

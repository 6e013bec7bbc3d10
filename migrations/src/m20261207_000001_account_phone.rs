//! An account's phone number (`web_users.phone`): refreshed from the directory by "sync
//! profile" (the user's business phone, else their mobile phone), or set by Entra's
//! provisioning (`phoneNumbers`, work before mobile) for accounts pushed over SCIM.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebUsers {
    Table,
    Phone,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let column = ColumnDef::new(WebUsers::Phone).text().null().to_owned();
        manager.alter_table(Table::alter().table(WebUsers::Table).add_column(column).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(WebUsers::Table).drop_column(WebUsers::Phone).to_owned()).await
    }
}

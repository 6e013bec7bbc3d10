//! People by identity, not address: an integration owner is the directory object their email
//! or UPN resolved to (once), and a change remembers the identity (`tenant/objectId`) of who
//! asked and who approved, so the second-person rule and ownership hold however an account's
//! `mail` is later changed. Existing owners are resolved by user principal name (unique in a
//! tenant); existing changes by the signed-in person whose address they name.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ConnectorOwners {
    Table,
    ObjectId,
}

#[derive(DeriveIden)]
enum Changes {
    Table,
    RequestedById,
    ApprovedById,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ConnectorOwners::Table)
                    .add_column(ColumnDef::new(ConnectorOwners::ObjectId).string().null())
                    .to_owned(),
            )
            .await?;
        for column in [Changes::RequestedById, Changes::ApprovedById] {
            manager
                .alter_table(
                    Table::alter().table(Changes::Table).add_column(ColumnDef::new(column).string().null()).to_owned(),
                )
                .await?;
        }
        let db = manager.get_connection();
        let backend = db.get_database_backend();
        for sql in [
            "UPDATE connector_owners SET object_id = (SELECT p.external_id FROM principals p \
             WHERE p.connector_id = connector_owners.connector_id AND p.kind = 'user' AND p.deleted_at IS NULL \
             AND lower(p.user_principal_name) = connector_owners.email)",
            "UPDATE changes SET requested_by_id = (SELECT w.tenant_id || '/' || w.object_id FROM web_users w \
             WHERE lower(w.email) = lower(changes.requested_by) ORDER BY w.id LIMIT 1)",
            "UPDATE changes SET approved_by_id = (SELECT w.tenant_id || '/' || w.object_id FROM web_users w \
             WHERE lower(w.email) = lower(changes.approved_by) ORDER BY w.id LIMIT 1) WHERE approved_by IS NOT NULL",
        ] {
            db.execute_raw(Statement::from_string(backend, sql.to_owned())).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Changes::RequestedById, Changes::ApprovedById] {
            manager.alter_table(Table::alter().table(Changes::Table).drop_column(column).to_owned()).await?;
        }
        manager
            .alter_table(Table::alter().table(ConnectorOwners::Table).drop_column(ConnectorOwners::ObjectId).to_owned())
            .await?;
        Ok(())
    }
}

use attest_domain::{ConnectorId, Entitlement, EntitlementData, EntitlementId, ResourceId};
use sea_orm::entity::prelude::*;

use super::parse_column;
use crate::StoreError;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "entitlements")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub connector_id: i64,
    pub resource_id: i64,
    pub key: String,
    pub display_name: String,
    pub description: Option<String>,
    pub requestable: bool,
    pub sensitive: bool,
    pub max_duration_secs: Option<i64>,
    pub deleted_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub(crate) fn data(&self) -> Result<EntitlementData, StoreError> {
        Ok(EntitlementData {
            resource_id: ResourceId(self.resource_id),
            key: parse_column("entitlements", self.id, &self.key)?,
            display_name: self.display_name.clone(),
            description: self.description.clone(),
        })
    }

    pub(crate) fn into_domain(self) -> Result<Entitlement, StoreError> {
        Ok(Entitlement {
            id: EntitlementId(self.id),
            connector_id: ConnectorId(self.connector_id),
            data: self.data()?,
            requestable: self.requestable,
            sensitive: self.sensitive,
            max_duration_secs: self.max_duration_secs,
            deleted_at: self.deleted_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

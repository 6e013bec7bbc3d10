use attest_domain::{ConnectorId, Resource, ResourceData, ResourceId};
use sea_orm::entity::prelude::*;

use super::{parse_column, parse_json};
use crate::StoreError;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "resources")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub connector_id: i64,
    pub external_id: String,
    pub kind: String,
    pub display_name: String,
    pub description: Option<String>,
    pub attributes: String,
    pub deleted_at: Option<DateTimeUtc>,
    pub first_seen_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub(crate) fn data(&self) -> Result<ResourceData, StoreError> {
        const T: &str = "resources";
        Ok(ResourceData {
            external_id: self.external_id.clone(),
            kind: parse_column(T, self.id, &self.kind)?,
            display_name: self.display_name.clone(),
            description: self.description.clone(),
            attributes: parse_json(T, self.id, &self.attributes)?,
            deleted_at: self.deleted_at,
        })
    }

    pub(crate) fn into_domain(self) -> Result<Resource, StoreError> {
        Ok(Resource {
            id: ResourceId(self.id),
            connector_id: ConnectorId(self.connector_id),
            data: self.data()?,
            first_seen_at: self.first_seen_at,
            updated_at: self.updated_at,
        })
    }
}

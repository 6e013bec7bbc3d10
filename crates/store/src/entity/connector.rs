use attest_domain::{Connector, ConnectorId};
use sea_orm::entity::prelude::*;

use super::{parse_column, parse_json};
use crate::StoreError;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "connectors")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub tenant_id: Option<String>,
    pub status: String,
    pub settings: String,
    pub credentials: Option<Vec<u8>>,
    pub last_full_sync_at: Option<DateTimeUtc>,
    pub last_delta_sync_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub status_reason: Option<String>,
    pub status_changed_at: Option<DateTimeUtc>,
    pub connected_at: Option<DateTimeUtc>,
    pub connected_by: Option<String>,
    pub attention_mailed_at: Option<DateTimeUtc>,
    pub connected_notified_at: Option<DateTimeUtc>,
    pub last_check: Option<String>,
    pub last_checked_at: Option<DateTimeUtc>,
    pub pending_credentials: Option<Vec<u8>>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub(crate) fn into_domain(
        self,
        owners: Vec<String>,
        owner_ids: Vec<String>,
        foreign_owner_ids: Vec<String>,
    ) -> Result<Connector, StoreError> {
        const T: &str = "connectors";
        Ok(Connector {
            id: ConnectorId(self.id),
            kind: parse_column(T, self.id, &self.kind)?,
            status: parse_column(T, self.id, &self.status)?,
            settings: parse_json(T, self.id, &self.settings)?,
            name: self.name,
            tenant_id: self.tenant_id,
            owners,
            owner_ids,
            foreign_owner_ids,
            status_reason: self.status_reason,
            connected_at: self.connected_at,
            connected_by: self.connected_by,
            last_full_sync_at: self.last_full_sync_at,
            last_delta_sync_at: self.last_delta_sync_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

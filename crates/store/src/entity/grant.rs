use attest_domain::{ConnectorId, EntitlementId, Grant, GrantId, PrincipalId};
use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;

use super::parse_column;
use crate::StoreError;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "grants")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub connector_id: i64,
    pub entitlement_id: i64,
    pub principal_id: i64,
    pub source: String,
    pub via_principal_id: Option<i64>,
    pub ineffective_reason: Option<String>,
    pub through_principal_id: Option<i64>,
    pub scope: String,
    pub external_ref: Option<String>,
    pub first_seen_at: DateTimeUtc,
    pub last_seen_at: DateTimeUtc,
    pub ended_at: Option<DateTimeUtc>,
    pub expires_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// `last_synced_at` is the connector's latest sync: a current grant was seen by it.
    pub(crate) fn into_domain(self, last_synced_at: Option<DateTime<Utc>>) -> Result<Grant, StoreError> {
        let last_seen_at = match (self.ended_at, last_synced_at) {
            (None, Some(synced)) => synced.max(self.last_seen_at),
            _ => self.last_seen_at,
        };
        Ok(Grant {
            id: GrantId(self.id),
            connector_id: ConnectorId(self.connector_id),
            entitlement_id: EntitlementId(self.entitlement_id),
            principal_id: PrincipalId(self.principal_id),
            source: parse_column("grants", self.id, &self.source)?,
            via_principal_id: self.via_principal_id.map(PrincipalId),
            ineffective: self.ineffective_reason.as_deref().map(|r| parse_column("grants", self.id, r)).transpose()?,
            through_principal_id: self.through_principal_id.map(PrincipalId),
            scope: self.scope,
            external_ref: self.external_ref,
            first_seen_at: self.first_seen_at,
            last_seen_at,
            ended_at: self.ended_at,
            expires_at: self.expires_at,
        })
    }
}

use attest_domain::{Change, ChangeId, ConnectorId};
use sea_orm::entity::prelude::*;

use super::{parse_column, parse_json};
use crate::StoreError;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "changes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub connector_id: i64,
    pub kind: String,
    pub action: String,
    /// The directory object the change is about (`ChangeAction::target`).
    pub target_object: Option<String>,
    /// The principal gaining or losing access (`ChangeAction::principal`).
    pub principal_object: Option<String>,
    pub idempotency_key: String,
    pub origin: String,
    pub origin_ref: Option<String>,
    pub requested_by: String,
    pub requested_by_id: Option<String>,
    pub state: String,
    pub result: Option<String>,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub last_error: Option<String>,
    pub graph_request_id: Option<String>,
    pub verified: Option<bool>,
    pub approved_by: Option<String>,
    pub approved_by_id: Option<String>,
    pub reason: Option<String>,
    pub denied_by: Option<String>,
    pub denied_by_id: Option<String>,
    pub denial_reason: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub(crate) fn into_domain(self) -> Result<Change, StoreError> {
        const T: &str = "changes";
        Ok(Change {
            id: ChangeId(self.id),
            connector_id: ConnectorId(self.connector_id),
            kind: parse_column(T, self.id, &self.kind)?,
            action: parse_json(T, self.id, &self.action)?,
            idempotency_key: self.idempotency_key,
            origin: parse_column(T, self.id, &self.origin)?,
            origin_ref: self.origin_ref,
            requested_by: self.requested_by,
            requested_by_id: self.requested_by_id,
            state: parse_column(T, self.id, &self.state)?,
            result: self.result.as_deref().map(|r| parse_column(T, self.id, r)).transpose()?,
            attempts: u32::try_from(self.attempts).unwrap_or_default(),
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error,
            graph_request_id: self.graph_request_id,
            verified: self.verified,
            approved_by: self.approved_by,
            approved_by_id: self.approved_by_id,
            reason: self.reason,
            denied_by: self.denied_by,
            denied_by_id: self.denied_by_id,
            denial_reason: self.denial_reason,
            lease_owner: self.lease_owner,
            lease_expires_at: self.lease_expires_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            finished_at: self.finished_at,
        })
    }
}

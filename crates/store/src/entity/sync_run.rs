use attest_domain::{ConnectorId, SyncRun, SyncRunId};
use sea_orm::entity::prelude::*;

use super::{parse_column, parse_json};
use crate::StoreError;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub connector_id: i64,
    pub mode: String,
    pub trigger: String,
    pub status: String,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    pub counts: String,
    pub requests: i64,
    pub resource_units: i64,
    pub error: Option<String>,
    pub notes: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub(crate) fn into_domain(self) -> Result<SyncRun, StoreError> {
        const T: &str = "sync_runs";
        Ok(SyncRun {
            id: SyncRunId(self.id),
            connector_id: ConnectorId(self.connector_id),
            mode: parse_column(T, self.id, &self.mode)?,
            trigger: parse_column(T, self.id, &self.trigger)?,
            status: parse_column(T, self.id, &self.status)?,
            started_at: self.started_at,
            finished_at: self.finished_at,
            counts: parse_json(T, self.id, &self.counts)?,
            requests: u64::try_from(self.requests).unwrap_or_default(),
            resource_units: u64::try_from(self.resource_units).unwrap_or_default(),
            error: self.error,
            notes: parse_json(T, self.id, &self.notes)?,
        })
    }
}

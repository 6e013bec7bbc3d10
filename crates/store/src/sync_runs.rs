//! Sync runs: started, finished, listed.

use attest_domain::{ConnectorId, SyncCounts, SyncMode, SyncRun, SyncRunId, SyncStatus, SyncTrigger};
use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::{NotSet, Set, Unchanged};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::StoreError;
use crate::areas::Syncs;
use crate::entity::sync_run::{self, Column};

/// How a run ended.
#[derive(Debug, Clone, Default)]
pub struct SyncRunFinish {
    pub counts: SyncCounts,
    pub requests: u64,
    pub resource_units: u64,
    /// `None` for success; the reason for failure otherwise.
    pub error: Option<String>,
    pub notes: Vec<String>,
}

/// The error recorded on a run found still running when the next one starts.
pub const INTERRUPTED: &str = "interrupted: the process stopped before this run finished; what it had written stays, and the next run re-reads the rest";

impl Syncs<'_> {
    /// Records the start of a run. A run of the same connector still marked running was cut
    /// short (the process stopped or the task was cancelled) and is recorded as failed, so the
    /// history never shows a run that will not finish.
    pub async fn start_sync_run(
        self,
        connector: ConnectorId,
        mode: SyncMode,
        trigger: SyncTrigger,
        now: DateTime<Utc>,
    ) -> Result<SyncRun, StoreError> {
        let txn = self.begin_write().await?;
        sync_run::Entity::update_many()
            .col_expr(Column::Status, SyncStatus::Failed.as_str().into())
            .col_expr(Column::FinishedAt, now.into())
            .col_expr(Column::Error, INTERRUPTED.into())
            .filter(Column::ConnectorId.eq(connector.0))
            .filter(Column::Status.eq(SyncStatus::Running.as_str()))
            .exec(&txn)
            .await?;
        let run = sync_run::ActiveModel {
            id: NotSet,
            connector_id: Set(connector.0),
            mode: Set(mode.as_str().to_owned()),
            trigger: Set(trigger.as_str().to_owned()),
            status: Set(SyncStatus::Running.as_str().to_owned()),
            started_at: Set(now),
            finished_at: Set(None),
            counts: Set(serde_json::to_string(&SyncCounts::default()).unwrap_or_default()),
            requests: Set(0),
            resource_units: Set(0),
            error: Set(None),
            notes: Set("[]".into()),
        }
        .insert(&txn)
        .await?
        .into_domain()?;
        txn.commit().await?;
        Ok(run)
    }

    /// Records the end of a run. A successful run also records, on the connector, that the
    /// directory was observed as of the run's start.
    pub async fn finish_sync_run(
        self,
        id: SyncRunId,
        finish: SyncRunFinish,
        now: DateTime<Utc>,
    ) -> Result<SyncRun, StoreError> {
        let run = self.get_sync_run(id).await?;
        let status = if finish.error.is_some() { SyncStatus::Failed } else { SyncStatus::Succeeded };
        let txn = self.begin_write().await?;
        let model = sync_run::ActiveModel {
            id: Unchanged(id.0),
            status: Set(status.as_str().to_owned()),
            finished_at: Set(Some(now)),
            counts: Set(serde_json::to_string(&finish.counts).unwrap_or_default()),
            requests: Set(i64::try_from(finish.requests).unwrap_or(i64::MAX)),
            resource_units: Set(i64::try_from(finish.resource_units).unwrap_or(i64::MAX)),
            error: Set(finish.error),
            notes: Set(serde_json::to_string(&finish.notes).unwrap_or_default()),
            ..Default::default()
        }
        .update(&txn)
        .await?;
        if status == SyncStatus::Succeeded {
            self.connectors().mark_connector_synced(&txn, run.connector_id, run.mode, run.started_at).await?;
        }
        txn.commit().await?;
        model.into_domain()
    }

    /// The run with this id, or `NotFound`.
    pub async fn get_sync_run(self, id: SyncRunId) -> Result<SyncRun, StoreError> {
        sync_run::Entity::find_by_id(id.0)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound { what: "sync run", key: id.to_string() })?
            .into_domain()
    }

    /// A connector's most recent runs, newest first.
    pub async fn list_sync_runs(self, connector: ConnectorId, limit: u64) -> Result<Vec<SyncRun>, StoreError> {
        sync_run::Entity::find()
            .filter(Column::ConnectorId.eq(connector.0))
            .order_by_desc(Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(sync_run::Model::into_domain)
            .collect()
    }
}

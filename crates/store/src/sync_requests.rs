//! "Sync now": a request for a connector's sync, kept in the database until a scheduler (on
//! any replica) has run it. One request per connector; asking again while one waits keeps the
//! first asker and upgrades a delta to a full sync when a full one is asked for.

use attest_domain::time::micros;
use attest_domain::{ConnectorId, SyncMode};
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use serde::Serialize;

use crate::StoreError;
use crate::areas::Syncs;
use crate::sql::{Sql, select_json};

/// A sync somebody asked for that has not run yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncRequest {
    pub connector_id: ConnectorId,
    pub mode: SyncMode,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
}

impl Syncs<'_> {
    /// Asks for a sync of `connector`.
    pub async fn request_sync(
        self,
        connector: ConnectorId,
        mode: SyncMode,
        requested_by: &str,
        now: DateTime<Utc>,
    ) -> Result<SyncRequest, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "INSERT INTO sync_requests (connector_id, mode, requested_by, requested_at) VALUES (",
        );
        sql.value(connector.0).push(", ").value(mode.as_str()).push(", ").value(requested_by.to_owned());
        sql.push(", ").value(micros(now));
        // A request made while an earlier one is being served is newer than that sync's start,
        // so the sync does not complete it: it is served by the next sync, which sees what
        // changed since (consent revoked meanwhile, say).
        sql.push(") ON CONFLICT (connector_id) DO UPDATE SET mode = CASE WHEN excluded.mode = 'full' ");
        sql.push("THEN 'full' ELSE sync_requests.mode END, requested_at = excluded.requested_at");
        self.db.execute_raw(sql.build()).await?;
        self.find_sync_request(connector)
            .await?
            .ok_or_else(|| StoreError::NotFound { what: "sync request", key: connector.to_string() })
    }

    /// The waiting request for `connector`, if any.
    pub async fn find_sync_request(self, connector: ConnectorId) -> Result<Option<SyncRequest>, StoreError> {
        Ok(self.list_sync_requests().await?.into_iter().find(|r| r.connector_id == connector))
    }

    /// Every waiting request, oldest first.
    pub async fn list_sync_requests(self) -> Result<Vec<SyncRequest>, StoreError> {
        let sql = Sql::new(
            self.backend(),
            "SELECT connector_id, mode, requested_by, requested_at FROM sync_requests ORDER BY requested_at",
        );
        let columns = ["connector_id", "mode", "requested_by", "requested_at"];
        let rows: Vec<(i64, String, String, DateTime<Utc>)> = select_json(&self.db, sql, &columns).await?;
        let mut requests = Vec::new();
        for (connector, mode, requested_by, requested_at) in rows {
            requests.push(SyncRequest {
                connector_id: ConnectorId(connector),
                mode: crate::entity::parse_column("sync_requests", connector, &mode)?,
                requested_by,
                requested_at,
            });
        }
        Ok(requests)
    }

    /// Removes `connector`'s request if it was made at or before `started_at` (the sync that
    /// served it started after it); a request made while that sync ran stays for the next.
    pub async fn complete_sync_request(
        self,
        connector: ConnectorId,
        started_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut sql = Sql::new(self.backend(), "DELETE FROM sync_requests WHERE connector_id = ");
        sql.value(connector.0).push(" AND requested_at <= ").value(micros(started_at));
        self.db.execute_raw(sql.build()).await?;
        Ok(())
    }
}

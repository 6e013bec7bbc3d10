//! Lifecycle events: appended in the same transaction as the change they describe, by a store
//! handle that records them (see [`Store::recording`]); read in id order by consumers.

use attest_domain::time::micros;
use attest_domain::{
    ConnectorId, EntitlementId, GrantId, LifecycleEvent, LifecycleEventId, LifecycleEventKind, PrincipalId, SyncRunId,
};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Value};
use serde::{Deserialize, Serialize};

use crate::Store;
use crate::StoreError;
use crate::areas::Lifecycle;
use crate::sql::{Sql, rows_per_statement, select_json};

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct LifecycleFilter {
    pub connector: Option<ConnectorId>,
    /// Only events after this one (a consumer's cursor).
    pub after: Option<LifecycleEventId>,
    /// Only these kinds (all when empty).
    pub kinds: Vec<LifecycleEventKind>,
    pub principal: Option<PrincipalId>,
    pub limit: u64,
}

/// An event with what it is about spelled out, for people and exports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LifecycleEventView {
    #[serde(flatten)]
    pub event: LifecycleEvent,
    pub principal_kind: String,
    pub principal_external_id: String,
    pub principal_name: String,
    pub principal_upn: Option<String>,
    /// For grant events: the resource and entitlement.
    pub resource_kind: Option<String>,
    pub resource_external_id: Option<String>,
    pub resource_name: Option<String>,
    pub entitlement_key: Option<String>,
}

/// The columns of a view row, as selected.
#[derive(Deserialize)]
struct ViewRow(
    i64,
    i64,
    Option<i64>,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    DateTime<Utc>,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

impl Lifecycle<'_> {
    /// Events in id order (the order they were appended).
    pub async fn list_lifecycle_events(self, filter: &LifecycleFilter) -> Result<Vec<LifecycleEventView>, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "SELECT l.id, l.connector_id, l.sync_run_id, l.kind, l.principal_id, l.entitlement_id, l.grant_id, \
             l.detected_at, p.kind AS principal_kind, p.external_id, p.display_name, p.user_principal_name, \
             r.kind AS resource_kind, r.external_id AS resource_external_id, r.display_name AS resource_name, e.key \
             FROM lifecycle_events l JOIN principals p ON p.id = l.principal_id \
             LEFT JOIN entitlements e ON e.id = l.entitlement_id LEFT JOIN resources r ON r.id = e.resource_id \
             WHERE l.id > ",
        );
        sql.value(filter.after.map_or(0, |a| a.0));
        if let Some(connector) = filter.connector {
            sql.push(" AND l.connector_id = ").value(connector.0);
        }
        if let Some(principal) = filter.principal {
            sql.push(" AND l.principal_id = ").value(principal.0);
        }
        if !filter.kinds.is_empty() {
            sql.push(" AND l.kind IN ").tuple(filter.kinds.iter().map(|k| Value::from(k.as_str())));
        }
        sql.push(&format!(" ORDER BY l.id LIMIT {}", filter.limit.max(1)));
        let columns = [
            "id",
            "connector_id",
            "sync_run_id",
            "kind",
            "principal_id",
            "entitlement_id",
            "grant_id",
            "detected_at",
            "principal_kind",
            "external_id",
            "display_name",
            "user_principal_name",
            "resource_kind",
            "resource_external_id",
            "resource_name",
            "key",
        ];
        let rows: Vec<ViewRow> = select_json(&self.db, sql, &columns).await?;
        rows.into_iter()
            .map(|r| {
                let kind = crate::entity::parse_column("lifecycle_events", r.0, &r.3)?;
                Ok(LifecycleEventView {
                    event: LifecycleEvent {
                        id: LifecycleEventId(r.0),
                        connector_id: ConnectorId(r.1),
                        sync_run_id: r.2.map(SyncRunId),
                        kind,
                        principal_id: PrincipalId(r.4),
                        entitlement_id: r.5.map(EntitlementId),
                        grant_id: r.6.map(GrantId),
                        detected_at: r.7,
                    },
                    principal_kind: r.8,
                    principal_external_id: r.9,
                    principal_name: r.10,
                    principal_upn: r.11,
                    resource_kind: r.12,
                    resource_external_id: r.13,
                    resource_name: r.14,
                    entitlement_key: r.15,
                })
            })
            .collect()
    }

    /// Appends `kind` for each of the principals, when this handle records.
    pub(crate) async fn append_principal_events(
        self,
        txn: &impl ConnectionTrait,
        kind: LifecycleEventKind,
        principals: &[i64],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(run) = self.recording else { return Ok(()) };
        for chunk in principals.chunks(rows_per_statement(1)) {
            let mut sql = Sql::new(
                self.backend(),
                "INSERT INTO lifecycle_events (connector_id, sync_run_id, kind, principal_id, detected_at) \
                 SELECT connector_id, ",
            );
            sql.value(run.0).push(", ").value(kind.as_str()).push(", id, ").value(micros(now));
            sql.push(" FROM principals WHERE id IN ").tuple(chunk.iter().map(|id| Value::from(*id)));
            sql.push(" ORDER BY id");
            txn.execute_raw(sql.build()).await?;
        }
        Ok(())
    }

    /// Appends a membership or assignment event for each of the grants (inherited ones are
    /// skipped), when this handle records: `added`, or ended.
    pub(crate) async fn append_grant_events(
        self,
        txn: &impl ConnectionTrait,
        added: bool,
        grants: &[i64],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(run) = self.recording else { return Ok(()) };
        let membership = LifecycleEventKind::for_grant("member", added).as_str();
        let assignment = LifecycleEventKind::for_grant("", added).as_str();
        for chunk in grants.chunks(rows_per_statement(1)) {
            let mut sql = Sql::new(
                self.backend(),
                "INSERT INTO lifecycle_events (connector_id, sync_run_id, kind, principal_id, entitlement_id, grant_id, detected_at) \
                 SELECT g.connector_id, ",
            );
            sql.value(run.0).push(", CASE WHEN e.key = 'member' THEN ").value(membership);
            sql.push(" ELSE ").value(assignment).push(" END, g.principal_id, g.entitlement_id, g.id, ");
            sql.value(micros(now));
            sql.push(
                " FROM grants g JOIN entitlements e ON e.id = g.entitlement_id \
                 WHERE g.source <> 'inherited' AND g.id IN ",
            );
            sql.tuple(chunk.iter().map(|id| Value::from(*id)));
            sql.push(" ORDER BY g.id");
            txn.execute_raw(sql.build()).await?;
        }
        Ok(())
    }
}

/// Runs an UPDATE or INSERT with `RETURNING id` and returns the ids it touched: exactly the rows
/// changed, which is what events are written for.
pub(crate) async fn returning_ids(txn: &impl ConnectionTrait, mut sql: Sql) -> Result<Vec<i64>, StoreError> {
    sql.push(" RETURNING id");
    let rows = txn.query_all_raw(sql.build()).await?;
    rows.iter().map(|row| row.try_get_by_index::<i64>(0).map_err(StoreError::from)).collect()
}

impl Store {
    /// A handle that appends lifecycle events, attributed to `run`, for every principal and grant
    /// change it writes. A connector's first sync uses the plain handle: all of it is new to
    /// Attest, not to the directory.
    pub fn recording(&self, run: SyncRunId) -> Store {
        Store { recording: Some(run), ..self.clone() }
    }
}

//! What a sync keeps between runs and the sweeps that end a snapshot: delta cursors per
//! object type, and marking principals, resources and entitlements the directory no longer
//! has as deleted (never deleting rows: history stays answerable).

use std::collections::{BTreeMap, HashMap};

use attest_domain::time::micros;
use attest_domain::{ConnectorId, EntitlementKey, LifecycleEventKind, PrincipalData, ResourceId, ResourceKind};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, EntityTrait, Value};

use crate::areas::Syncs;
use crate::entity::principal;
use crate::lifecycle::returning_ids;
use crate::sql::{JsonRows, Sql, json, rows_per_statement, select_json};
use crate::{IdSet, StoreError};

/// The tables whose rows a sync marks deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncedTable {
    Principals,
    Resources,
    Entitlements,
}

impl SyncedTable {
    fn name(self) -> &'static str {
        match self {
            SyncedTable::Principals => "principals",
            SyncedTable::Resources => "resources",
            SyncedTable::Entitlements => "entitlements",
        }
    }
}

impl Syncs<'_> {
    /// The connector's delta cursors, by object type (`users`, `groups`...).
    pub async fn list_sync_cursors(self, connector: ConnectorId) -> Result<BTreeMap<String, String>, StoreError> {
        let mut sql = Sql::new(self.backend(), "SELECT object_type, cursor FROM sync_cursors WHERE connector_id = ");
        sql.value(connector.0);
        let rows: Vec<(String, String)> = select_json(&self.db, sql, &["object_type", "cursor"]).await?;
        Ok(rows.into_iter().collect())
    }

    /// Replaces all of the connector's delta cursors at once (an empty map forgets them).
    pub async fn replace_sync_cursors(
        self,
        connector: ConnectorId,
        cursors: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let backend = self.backend();
        let txn = self.begin_write().await?;
        let mut sql = Sql::new(backend, "DELETE FROM sync_cursors WHERE connector_id = ");
        sql.value(connector.0);
        txn.execute_raw(sql.build()).await?;
        for (object_type, cursor) in cursors {
            let mut sql =
                Sql::new(backend, "INSERT INTO sync_cursors (connector_id, object_type, cursor, updated_at) VALUES ");
            sql.tuple([
                Value::from(connector.0),
                Value::from(object_type.clone()),
                Value::from(cursor.clone()),
                Value::from(now),
            ]);
            txn.execute_raw(sql.build()).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Marks every live row of `table` for the connector that is not in `seen` as deleted:
    /// the end of a full snapshot. Returns how many were marked.
    pub async fn mark_unseen_deleted(
        self,
        connector: ConnectorId,
        table: SyncedTable,
        seen: &IdSet,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            &format!("SELECT id FROM {} WHERE deleted_at IS NULL AND connector_id = ", table.name()),
        );
        sql.value(connector.0);
        let live: Vec<(i64,)> = select_json(&self.db, sql, &["id"]).await?;
        let unseen: Vec<i64> = live.into_iter().map(|(id,)| id).filter(|id| !seen.contains(*id)).collect();
        self.mark_deleted(table, &unseen, now).await
    }

    /// Marks resources deleted by external id (a delta reported them removed).
    pub async fn mark_resources_deleted(
        self,
        connector: ConnectorId,
        kind: ResourceKind,
        external_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut marked = 0;
        for chunk in external_ids.chunks(rows_per_statement(1)) {
            let mut sql = Sql::new(self.backend(), "UPDATE resources SET deleted_at = ");
            sql.value(now).push(", updated_at = ").value(now);
            sql.push(" WHERE deleted_at IS NULL AND connector_id = ").value(connector.0);
            sql.push(" AND kind = ").value(kind.as_str()).push(" AND external_id IN ");
            sql.tuple(chunk.iter().map(|id| Value::from(id.clone())));
            marked += self.db.execute_raw(sql.build()).await?.rows_affected();
        }
        Ok(marked)
    }

    /// Marks a resource's live entitlements whose key is not in `keep` as deleted (an app role
    /// was removed from its application). Returns how many were marked.
    pub async fn mark_entitlements_deleted_except(
        self,
        resource: ResourceId,
        keep: &[EntitlementKey],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut sql =
            Sql::new(self.backend(), "SELECT id, key FROM entitlements WHERE deleted_at IS NULL AND resource_id = ");
        sql.value(resource.0);
        let live: Vec<(i64, String)> = select_json(&self.db, sql, &["id", "key"]).await?;
        let keep: Vec<String> = keep.iter().map(ToString::to_string).collect();
        let gone: Vec<i64> = live.into_iter().filter(|(_, key)| !keep.contains(key)).map(|(id, _)| id).collect();
        self.mark_deleted(SyncedTable::Entitlements, &gone, now).await
    }

    /// The stored attributes of the given principals, by external id (absent ones are left out).
    pub async fn find_principals_by_external_ids(
        self,
        connector: ConnectorId,
        external_ids: &[String],
    ) -> Result<HashMap<String, PrincipalData>, StoreError> {
        let mut found = HashMap::with_capacity(external_ids.len());
        for chunk in external_ids.chunks(5_000) {
            let keys: Vec<[&str; 1]> = chunk.iter().map(|id| [id.as_str()]).collect();
            let j = JsonRows::new(self.backend());
            let mut sql = Sql::new(self.backend(), "SELECT p.* FROM ");
            j.from(&mut sql, json(&keys)?);
            sql.push(" CROSS JOIN principals p WHERE p.connector_id = ").value(connector.0);
            sql.push(&format!(" AND p.external_id = {}", j.get(0, "text")));
            for model in principal::Entity::find().from_raw_sql(sql.build()).all(&self.db).await? {
                found.insert(model.external_id.clone(), model.data()?);
            }
        }
        Ok(found)
    }

    async fn mark_deleted(self, table: SyncedTable, ids: &[i64], now: DateTime<Utc>) -> Result<u64, StoreError> {
        let now = micros(now);
        let txn = self.begin_write().await?;
        let mut marked = 0;
        for chunk in ids.chunks(rows_per_statement(1)) {
            let mut sql = Sql::new(self.backend(), &format!("UPDATE {} SET deleted_at = ", table.name()));
            sql.value(now).push(", updated_at = ").value(now).push(" WHERE deleted_at IS NULL AND id IN ");
            sql.tuple(chunk.iter().map(|id| Value::from(*id)));
            if table == SyncedTable::Principals {
                let deleted = returning_ids(&txn, sql).await?;
                self.lifecycle()
                    .append_principal_events(&txn, LifecycleEventKind::PrincipalDeleted, &deleted, now)
                    .await?;
                marked += deleted.len() as u64;
            } else {
                marked += txn.execute_raw(sql.build()).await?.rows_affected();
            }
        }
        txn.commit().await?;
        Ok(marked)
    }
}

//! Entitlements: bulk upsert from a sync (names only: policy flags belong to Attest), and reads.

use std::collections::HashMap;

use attest_domain::{
    ConnectorId, Entitlement, EntitlementData, EntitlementId, EntitlementKey, ResourceId, ResourceKind,
};
use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::{NotSet, Set, Unchanged};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, Iterable, QueryFilter, QueryOrder, QuerySelect};

use crate::areas::Resources;
use crate::entity::entitlement::{self, Column};
use crate::sql::{JsonRows, Sql, json, rows_per_statement};
use crate::upsert::{dedupe, plan};
use crate::{StoreError, Upserted};

impl Resources<'_> {
    /// Inserts new entitlements and renames changed ones, keyed by resource and key. An
    /// entitlement that had been marked deleted and is seen again is restored.
    pub async fn upsert_entitlements(
        self,
        connector: ConnectorId,
        rows: &[EntitlementData],
        now: DateTime<Utc>,
    ) -> Result<Upserted<EntitlementId>, StoreError> {
        let key = |r: &EntitlementData| (r.resource_id, r.key.to_string());
        let unique = dedupe(rows, key);
        let mut ids = HashMap::with_capacity(rows.len());
        let mut counts = attest_domain::KindCounts::default();
        let txn = self.begin_write().await?;
        for chunk in unique.chunks(rows_per_statement(Column::iter().count())) {
            let mut resources: Vec<[i64; 1]> = chunk.iter().map(|r| [r.resource_id.0]).collect();
            resources.sort_unstable();
            resources.dedup();
            let j = JsonRows::new(self.backend());
            let mut sql = Sql::new(self.backend(), "SELECT e.* FROM ");
            j.from(&mut sql, json(&resources)?);
            sql.push(&format!(" CROSS JOIN entitlements e WHERE e.resource_id = {}", j.get(0, "bigint")));
            let stored = entitlement::Entity::find()
                .from_raw_sql(sql.build())
                .all(&txn)
                .await?
                .into_iter()
                .map(|m| {
                    let data = m.data()?;
                    Ok(((data.resource_id, data.key.to_string()), (m.id, (data, m.deleted_at.is_some()))))
                })
                .collect::<Result<HashMap<_, _>, StoreError>>()?;
            // One seen again after being deleted is a change (it is restored), even unrenamed.
            let mut plan = plan(chunk, key, stored, |(data, deleted), row| !deleted && data == row);
            if !plan.insert.is_empty() {
                let models = plan.insert.iter().map(|d| entitlement::ActiveModel {
                    id: NotSet,
                    connector_id: Set(connector.0),
                    resource_id: Set(d.resource_id.0),
                    key: Set(d.key.to_string()),
                    display_name: Set(d.display_name.clone()),
                    description: Set(d.description.clone()),
                    requestable: Set(false),
                    sensitive: Set(false),
                    max_duration_secs: Set(None),
                    deleted_at: Set(None),
                    created_at: Set(now),
                    updated_at: Set(now),
                });
                for model in entitlement::Entity::insert_many(models).exec_with_returning(&txn).await? {
                    plan.ids.insert((ResourceId(model.resource_id), model.key), model.id);
                }
            }
            for (id, data) in &plan.update {
                entitlement::ActiveModel {
                    id: Unchanged(*id),
                    display_name: Set(data.display_name.clone()),
                    description: Set(data.description.clone()),
                    deleted_at: Set(None),
                    updated_at: Set(now),
                    ..Default::default()
                }
                .update(&txn)
                .await?;
            }
            counts.absorb(plan.counts);
            ids.extend(plan.ids);
        }
        txn.commit().await?;
        self.statistics.record(&self.db, "entitlements", counts.added).await?;
        let ids = rows
            .iter()
            .map(|r| {
                ids.get(&key(r))
                    .map(|id| EntitlementId(*id))
                    .ok_or_else(|| StoreError::Internal(format!("entitlement {} was not stored", r.key)))
            })
            .collect::<Result<_, _>>()?;
        Ok(Upserted { ids, counts })
    }

    /// The entitlement with this id, or `NotFound`.
    pub async fn get_entitlement(self, id: EntitlementId) -> Result<Entitlement, StoreError> {
        entitlement::Entity::find_by_id(id.0)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound { what: "entitlement", key: id.to_string() })?
            .into_domain()
    }

    /// A resource's entitlements, by key.
    pub async fn list_entitlements(self, resource: ResourceId) -> Result<Vec<Entitlement>, StoreError> {
        entitlement::Entity::find()
            .filter(Column::ResourceId.eq(resource.0))
            .order_by_asc(Column::Key)
            .all(&self.db)
            .await?
            .into_iter()
            .map(entitlement::Model::into_domain)
            .collect()
    }

    /// Every entitlement of a connector, by id.
    pub async fn list_connector_entitlements(self, connector: ConnectorId) -> Result<Vec<Entitlement>, StoreError> {
        entitlement::Entity::find()
            .filter(Column::ConnectorId.eq(connector.0))
            .order_by_asc(Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(entitlement::Model::into_domain)
            .collect()
    }

    /// The live entitlement `key` of the connector's resource of `kind` with `external_id`, if the
    /// graph has it (what a provisioned change writes through to).
    pub async fn find_entitlement_id(
        self,
        connector: ConnectorId,
        kind: ResourceKind,
        external_id: &str,
        key: &EntitlementKey,
    ) -> Result<Option<EntitlementId>, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "SELECT e.id FROM entitlements e JOIN resources r ON r.id = e.resource_id \
             WHERE e.deleted_at IS NULL AND r.connector_id = ",
        );
        sql.value(connector.0).push(" AND r.kind = ").value(kind.as_str());
        sql.push(" AND r.external_id = ").value(external_id.to_owned()).push(" AND e.key = ").value(key.to_string());
        let rows: Vec<(i64,)> = crate::sql::select_json(&self.db, sql, &["id"]).await?;
        Ok(rows.first().map(|(id,)| EntitlementId(*id)))
    }

    /// (resource id, key) → entitlement id for a whole connector.
    pub async fn entitlement_ids_by_key(
        self,
        connector: ConnectorId,
    ) -> Result<HashMap<(ResourceId, EntitlementKey), EntitlementId>, StoreError> {
        let rows: Vec<(i64, i64, String)> = entitlement::Entity::find()
            .select_only()
            .column(Column::Id)
            .column(Column::ResourceId)
            .column(Column::Key)
            .filter(Column::ConnectorId.eq(connector.0))
            .into_tuple()
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|(id, resource, key)| {
                Ok(((ResourceId(resource), crate::entity::parse_column("entitlements", id, &key)?), EntitlementId(id)))
            })
            .collect()
    }
}

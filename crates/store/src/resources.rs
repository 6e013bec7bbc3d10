//! Resources: bulk upsert from a sync, and reads.

use std::collections::HashMap;

use attest_domain::time::micros;
use attest_domain::{ConnectorId, Resource, ResourceData, ResourceId, ResourceKind};
use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::{NotSet, Set, Unchanged};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, Iterable, QueryFilter, QueryOrder, QuerySelect};

use crate::areas::Resources;
use crate::entity::resource::{self, Column};
use crate::sql::{JsonRows, Sql, json, rows_per_statement};
use crate::upsert::{dedupe, plan};
use crate::{StoreError, Upserted};

fn active_model(connector: ConnectorId, data: &ResourceData, now: DateTime<Utc>) -> resource::ActiveModel {
    resource::ActiveModel {
        id: NotSet,
        connector_id: Set(connector.0),
        external_id: Set(data.external_id.clone()),
        kind: Set(data.kind.as_str().to_owned()),
        display_name: Set(data.display_name.clone()),
        description: Set(data.description.clone()),
        attributes: Set(data.attributes.to_string()),
        deleted_at: Set(data.deleted_at),
        first_seen_at: Set(now),
        updated_at: Set(now),
    }
}

impl Resources<'_> {
    /// Inserts new resources and updates changed ones, keyed by kind and external id.
    pub async fn upsert_resources(
        self,
        connector: ConnectorId,
        rows: &[ResourceData],
        now: DateTime<Utc>,
    ) -> Result<Upserted<ResourceId>, StoreError> {
        let rows: Vec<ResourceData> =
            rows.iter().map(|r| ResourceData { deleted_at: r.deleted_at.map(micros), ..r.clone() }).collect();
        let key = |r: &ResourceData| (r.kind, r.external_id.clone());
        let unique = dedupe(&rows, key);
        let mut ids = HashMap::with_capacity(rows.len());
        let mut counts = attest_domain::KindCounts::default();
        let txn = self.begin_write().await?;
        for chunk in unique.chunks(rows_per_statement(Column::iter().count())) {
            let keys: Vec<[&str; 2]> = chunk.iter().map(|r| [r.kind.as_str(), r.external_id.as_str()]).collect();
            let j = JsonRows::new(self.backend());
            let mut sql = Sql::new(self.backend(), "SELECT r.* FROM ");
            j.from(&mut sql, json(&keys)?);
            sql.push(" CROSS JOIN resources r WHERE r.connector_id = ").value(connector.0);
            sql.push(&format!(" AND r.kind = {} AND r.external_id = {}", j.get(0, "text"), j.get(1, "text")));
            let stored = resource::Entity::find()
                .from_raw_sql(sql.build())
                .all(&txn)
                .await?
                .into_iter()
                .map(|m| {
                    let data = m.data()?;
                    Ok(((data.kind, data.external_id.clone()), (m.id, data)))
                })
                .collect::<Result<HashMap<_, _>, StoreError>>()?;
            let mut plan = plan(chunk, key, stored, |stored, row| stored == row);
            if !plan.insert.is_empty() {
                let inserted =
                    resource::Entity::insert_many(plan.insert.iter().map(|d| active_model(connector, d, now)))
                        .exec_with_returning(&txn)
                        .await?;
                for model in inserted {
                    let data = model.data()?;
                    plan.ids.insert((data.kind, data.external_id), model.id);
                }
            }
            for (id, data) in &plan.update {
                let mut model = active_model(connector, data, now);
                model.id = Unchanged(*id);
                model.first_seen_at = NotSet;
                model.update(&txn).await?;
            }
            counts.absorb(plan.counts);
            ids.extend(plan.ids);
        }
        txn.commit().await?;
        self.statistics.record(&self.db, "resources", counts.added).await?;
        let ids = rows
            .iter()
            .map(|r| {
                ids.get(&key(r))
                    .map(|id| ResourceId(*id))
                    .ok_or_else(|| StoreError::Internal(format!("resource {} was not stored", r.external_id)))
            })
            .collect::<Result<_, _>>()?;
        Ok(Upserted { ids, counts })
    }

    /// The resource with this id, or `NotFound`.
    pub async fn get_resource(self, id: ResourceId) -> Result<Resource, StoreError> {
        resource::Entity::find_by_id(id.0)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound { what: "resource", key: id.to_string() })?
            .into_domain()
    }

    /// A connector's resources of `kind` (all kinds when `None`), by id.
    pub async fn list_resources(
        self,
        connector: ConnectorId,
        kind: Option<ResourceKind>,
    ) -> Result<Vec<Resource>, StoreError> {
        let mut query = resource::Entity::find().filter(Column::ConnectorId.eq(connector.0));
        if let Some(kind) = kind {
            query = query.filter(Column::Kind.eq(kind.as_str()));
        }
        query.order_by_asc(Column::Id).all(&self.db).await?.into_iter().map(resource::Model::into_domain).collect()
    }

    /// (kind, external id) → resource id for a whole connector.
    pub async fn resource_ids_by_external_id(
        self,
        connector: ConnectorId,
    ) -> Result<HashMap<(ResourceKind, String), ResourceId>, StoreError> {
        let rows: Vec<(i64, String, String)> = resource::Entity::find()
            .select_only()
            .column(Column::Id)
            .column(Column::Kind)
            .column(Column::ExternalId)
            .filter(Column::ConnectorId.eq(connector.0))
            .into_tuple()
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|(id, kind, ext)| Ok(((crate::entity::parse_column("resources", id, &kind)?, ext), ResourceId(id))))
            .collect()
    }
}

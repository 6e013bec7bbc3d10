//! Grants: the bulk upsert a sync makes (millions of rows), the sweep that ends what a full
//! snapshot did not see, and reads.
//!
//! The upsert looks each batch up by its key (entitlement, principal, scope) through the
//! partial unique index of current grants, then inserts what is new and updates what changed.
//! An unchanged grant costs one index probe and is never written: steady-state syncs write
//! nothing. Seen ids are returned so a full sync can sweep without marking rows.

use std::collections::HashMap;

use attest_domain::{ConnectorId, EntitlementId, Grant, GrantData, GrantId, GrantSource, PrincipalId};
use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, TransactionTrait, Value};

use crate::entity::grant::{self, Column};
use crate::sql::{Sql, rows_per_statement};
use crate::upsert::dedupe;
use crate::{IdSet, Store, StoreError, Upserted};

/// What a grant upsert did; `ids` follow the input order.
pub type GrantUpsert = Upserted<GrantId>;

type Key = (i64, i64, String);

struct StoredGrant {
    id: i64,
    source: GrantSource,
    external_ref: Option<String>,
    expires_at: Option<DateTime<Utc>>,
}

const INSERT_COLUMNS: &str = "INSERT INTO grants (connector_id, entitlement_id, principal_id, source, scope, external_ref, first_seen_at, last_seen_at, expires_at) VALUES ";

fn key(g: &GrantData) -> Key {
    (g.entitlement_id.0, g.principal_id.0, g.scope.clone())
}

impl Store {
    /// Upserts direct grants observed in the directory. A grant Attest provisioned just in time
    /// keeps its `jit` source and its own expiry.
    pub async fn upsert_grants(
        &self,
        connector: ConnectorId,
        rows: &[GrantData],
        now: DateTime<Utc>,
    ) -> Result<GrantUpsert, StoreError> {
        let backend = self.backend();
        let rows: Vec<GrantData> = rows
            .iter()
            .map(|g| GrantData { expires_at: g.expires_at.map(|t| t.trunc_subsecs(6)), ..g.clone() })
            .collect();
        let unique = dedupe(&rows, key);
        let mut ids: HashMap<Key, i64> = HashMap::with_capacity(rows.len());
        let mut counts = attest_domain::KindCounts::default();
        let txn = self.db.begin().await?;
        for chunk in unique.chunks(rows_per_statement(9)) {
            let stored = lookup_current(&txn, backend, chunk).await?;
            let mut insert = Vec::new();
            for row in chunk {
                let k = key(row);
                match stored.get(&k) {
                    None => insert.push(*row),
                    Some(existing) => {
                        ids.insert(k, existing.id);
                        // Attest owns the expiry of what it provisioned just in time.
                        let expires_at =
                            if existing.source == GrantSource::Jit { existing.expires_at } else { row.expires_at };
                        if existing.external_ref == row.external_ref && existing.expires_at == expires_at {
                            counts.unchanged += 1;
                        } else {
                            let mut sql = Sql::new(backend, "UPDATE grants SET external_ref = ");
                            sql.value(row.external_ref.clone()).push(", expires_at = ").value(expires_at);
                            sql.push(" WHERE id = ").value(existing.id);
                            txn.execute_raw(sql.build()).await?;
                            counts.changed += 1;
                        }
                    }
                }
            }
            if !insert.is_empty() {
                let mut sql = Sql::new(backend, INSERT_COLUMNS);
                for (i, row) in insert.iter().enumerate() {
                    if i > 0 {
                        sql.push(",");
                    }
                    sql.tuple([
                        connector.0.into(),
                        row.entitlement_id.0.into(),
                        row.principal_id.0.into(),
                        GrantSource::Direct.as_str().into(),
                        row.scope.clone().into(),
                        row.external_ref.clone().into(),
                        now.into(),
                        now.into(),
                        row.expires_at.into(),
                    ]);
                }
                sql.push(" RETURNING id, entitlement_id, principal_id, scope");
                for result in txn.query_all_raw(sql.build()).await? {
                    let id: i64 = result.try_get_by_index(0)?;
                    let k = (result.try_get_by_index(1)?, result.try_get_by_index(2)?, result.try_get_by_index(3)?);
                    ids.insert(k, id);
                }
                counts.added += insert.len() as u64;
            }
        }
        txn.commit().await?;
        let ids = rows
            .iter()
            .map(|r| {
                ids.get(&key(r))
                    .map(|id| GrantId(*id))
                    .ok_or_else(|| StoreError::Invalid("a grant was not stored".into()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Upserted { ids, counts })
    }

    /// Ends every current direct or JIT grant of `connector` whose id is not in `seen`: the
    /// sweep at the end of a full snapshot. `last_seen_at` is when those grants were last
    /// observed (the connector's previous sync). Returns how many were ended.
    pub async fn end_grants_not_seen(
        &self,
        connector: ConnectorId,
        seen: &IdSet,
        now: DateTime<Utc>,
        last_seen_at: Option<DateTime<Utc>>,
    ) -> Result<u64, StoreError> {
        let backend = self.backend();
        let mut sql = Sql::new(backend, "SELECT id FROM grants WHERE connector_id = ");
        sql.value(connector.0).push(" AND ended_at IS NULL AND source <> 'inherited'");
        let mut unseen = Vec::new();
        for row in self.db.query_all_raw(sql.build()).await? {
            let id: i64 = row.try_get_by_index(0)?;
            if !seen.contains(id) {
                unseen.push(GrantId(id));
            }
        }
        self.end_grants(&unseen, now, last_seen_at).await
    }

    /// Ends the given grants (a delta saw them removed). Already-ended grants are left alone.
    pub async fn end_grants(
        &self,
        ids: &[GrantId],
        now: DateTime<Utc>,
        last_seen_at: Option<DateTime<Utc>>,
    ) -> Result<u64, StoreError> {
        let backend = self.backend();
        let txn = self.db.begin().await?;
        let mut ended = 0;
        for chunk in ids.chunks(rows_per_statement(1)) {
            let mut sql = Sql::new(backend, "UPDATE grants SET ended_at = ");
            sql.value(now)
                .push(", last_seen_at = COALESCE(")
                .value(last_seen_at)
                .push(", last_seen_at) WHERE ended_at IS NULL AND id IN ");
            sql.tuple(chunk.iter().map(|id| Value::from(id.0)));
            ended += txn.execute_raw(sql.build()).await?.rows_affected();
        }
        txn.commit().await?;
        Ok(ended)
    }

    /// Benchmarks only: deletes every grant row, history included, and gives the space back,
    /// so the next load starts from an empty table. Never called by the product.
    pub async fn purge_grants_for_benchmark(&self) -> Result<(), StoreError> {
        let backend = self.backend();
        match backend {
            DbBackend::Postgres => {
                self.db.execute_raw(Sql::new(backend, "TRUNCATE grants").build()).await?;
            }
            _ => {
                self.db.execute_raw(Sql::new(backend, "DELETE FROM grants").build()).await?;
                self.db.execute_raw(Sql::new(backend, "VACUUM").build()).await?;
            }
        }
        Ok(())
    }

    /// The current direct or JIT grant of `entitlement` to `principal` at `scope`, if any.
    pub async fn find_current_grant(
        &self,
        entitlement: EntitlementId,
        principal: PrincipalId,
        scope: &str,
    ) -> Result<Option<Grant>, StoreError> {
        let model = grant::Entity::find()
            .filter(Column::EntitlementId.eq(entitlement.0))
            .filter(Column::PrincipalId.eq(principal.0))
            .filter(Column::Scope.eq(scope))
            .filter(Column::EndedAt.is_null())
            .filter(Column::Source.ne(GrantSource::Inherited.as_str()))
            .one(&self.db)
            .await?;
        match model {
            Some(model) => Ok(Some(self.grants_into_domain(vec![model]).await?.remove(0))),
            None => Ok(None),
        }
    }

    /// A principal's grants (direct, JIT and inherited), current only unless `include_ended`.
    pub async fn list_grants_for_principal(
        &self,
        principal: PrincipalId,
        include_ended: bool,
    ) -> Result<Vec<Grant>, StoreError> {
        let mut query = grant::Entity::find().filter(Column::PrincipalId.eq(principal.0));
        if !include_ended {
            query = query.filter(Column::EndedAt.is_null());
        }
        self.grants_into_domain(query.order_by_asc(Column::Id).all(&self.db).await?).await
    }

    /// An entitlement's holders, current only unless `include_ended`.
    pub async fn list_grants_for_entitlement(
        &self,
        entitlement: EntitlementId,
        include_ended: bool,
    ) -> Result<Vec<Grant>, StoreError> {
        let mut query = grant::Entity::find().filter(Column::EntitlementId.eq(entitlement.0));
        if !include_ended {
            query = query.filter(Column::EndedAt.is_null());
        }
        self.grants_into_domain(query.order_by_asc(Column::Id).all(&self.db).await?).await
    }

    /// Current grants that expire at or before `cutoff`, soonest first: the expiry sweeper's queue.
    pub async fn list_grants_expiring_before(
        &self,
        cutoff: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Grant>, StoreError> {
        use sea_orm::QuerySelect;
        let models = grant::Entity::find()
            .filter(Column::EndedAt.is_null())
            .filter(Column::ExpiresAt.lte(cutoff))
            .order_by_asc(Column::ExpiresAt)
            .limit(limit)
            .all(&self.db)
            .await?;
        self.grants_into_domain(models).await
    }

    /// How many current grants a connector has, per source.
    pub async fn count_current_grants(&self, connector: ConnectorId) -> Result<HashMap<GrantSource, u64>, StoreError> {
        let backend = self.backend();
        let mut sql =
            Sql::new(backend, "SELECT source, COUNT(*) FROM grants WHERE ended_at IS NULL AND connector_id = ");
        sql.value(connector.0).push(" GROUP BY source");
        let mut counts = HashMap::new();
        for row in self.db.query_all_raw(sql.build()).await? {
            let source: String = row.try_get_by_index(0)?;
            let count: i64 = row.try_get_by_index(1)?;
            counts.insert(crate::entity::parse_column("grants", 0, &source)?, u64::try_from(count).unwrap_or_default());
        }
        Ok(counts)
    }

    async fn grants_into_domain(&self, models: Vec<grant::Model>) -> Result<Vec<Grant>, StoreError> {
        let mut synced: HashMap<i64, Option<DateTime<Utc>>> = HashMap::new();
        let mut grants = Vec::with_capacity(models.len());
        for model in models {
            let last_synced = match synced.get(&model.connector_id) {
                Some(at) => *at,
                None => {
                    let at = self.get_connector(ConnectorId(model.connector_id)).await?.last_synced_at();
                    synced.insert(model.connector_id, at);
                    at
                }
            };
            grants.push(model.into_domain(last_synced)?);
        }
        Ok(grants)
    }
}

/// The current direct/JIT grants matching a batch's keys, through the partial unique index.
async fn lookup_current(
    txn: &impl ConnectionTrait,
    backend: DbBackend,
    chunk: &[&GrantData],
) -> Result<HashMap<Key, StoredGrant>, StoreError> {
    let mut sql = Sql::new(backend, "WITH v(e, p, s) AS (VALUES ");
    for (i, row) in chunk.iter().enumerate() {
        if i > 0 {
            sql.push(",");
        }
        sql.tuple([row.entitlement_id.0.into(), row.principal_id.0.into(), row.scope.clone().into()]);
    }
    sql.push(
        ") SELECT g.id, g.entitlement_id, g.principal_id, g.scope, g.source, g.external_ref, g.expires_at \
         FROM v JOIN grants g ON g.entitlement_id = v.e AND g.principal_id = v.p AND g.scope = v.s \
         WHERE g.ended_at IS NULL AND g.source <> 'inherited'",
    );
    let mut stored = HashMap::with_capacity(chunk.len());
    for row in txn.query_all_raw(sql.build()).await? {
        let id: i64 = row.try_get_by_index(0)?;
        let source: String = row.try_get_by_index(4)?;
        stored.insert(
            (row.try_get_by_index(1)?, row.try_get_by_index(2)?, row.try_get_by_index(3)?),
            StoredGrant {
                id,
                source: crate::entity::parse_column("grants", id, &source)?,
                external_ref: row.try_get_by_index(5)?,
                expires_at: row.try_get_by_index(6)?,
            },
        );
    }
    Ok(stored)
}

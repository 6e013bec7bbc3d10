//! Principals: bulk upsert from a sync, and reads.

use std::collections::HashMap;

use attest_domain::time::micros;
use attest_domain::{ConnectorId, LifecycleEventKind, Principal, PrincipalData, PrincipalId, PrincipalKind};
use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::{NotSet, Set, Unchanged};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, Iterable, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Value,
};

use crate::areas::Principals;
use crate::entity::principal::{self, Column};
use crate::lifecycle::returning_ids;
use crate::sql::{JsonRows, Sql, json, rows_per_statement};
use crate::upsert::{dedupe, plan};
use crate::{StoreError, Upserted};

/// Timestamps as the databases keep them (microseconds), so stored and observed rows compare equal.
fn normalized(data: &PrincipalData) -> PrincipalData {
    let mut data = data.clone();
    for ts in [&mut data.created_in_source_at, &mut data.last_sign_in_at, &mut data.deleted_at] {
        *ts = ts.map(micros);
    }
    data
}

/// The changes to a stored principal that are lifecycle events (creation is found by insertion).
const TRANSITIONS: [LifecycleEventKind; 4] = [
    LifecycleEventKind::PrincipalDisabled,
    LifecycleEventKind::PrincipalEnabled,
    LifecycleEventKind::PrincipalDeleted,
    LifecycleEventKind::PrincipalRestored,
];

/// Which stored principals of a batch are being disabled, enabled, deleted or restored.
fn transitions(
    stored: &HashMap<String, (i64, PrincipalData)>,
    rows: &[&PrincipalData],
) -> Vec<(LifecycleEventKind, i64)> {
    let mut out = Vec::new();
    for row in rows {
        let Some((id, before)) = stored.get(&row.external_id) else { continue };
        match (before.account_enabled, row.account_enabled) {
            (Some(true), Some(false)) => out.push((LifecycleEventKind::PrincipalDisabled, *id)),
            (Some(false), Some(true)) => out.push((LifecycleEventKind::PrincipalEnabled, *id)),
            _ => {}
        }
        match (before.deleted_at.is_some(), row.deleted_at.is_some()) {
            (false, true) => out.push((LifecycleEventKind::PrincipalDeleted, *id)),
            (true, false) => out.push((LifecycleEventKind::PrincipalRestored, *id)),
            _ => {}
        }
    }
    out
}

fn active_model(connector: ConnectorId, data: &PrincipalData, now: DateTime<Utc>) -> principal::ActiveModel {
    principal::ActiveModel {
        id: NotSet,
        connector_id: Set(connector.0),
        external_id: Set(data.external_id.clone()),
        kind: Set(data.kind.as_str().to_owned()),
        display_name: Set(data.display_name.clone()),
        user_principal_name: Set(data.user_principal_name.clone()),
        email: Set(data.email.clone()),
        job_title: Set(data.job_title.clone()),
        department: Set(data.department.clone()),
        office_location: Set(data.office_location.clone()),
        usage_location: Set(data.usage_location.clone()),
        employee_id: Set(data.employee_id.clone()),
        manager_external_id: Set(data.manager_external_id.clone()),
        account_enabled: Set(data.account_enabled),
        user_type: Set(data.user_type.map(|t| t.as_str().to_owned())),
        created_in_source_at: Set(data.created_in_source_at),
        last_sign_in_at: Set(data.last_sign_in_at),
        deleted_at: Set(data.deleted_at),
        attributes: Set(data.attributes.to_string()),
        first_seen_at: Set(now),
        updated_at: Set(now),
    }
}

impl Principals<'_> {
    /// Inserts new principals and updates changed ones, keyed by external id; identical rows
    /// are not written at all. Returns the id of every input row, in order.
    pub async fn upsert_principals(
        self,
        connector: ConnectorId,
        rows: &[PrincipalData],
        now: DateTime<Utc>,
    ) -> Result<Upserted<PrincipalId>, StoreError> {
        let rows: Vec<PrincipalData> = rows.iter().map(normalized).collect();
        let unique = dedupe(&rows, |r| r.external_id.clone());
        let mut out = Upserted { ids: Vec::with_capacity(rows.len()), counts: Default::default() };
        let mut ids: HashMap<String, i64> = HashMap::with_capacity(rows.len());
        let txn = self.begin_write().await?;
        let per_statement = rows_per_statement(Column::iter().count());
        for chunk in unique.chunks(per_statement) {
            let keys: Vec<[&str; 1]> = chunk.iter().map(|r| [r.external_id.as_str()]).collect();
            let j = JsonRows::new(self.backend());
            let mut sql = Sql::new(self.backend(), "SELECT p.* FROM ");
            j.from(&mut sql, json(&keys)?);
            sql.push(" CROSS JOIN principals p WHERE p.connector_id = ").value(connector.0);
            sql.push(&format!(" AND p.external_id = {}", j.get(0, "text")));
            let stored = principal::Entity::find()
                .from_raw_sql(sql.build())
                .all(&txn)
                .await?
                .into_iter()
                .map(|m| Ok((m.external_id.clone(), (m.id, m.data()?))))
                .collect::<Result<HashMap<_, _>, StoreError>>()?;
            let transitions = if self.recording.is_some() { transitions(&stored, chunk) } else { Vec::new() };
            let mut plan = plan(chunk, |r| r.external_id.clone(), stored, |stored, row| stored == row);
            if !plan.insert.is_empty() {
                let inserted =
                    principal::Entity::insert_many(plan.insert.iter().map(|d| active_model(connector, d, now)))
                        .exec_with_returning(&txn)
                        .await?;
                let created: Vec<i64> = inserted.iter().map(|m| m.id).collect();
                self.lifecycle()
                    .append_principal_events(&txn, LifecycleEventKind::PrincipalCreated, &created, now)
                    .await?;
                for model in inserted {
                    plan.ids.insert(model.external_id, model.id);
                }
            }
            for (id, data) in &plan.update {
                let mut model = active_model(connector, data, now);
                model.id = Unchanged(*id);
                model.first_seen_at = NotSet;
                model.update(&txn).await?;
            }
            for kind in TRANSITIONS {
                let ids: Vec<i64> = transitions.iter().filter(|(k, _)| *k == kind).map(|(_, id)| *id).collect();
                self.lifecycle().append_principal_events(&txn, kind, &ids, now).await?;
            }
            out.counts.absorb(plan.counts);
            ids.extend(plan.ids);
        }
        txn.commit().await?;
        self.statistics.record(&self.db, "principals", out.counts.added).await?;
        for row in &rows {
            let id = ids
                .get(&row.external_id)
                .copied()
                .ok_or_else(|| StoreError::Internal(format!("principal {} was not stored", row.external_id)))?;
            out.ids.push(PrincipalId(id));
        }
        Ok(out)
    }

    /// Marks principals as deleted in the directory (e.g. `@removed` in a delta).
    pub async fn mark_principals_deleted(
        self,
        connector: ConnectorId,
        external_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let now = micros(now);
        let txn = self.begin_write().await?;
        let mut marked = 0;
        for chunk in external_ids.chunks(rows_per_statement(1)) {
            let mut sql = Sql::new(self.backend(), "UPDATE principals SET deleted_at = ");
            sql.value(now).push(", updated_at = ").value(now);
            sql.push(" WHERE deleted_at IS NULL AND connector_id = ").value(connector.0).push(" AND external_id IN ");
            sql.tuple(chunk.iter().map(|id| Value::from(id.clone())));
            let deleted = returning_ids(&txn, sql).await?;
            self.lifecycle().append_principal_events(&txn, LifecycleEventKind::PrincipalDeleted, &deleted, now).await?;
            marked += deleted.len() as u64;
        }
        txn.commit().await?;
        Ok(marked)
    }

    /// A user of the connector by object id or user principal name (case-insensitive), deleted
    /// ones included (they can be restored).
    pub async fn find_user(self, connector: ConnectorId, id_or_upn: &str) -> Result<Option<Principal>, StoreError> {
        use sea_orm::sea_query::{Expr, ExprTrait, Func};
        let text = id_or_upn.trim();
        let upn = Expr::expr(Func::lower(Expr::col(Column::UserPrincipalName))).eq(text.to_lowercase());
        principal::Entity::find()
            .filter(Column::ConnectorId.eq(connector.0))
            .filter(Column::Kind.eq(PrincipalKind::User.as_str()))
            .filter(sea_orm::Condition::any().add(Column::ExternalId.eq(text)).add(upn))
            .order_by_asc(Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(principal::Model::into_domain)
            .collect::<Result<Vec<_>, _>>()
            // A live one first: the same UPN can belong to a deleted user and a new one.
            .map(|found| found.iter().find(|p| p.data.deleted_at.is_none()).or(found.first()).cloned())
    }

    /// Records a principal's `accountEnabled` as Attest just set it in the directory
    /// (write-through; the next sync confirms it). Returns whether a live principal was updated.
    pub async fn set_principal_account_enabled(
        self,
        connector: ConnectorId,
        external_id: &str,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = micros(now);
        let mut sql = Sql::new(self.backend(), "UPDATE principals SET account_enabled = ");
        sql.value(enabled).push(", updated_at = ").value(now);
        sql.push(" WHERE deleted_at IS NULL AND connector_id = ").value(connector.0);
        sql.push(" AND external_id = ").value(external_id.to_owned());
        Ok(self.db.execute_raw(sql.build()).await?.rows_affected() > 0)
    }

    /// The principal with this id, or `NotFound`.
    pub async fn get_principal(self, id: PrincipalId) -> Result<Principal, StoreError> {
        principal::Entity::find_by_id(id.0)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound { what: "principal", key: id.to_string() })?
            .into_domain()
    }

    /// The principal with this directory object id, if synced.
    pub async fn find_principal_by_external_id(
        self,
        connector: ConnectorId,
        external_id: &str,
    ) -> Result<Option<Principal>, StoreError> {
        principal::Entity::find()
            .filter(Column::ConnectorId.eq(connector.0))
            .filter(Column::ExternalId.eq(external_id))
            .one(&self.db)
            .await?
            .map(principal::Model::into_domain)
            .transpose()
    }

    /// Principals whose work email is `email` (case-insensitive), across connectors.
    pub async fn list_principals_by_email(self, email: &str) -> Result<Vec<Principal>, StoreError> {
        principal::Entity::find()
            .filter(Column::Email.eq(email.trim().to_lowercase()))
            .order_by_asc(Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(principal::Model::into_domain)
            .collect()
    }

    /// One page of a connector's principals of `kind` (all kinds when `None`), by id.
    pub async fn list_principals(
        self,
        connector: ConnectorId,
        kind: Option<PrincipalKind>,
        page: u64,
        per_page: u64,
    ) -> Result<Vec<Principal>, StoreError> {
        let mut query = principal::Entity::find().filter(Column::ConnectorId.eq(connector.0));
        if let Some(kind) = kind {
            query = query.filter(Column::Kind.eq(kind.as_str()));
        }
        query
            .order_by_asc(Column::Id)
            .paginate(&self.db, Ord::max(per_page, 1))
            .fetch_page(page)
            .await?
            .into_iter()
            .map(principal::Model::into_domain)
            .collect()
    }

    /// How many principals a connector has.
    pub async fn count_principals(self, connector: ConnectorId) -> Result<u64, StoreError> {
        Ok(principal::Entity::find().filter(Column::ConnectorId.eq(connector.0)).count(&self.db).await?)
    }

    /// External id → principal id for a connector's live principals: what a sync resolves grants
    /// with. Deleted ones are left out, so a grant to a principal that was deleted (or left the
    /// sync's scope) is not resolved to it.
    pub async fn principal_ids_by_external_id(
        self,
        connector: ConnectorId,
    ) -> Result<HashMap<String, PrincipalId>, StoreError> {
        let rows: Vec<(i64, String)> = principal::Entity::find()
            .select_only()
            .column(Column::Id)
            .column(Column::ExternalId)
            .filter(Column::ConnectorId.eq(connector.0))
            .filter(Column::DeletedAt.is_null())
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(|(id, ext)| (ext, PrincipalId(id))).collect())
    }
}

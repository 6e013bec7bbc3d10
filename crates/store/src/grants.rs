//! Grants: the bulk upsert a sync makes (millions of rows), the sweep that ends what a full
//! snapshot did not see, and reads.
//!
//! The upsert looks each batch up by its key (entitlement, principal, scope) through the
//! partial unique index of current grants, then inserts what is new and updates what changed.
//! An unchanged grant costs one index probe and is never written: steady-state syncs write
//! nothing. A batch travels as one JSON parameter and comes back as one JSON value, so the
//! cost per row is the database's, not the driver's.
//!
//! A full snapshot ends every current grant that was first seen before the snapshot started
//! and not seen in it. Rows the snapshot inserted carry its start time as `first_seen_at`, so
//! only the ids of rows that already existed need remembering, and grants added by someone
//! else while the snapshot ran are not mistaken for stale ones.

use std::collections::HashMap;

use attest_domain::time::micros;
use attest_domain::{ConnectorId, EntitlementId, Grant, GrantData, GrantId, GrantSource, KindCounts, PrincipalId};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, Value};

use crate::areas::Grants;
use crate::entity::grant::{self, Column};
use crate::lifecycle::returning_ids;
use crate::sql::{JsonRows, Sql, json, rows_per_statement, select_json, timestamp_text};
use crate::upsert::dedupe;
use crate::{IdSet, StoreError};

/// Rows per statement for the JSON-batched paths.
const BATCH: usize = 5_000;

/// Rows per page when scanning a connector's grants.
const SCAN_PAGE: u64 = 100_000;

/// What a grant upsert did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GrantUpsert {
    pub counts: KindCounts,
    /// Ids of grants that already existed and were seen again (new rows are known by their
    /// `first_seen_at`, see [`Grants::end_grants_not_seen`]).
    pub existing: Vec<GrantId>,
}

/// Which grants a sweep covers, by their entitlement's key as SQL `LIKE` patterns
/// (`role:%`, `active`).
#[derive(Debug, Clone, Copy)]
pub enum KeyFilter<'a> {
    All,
    Only(&'a [&'a str]),
    Except(&'a [&'a str]),
}

type Key = (i64, i64, String);

/// A stored current grant: id, entitlement, principal, scope, source, external ref, expiry,
/// when the directory was found to hold it past that expiry, and when it was found keeping it.
type StoredRow = (
    i64,
    i64,
    i64,
    String,
    String,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// How far past Attest's end the directory's may lie before a just-in-time grant counts as
/// extended there (the schedule's end is Attest's, rounded by Entra to the second or minute).
const END_SLACK_SECS: i64 = 60;

/// What the directory says of a just-in-time grant's end, as the syncs so far found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct DirectoryEnd {
    /// When the directory was first found keeping Attest's end.
    confirmed: Option<DateTime<Utc>>,
    /// When it was found holding the grant past that end (permanent, or a later end).
    extended: Option<DateTime<Utc>>,
}

/// The directory's word on a just-in-time grant ending at `ours`, after a sync read `observed`
/// (`was`: what earlier syncs found). Only a grant whose end the directory once kept can be
/// extended there: one it never kept (given without PIM) is Attest's to end.
fn directory_end(
    observed: &GrantData,
    ours: Option<DateTime<Utc>>,
    was: DirectoryEnd,
    now: DateTime<Utc>,
) -> DirectoryEnd {
    let Some(ours) = ours else { return DirectoryEnd { confirmed: was.confirmed, extended: None } };
    if !observed.end_known {
        return was;
    }
    let later = observed.expires_at.is_none_or(|theirs| theirs > ours + chrono::Duration::seconds(END_SLACK_SECS));
    match (later, was.confirmed) {
        (false, confirmed) => DirectoryEnd { confirmed: confirmed.or(Some(now)), extended: None },
        (true, Some(confirmed)) => DirectoryEnd { confirmed: Some(confirmed), extended: was.extended.or(Some(now)) },
        (true, None) => was,
    }
}

fn key(g: &GrantData) -> Key {
    (g.entitlement_id.0, g.principal_id.0, g.scope.clone())
}

impl Grants<'_> {
    /// Upserts direct grants observed in the directory. A grant Attest provisioned just in time
    /// keeps its `jit` source and its own expiry.
    pub async fn upsert_grants(
        self,
        connector: ConnectorId,
        rows: &[GrantData],
        now: DateTime<Utc>,
    ) -> Result<GrantUpsert, StoreError> {
        let backend = self.backend();
        let now = micros(now);
        let rows: Vec<GrantData> =
            rows.iter().map(|g| GrantData { expires_at: g.expires_at.map(micros), ..g.clone() }).collect();
        let unique = dedupe(&rows, key);
        let mut out = GrantUpsert::default();
        let txn = self.begin_write().await?;
        for chunk in unique.chunks(BATCH) {
            let stored = lookup_current(&txn, backend, chunk).await?;
            let mut insert = Vec::new();
            for row in chunk {
                match stored.get(&key(row)) {
                    None => insert.push(*row),
                    Some(existing) => {
                        out.existing.push(GrantId(existing.0));
                        let (id, source, external_ref, stored_expiry) =
                            (existing.0, &existing.4, &existing.5, existing.6);
                        let was = DirectoryEnd { extended: existing.7, confirmed: existing.8 };
                        // Attest owns the expiry of what it provisioned just in time; what the
                        // directory says of its end only shows whether it was extended there.
                        let jit = source == GrantSource::Jit.as_str();
                        let expires_at = if jit { stored_expiry } else { row.expires_at };
                        let end =
                            if jit { directory_end(row, stored_expiry, was, now) } else { DirectoryEnd::default() };
                        if *external_ref == row.external_ref && stored_expiry == expires_at && was == end {
                            out.counts.unchanged += 1;
                        } else {
                            let mut sql = Sql::new(backend, "UPDATE grants SET external_ref = ");
                            sql.value(row.external_ref.clone()).push(", expires_at = ").value(expires_at);
                            sql.push(", extended_in_directory_at = ").value(end.extended);
                            sql.push(", directory_end_confirmed_at = ").value(end.confirmed);
                            sql.push(" WHERE id = ").value(id);
                            txn.execute_raw(sql.build()).await?;
                            out.counts.changed += 1;
                        }
                    }
                }
            }
            if !insert.is_empty() {
                let sql = insert_direct(backend, connector, &insert, now)?;
                if self.recording.is_some() {
                    let added = returning_ids(&txn, sql).await?;
                    self.lifecycle().append_grant_events(&txn, true, &added, now).await?;
                } else {
                    txn.execute_raw(sql.build()).await?;
                }
                out.counts.added += insert.len() as u64;
            }
        }
        txn.commit().await?;
        self.statistics.record(&self.db, "grants", out.counts.added).await?;
        Ok(out)
    }

    /// Ends every current direct or JIT grant of `connector` that was first seen before
    /// `snapshot_started_at` and is not in `seen`: the sweep at the end of a full snapshot.
    /// `last_seen_at` is when those grants were last observed (the connector's previous sync).
    /// Returns how many were ended.
    ///
    /// `keys` says which grants the snapshot covered, by their entitlement's key: a delta
    /// sync re-reads some kinds of assignment completely (Graph has no delta for them) and
    /// sweeps just those; a full sync that could not read a kind leaves it alone.
    pub async fn end_grants_not_seen(
        self,
        connector: ConnectorId,
        seen: &IdSet,
        snapshot_started_at: DateTime<Utc>,
        now: DateTime<Utc>,
        last_seen_at: Option<DateTime<Utc>>,
        keys: KeyFilter<'_>,
    ) -> Result<u64, StoreError> {
        let mut unseen = Vec::new();
        let first_seen_before = |sql: &mut Sql| {
            sql.push("source <> 'inherited' AND first_seen_at < ").value(micros(snapshot_started_at));
            let (operator, patterns) = match keys {
                KeyFilter::All => return,
                KeyFilter::Only(patterns) => ("IN", patterns),
                KeyFilter::Except(patterns) => ("NOT IN", patterns),
            };
            sql.push(&format!(" AND entitlement_id {operator} (SELECT id FROM entitlements WHERE connector_id = "));
            sql.value(connector.0).push(" AND (1 = 0");
            for pattern in patterns {
                sql.push(" OR key LIKE ").value(*pattern);
            }
            sql.push("))");
        };
        scan_current(&self.db, self.backend(), connector, first_seen_before, &[], |(id,): (i64,)| {
            if !seen.contains(id) {
                unseen.push(GrantId(id));
            }
        })
        .await?;
        self.end_grants(&unseen, now, last_seen_at).await
    }

    /// Ends the given grants (a delta saw them removed). Already-ended grants are left alone.
    pub async fn end_grants(
        self,
        ids: &[GrantId],
        now: DateTime<Utc>,
        last_seen_at: Option<DateTime<Utc>>,
    ) -> Result<u64, StoreError> {
        let backend = self.backend();
        let txn = self.begin_write().await?;
        let mut ended = 0;
        for chunk in ids.chunks(rows_per_statement(1)) {
            let mut sql = Sql::new(backend, "UPDATE grants SET ended_at = ");
            sql.value(now)
                .push(", last_seen_at = COALESCE(")
                .value(last_seen_at)
                .push(", last_seen_at) WHERE ended_at IS NULL AND id IN ");
            sql.tuple(chunk.iter().map(|id| Value::from(id.0)));
            if self.recording.is_some() {
                let removed = returning_ids(&txn, sql).await?;
                self.lifecycle().append_grant_events(&txn, false, &removed, now).await?;
                ended += removed.len() as u64;
            } else {
                ended += txn.execute_raw(sql.build()).await?.rows_affected();
            }
        }
        txn.commit().await?;
        Ok(ended)
    }

    /// Ends the current direct or JIT grants with the keys (entitlement, principal, scope) of
    /// `rows`: a delta saw them removed. Keys with no current grant are ignored (replays).
    pub async fn end_grants_matching(
        self,
        rows: &[GrantData],
        now: DateTime<Utc>,
        last_seen_at: Option<DateTime<Utc>>,
    ) -> Result<u64, StoreError> {
        let backend = self.backend();
        let unique = dedupe(rows, key);
        let mut ids = Vec::new();
        for chunk in unique.chunks(BATCH) {
            let stored = lookup_current(&self.db, backend, chunk).await?;
            ids.extend(stored.values().map(|row| GrantId(row.0)));
        }
        self.end_grants(&ids, now, last_seen_at).await
    }

    /// Ends every current direct or JIT grant held by one of `principals` or on an entitlement
    /// of one of `resources`: the objects were deleted in the directory.
    pub async fn end_grants_involving(
        self,
        connector: ConnectorId,
        principals: &[PrincipalId],
        resources: &[attest_domain::ResourceId],
        now: DateTime<Utc>,
        last_seen_at: Option<DateTime<Utc>>,
    ) -> Result<u64, StoreError> {
        let backend = self.backend();
        let mut ids = Vec::new();
        for chunk in principals.chunks(rows_per_statement(1)) {
            let mut sql = Sql::new(
                backend,
                "SELECT id FROM grants WHERE ended_at IS NULL AND source <> 'inherited' AND connector_id = ",
            );
            sql.value(connector.0).push(" AND principal_id IN ");
            sql.tuple(chunk.iter().map(|p| Value::from(p.0)));
            let rows: Vec<(i64,)> = select_json(&self.db, sql, &["id"]).await?;
            ids.extend(rows.into_iter().map(|(id,)| GrantId(id)));
        }
        for chunk in resources.chunks(rows_per_statement(1)) {
            let mut sql = Sql::new(
                backend,
                "SELECT g.id FROM grants g JOIN entitlements e ON e.id = g.entitlement_id \
                 WHERE g.ended_at IS NULL AND g.source <> 'inherited' AND g.connector_id = ",
            );
            sql.value(connector.0).push(" AND e.resource_id IN ");
            sql.tuple(chunk.iter().map(|r| Value::from(r.0)));
            let rows: Vec<(i64,)> = select_json(&self.db, sql, &["id"]).await?;
            ids.extend(rows.into_iter().map(|(id,)| GrantId(id)));
        }
        ids.sort_unstable_by_key(|id| id.0);
        ids.dedup();
        self.end_grants(&ids, now, last_seen_at).await
    }

    /// Ends the current grants of a resource's entitlements that are marked deleted.
    pub async fn end_grants_of_deleted_entitlements(
        self,
        connector: ConnectorId,
        resource: attest_domain::ResourceId,
        now: DateTime<Utc>,
        last_seen_at: Option<DateTime<Utc>>,
    ) -> Result<u64, StoreError> {
        let mut sql = Sql::new(
            self.backend(),
            "SELECT g.id FROM grants g JOIN entitlements e ON e.id = g.entitlement_id \
             WHERE g.ended_at IS NULL AND e.deleted_at IS NOT NULL AND g.connector_id = ",
        );
        sql.value(connector.0).push(" AND e.resource_id = ").value(resource.0);
        let rows: Vec<(i64,)> = select_json(&self.db, sql, &["id"]).await?;
        let ids: Vec<GrantId> = rows.into_iter().map(|(id,)| GrantId(id)).collect();
        self.end_grants(&ids, now, last_seen_at).await
    }

    /// Calls `each` with every current grant of the connector (direct, JIT and inherited), in
    /// id order, reading in pages so memory stays flat: exports and consistency checks.
    pub async fn scan_current_grants(
        self,
        connector: ConnectorId,
        mut each: impl FnMut(GrantRow),
    ) -> Result<(), StoreError> {
        scan_current(
            &self.db,
            self.backend(),
            connector,
            |sql| {
                sql.push("1 = 1");
            },
            GrantRow::COLUMNS,
            |row: GrantRow| each(row),
        )
        .await
    }

    /// Benchmarks only: deletes every grant row, history included, and gives the space back,
    /// so the next load starts from an empty table. Never called by the product.
    #[cfg(feature = "bench")]
    pub async fn purge_grants_for_benchmark(self) -> Result<(), StoreError> {
        let backend = self.backend();
        match backend {
            DbBackend::Postgres => {
                // Lifecycle events refer to grants; they go with them.
                self.db.execute_raw(Sql::new(backend, "TRUNCATE grants, lifecycle_events").build()).await?;
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
        self,
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
        self,
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
        self,
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
        self,
        cutoff: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Grant>, StoreError> {
        use sea_orm::QuerySelect;
        let models = grant::Entity::find()
            .filter(Column::EndedAt.is_null())
            .filter(Column::IneffectiveReason.is_null())
            .filter(Column::ExpiresAt.lte(cutoff))
            .order_by_asc(Column::ExpiresAt)
            .limit(limit)
            .all(&self.db)
            .await?;
        self.grants_into_domain(models).await
    }

    /// How many current grants a connector has, per source: access Entra gives, so inherited
    /// rows listed as ineffective are not counted.
    pub async fn count_current_grants(self, connector: ConnectorId) -> Result<HashMap<GrantSource, u64>, StoreError> {
        let backend = self.backend();
        let mut sql = Sql::new(
            backend,
            "SELECT source, COUNT(*) FROM grants WHERE ended_at IS NULL AND ineffective_reason IS NULL AND connector_id = ",
        );
        sql.value(connector.0).push(" GROUP BY source");
        let mut counts = HashMap::new();
        for row in self.db.query_all_raw(sql.build()).await? {
            let source: String = row.try_get_by_index(0)?;
            let count: i64 = row.try_get_by_index(1)?;
            counts.insert(crate::entity::parse_column("grants", 0, &source)?, u64::try_from(count).unwrap_or_default());
        }
        Ok(counts)
    }

    pub(crate) async fn grants_into_domain(self, models: Vec<grant::Model>) -> Result<Vec<Grant>, StoreError> {
        let mut synced: HashMap<i64, Option<DateTime<Utc>>> = HashMap::new();
        let mut grants = Vec::with_capacity(models.len());
        for model in models {
            let last_synced = match synced.get(&model.connector_id) {
                Some(at) => *at,
                None => {
                    let at = self.connectors().get_connector(ConnectorId(model.connector_id)).await?.last_synced_at();
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
) -> Result<HashMap<Key, StoredRow>, StoreError> {
    let keys: Vec<(i64, i64, &str)> =
        chunk.iter().map(|g| (g.entitlement_id.0, g.principal_id.0, g.scope.as_str())).collect();
    let json = json(&keys)?;
    let j = JsonRows::new(backend);
    let mut sql = Sql::new(
        backend,
        "SELECT g.id, g.entitlement_id, g.principal_id, g.scope, g.source, g.external_ref, g.expires_at, \
         g.extended_in_directory_at, g.directory_end_confirmed_at FROM ",
    );
    j.from(&mut sql, json);
    sql.push(&format!(
        " CROSS JOIN grants g WHERE g.entitlement_id = {} AND g.principal_id = {} AND g.scope = {} \
         AND g.ended_at IS NULL AND g.source <> 'inherited'",
        j.get(0, "bigint"),
        j.get(1, "bigint"),
        j.get(2, "text")
    ));
    let rows: Vec<StoredRow> = select_json(
        txn,
        sql,
        &[
            "id",
            "entitlement_id",
            "principal_id",
            "scope",
            "source",
            "external_ref",
            "expires_at",
            "extended_in_directory_at",
            "directory_end_confirmed_at",
        ],
    )
    .await?;
    Ok(rows.into_iter().map(|row| ((row.1, row.2, row.3.clone()), row)).collect())
}

/// A new direct grant as sent to the database: entitlement, principal, scope, external ref, expiry.
type NewDirectRow<'a> = (i64, i64, &'a str, Option<&'a str>, Option<String>);

/// The statement inserting new direct grants, first and last seen `now`.
fn insert_direct(
    backend: DbBackend,
    connector: ConnectorId,
    rows: &[&GrantData],
    now: DateTime<Utc>,
) -> Result<Sql, StoreError> {
    let values: Vec<NewDirectRow> = rows
        .iter()
        .map(|g| {
            (
                g.entitlement_id.0,
                g.principal_id.0,
                g.scope.as_str(),
                g.external_ref.as_deref(),
                g.expires_at.map(timestamp_text),
            )
        })
        .collect();
    let json = json(&values)?;
    let j = JsonRows::new(backend);
    let mut sql = Sql::new(
        backend,
        "INSERT INTO grants (connector_id, entitlement_id, principal_id, source, scope, external_ref, first_seen_at, last_seen_at, expires_at) SELECT ",
    );
    sql.value(connector.0).push(&format!(
        ", {}, {}, 'direct', {}, {}, ",
        j.get(0, "bigint"),
        j.get(1, "bigint"),
        j.get(2, "text"),
        j.get(3, "text")
    ));
    sql.value(now).push(", ").value(now).push(&format!(", {} FROM ", j.get(4, "timestamptz")));
    j.from(&mut sql, json);
    Ok(sql)
}

/// Calls `each` with every current grant of `connector` that `filter` keeps (it appends SQL
/// conditions, binding what it needs), as `(id, columns...)`, in pages by id so memory stays
/// flat however many grants there are. Each page crosses from the database as one JSON value.
pub(crate) async fn scan_current<T: serde::de::DeserializeOwned + FirstId>(
    conn: &impl ConnectionTrait,
    backend: DbBackend,
    connector: ConnectorId,
    filter: impl Fn(&mut Sql),
    columns: &[&str],
    mut each: impl FnMut(T),
) -> Result<(), StoreError> {
    let mut after = 0i64;
    let mut all = vec!["id"];
    all.extend_from_slice(columns);
    loop {
        let mut sql = Sql::new(backend, &format!("SELECT {} FROM grants WHERE ended_at IS NULL AND ", all.join(", ")));
        filter(&mut sql);
        sql.push(" AND connector_id = ").value(connector.0).push(" AND id > ").value(after);
        sql.push(&format!(" ORDER BY id LIMIT {SCAN_PAGE}"));
        let page: Vec<T> = select_json(conn, sql, &all).await?;
        let Some(last) = page.iter().map(FirstId::first_id).max() else { return Ok(()) };
        after = last;
        page.into_iter().for_each(&mut each);
    }
}

/// A current grant as scanned: ids rather than objects, for exports of millions of rows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GrantRow {
    pub id: i64,
    pub entitlement_id: i64,
    pub principal_id: i64,
    pub source: String,
    pub via_principal_id: Option<i64>,
    pub scope: String,
    pub external_ref: Option<String>,
    pub first_seen_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Why an inherited row is not effective (`attest_domain::IneffectiveReason`); `None` for
    /// access Entra gives.
    pub ineffective_reason: Option<String>,
}

impl GrantRow {
    /// Everything but the id, which the scan adds first.
    const COLUMNS: &'static [&'static str] = &[
        "entitlement_id",
        "principal_id",
        "source",
        "via_principal_id",
        "scope",
        "external_ref",
        "first_seen_at",
        "expires_at",
        "ineffective_reason",
    ];
}

impl FirstId for GrantRow {
    fn first_id(&self) -> i64 {
        self.id
    }
}

/// Rows whose first column is the grant id (the paging cursor).
pub(crate) trait FirstId {
    fn first_id(&self) -> i64;
}

impl FirstId for (i64,) {
    fn first_id(&self) -> i64 {
        self.0
    }
}

impl<B, C, D> FirstId for (i64, B, C, D) {
    fn first_id(&self) -> i64 {
        self.0
    }
}

impl<B, C, D, E, F, G> FirstId for (i64, B, C, D, E, F, G) {
    fn first_id(&self) -> i64 {
        self.0
    }
}

impl<B, C, D, E> FirstId for (i64, B, C, D, E) {
    fn first_id(&self) -> i64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use attest_domain::{EntitlementId, PrincipalId};

    use super::*;

    fn observed(end_known: bool, expires_at: Option<DateTime<Utc>>) -> GrantData {
        GrantData {
            entitlement_id: EntitlementId(1),
            principal_id: PrincipalId(1),
            scope: "/".into(),
            external_ref: None,
            expires_at,
            end_known,
        }
    }

    #[test]
    fn a_just_in_time_grant_is_extended_only_past_an_end_the_directory_once_kept() {
        let t = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        let (ours, now) = (Some(t(0)), t(100));
        let none = DirectoryEnd::default();
        let kept = DirectoryEnd { confirmed: Some(t(10)), extended: None };
        let found = DirectoryEnd { confirmed: Some(t(10)), extended: Some(t(50)) };
        // The directory keeps no end here (a membership): what was found stays.
        assert_eq!(directory_end(&observed(false, None), ours, found, now), found);
        // Its end is ours, give or take the slack: confirmed, and any finding cleared.
        let within = observed(true, Some(t(END_SLACK_SECS)));
        assert_eq!(directory_end(&within, ours, none, now), DirectoryEnd { confirmed: Some(now), extended: None });
        assert_eq!(directory_end(&within, ours, found, now), kept);
        // Permanent there, or later, after it kept ours: extended, since the first finding.
        assert_eq!(directory_end(&observed(true, None), ours, kept, now), DirectoryEnd { extended: Some(now), ..kept });
        assert_eq!(directory_end(&observed(true, Some(t(3_600))), ours, found, now), found);
        // Never kept ours (given without PIM, so permanent there from the start): Attest's to end.
        assert_eq!(directory_end(&observed(true, None), ours, none, now), none);
        // Attest set no end (permanent access asked for): nothing to outlive.
        let permanent = directory_end(&observed(true, None), None, found, now);
        assert_eq!(permanent, DirectoryEnd { confirmed: Some(t(10)), extended: None });
    }
}

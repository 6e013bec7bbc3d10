//! Inherited grants: what principals hold through group membership, derived from the direct
//! grants and kept as rows (so "why does Ada have this?" is a lookup, not a graph walk).
//!
//! For every group G holding a grant of entitlement E, every transitive member M of G gets an
//! inherited grant (M, E, via G). Membership is followed through nested groups with a visited
//! set, so cycles end. The derived set is diffed against the stored one: new rows inserted,
//! vanished rows ended (kept as history), nothing rewritten when nothing changed.

use std::collections::{HashMap, HashSet};

use attest_domain::{ConnectorId, GrantId, GrantSource, KindCounts};
use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::ConnectionTrait;

use crate::grants::scan_current;
use crate::sql::{JsonRows, Sql, json, select_json, timestamp_text};
use crate::{Store, StoreError};

type Expiry = Option<DateTime<Utc>>;

/// Rows per insert statement.
const BATCH: usize = 5_000;

impl Store {
    /// Brings a connector's inherited grants in line with its current direct and JIT grants.
    pub async fn recompute_inherited_grants(
        &self,
        connector: ConnectorId,
        now: DateTime<Utc>,
    ) -> Result<KindCounts, StoreError> {
        let backend = self.backend();
        let now = now.trunc_subsecs(6);

        // Group membership entitlements and the principal that is the same group.
        let mut sql = Sql::new(
            backend,
            "SELECT e.id AS entitlement_id, p.id AS principal_id FROM entitlements e \
             JOIN resources r ON r.id = e.resource_id \
             JOIN principals p ON p.connector_id = r.connector_id AND p.external_id = r.external_id AND p.kind = 'group' \
             WHERE e.key = 'member' AND r.kind = 'group' AND r.connector_id = ",
        );
        sql.value(connector.0);
        let pairs: Vec<(i64, i64)> = select_json(&self.db, sql, &["entitlement_id", "principal_id"]).await?;
        let group_of_membership: HashMap<i64, i64> = pairs.into_iter().collect();
        let groups: HashSet<i64> = group_of_membership.values().copied().collect();

        // Current direct grants: who is in which group, and what each group holds.
        let mut members: HashMap<i64, Vec<i64>> = HashMap::new();
        let mut held: HashMap<i64, Vec<(i64, Expiry)>> = HashMap::new();
        let direct = |sql: &mut Sql| {
            sql.push("source <> 'inherited'");
        };
        scan_current(
            &self.db,
            backend,
            connector,
            direct,
            &["entitlement_id", "principal_id", "expires_at"],
            |row: (i64, i64, i64, Expiry)| {
                let (_, entitlement, principal, expires_at) = row;
                if let Some(group) = group_of_membership.get(&entitlement) {
                    members.entry(*group).or_default().push(principal);
                }
                if groups.contains(&principal) {
                    held.entry(principal).or_default().push((entitlement, expires_at));
                }
            },
        )
        .await?;

        // What should be inherited: (entitlement, member, via group) → expiry.
        let mut desired: HashMap<(i64, i64, i64), Expiry> = HashMap::new();
        for (group, grants) in &held {
            for member in transitive_members(*group, &members) {
                for (entitlement, expires_at) in grants {
                    desired.insert((*entitlement, member, *group), *expires_at);
                }
            }
        }
        drop(members);

        // What is stored now.
        let mut counts = KindCounts::default();
        let mut to_end = Vec::new();
        let mut to_update = Vec::new();
        let inherited = |sql: &mut Sql| {
            sql.push("source = 'inherited'");
        };
        let columns = ["entitlement_id", "principal_id", "via_principal_id", "expires_at"];
        scan_current(&self.db, backend, connector, inherited, &columns, |row: (i64, i64, i64, i64, Expiry)| {
            let (id, entitlement, principal, via, stored_expiry) = row;
            match desired.remove(&(entitlement, principal, via)) {
                None => to_end.push(GrantId(id)),
                Some(expiry) if expiry != stored_expiry => to_update.push((id, expiry)),
                Some(_) => counts.unchanged += 1,
            }
        })
        .await?;

        let txn = self.begin_write().await?;
        let to_insert: Vec<(i64, i64, i64, Option<String>)> =
            desired.into_iter().map(|((e, m, via), expiry)| (e, m, via, expiry.map(timestamp_text))).collect();
        for chunk in to_insert.chunks(BATCH) {
            let json = json(chunk)?;
            let j = JsonRows::new(backend);
            let mut sql = Sql::new(
                backend,
                "INSERT INTO grants (connector_id, entitlement_id, principal_id, source, via_principal_id, scope, first_seen_at, last_seen_at, expires_at) SELECT ",
            );
            sql.value(connector.0);
            sql.push(&format!(", {}, {}, ", j.get(0, "bigint"), j.get(1, "bigint")));
            sql.value(GrantSource::Inherited.as_str()).push(&format!(", {}, '', ", j.get(2, "bigint")));
            sql.value(now).push(", ").value(now).push(&format!(", {} FROM ", j.get(3, "timestamptz")));
            j.from(&mut sql, json);
            txn.execute_raw(sql.build()).await?;
        }
        for (id, expiry) in &to_update {
            let mut sql = Sql::new(backend, "UPDATE grants SET expires_at = ");
            sql.value(*expiry).push(" WHERE id = ").value(*id);
            txn.execute_raw(sql.build()).await?;
        }
        txn.commit().await?;
        self.statistics.record(&self.db, "grants", to_insert.len() as u64).await?;
        let last_synced = self.get_connector(connector).await?.last_synced_at();
        counts.added = to_insert.len() as u64;
        counts.changed = to_update.len() as u64;
        counts.removed = self.end_grants(&to_end, now, last_synced).await?;
        Ok(counts)
    }
}

/// Every principal reachable from `group` through membership, `group` itself excluded.
fn transitive_members(group: i64, members: &HashMap<i64, Vec<i64>>) -> Vec<i64> {
    let mut visited: HashSet<i64> = HashSet::from([group]);
    let mut stack = vec![group];
    let mut out = Vec::new();
    while let Some(current) = stack.pop() {
        for member in members.get(&current).into_iter().flatten() {
            if visited.insert(*member) {
                out.push(*member);
                // Only groups have members of their own; others simply have no entry.
                stack.push(*member);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_is_followed_through_nesting_and_cycles() {
        // 1 ⊃ {2, 10}; 2 ⊃ {3, 11}; 3 ⊃ {1, 12} (a cycle back to 1)
        let members = HashMap::from([(1, vec![2, 10]), (2, vec![3, 11]), (3, vec![1, 12])]);
        let mut got = transitive_members(1, &members);
        got.sort();
        assert_eq!(got, vec![2, 3, 10, 11, 12]);
        let mut got = transitive_members(3, &members);
        got.sort();
        assert_eq!(got, vec![1, 2, 10, 11, 12]);
        assert!(transitive_members(99, &members).is_empty());
    }
}

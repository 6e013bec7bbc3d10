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
use sea_orm::{ConnectionTrait, TransactionTrait};

use crate::sql::{Sql, rows_per_statement};
use crate::{Store, StoreError};

type Expiry = Option<DateTime<Utc>>;

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
            "SELECT e.id, p.id FROM entitlements e \
             JOIN resources r ON r.id = e.resource_id \
             JOIN principals p ON p.connector_id = r.connector_id AND p.external_id = r.external_id AND p.kind = 'group' \
             WHERE e.key = 'member' AND r.kind = 'group' AND r.connector_id = ",
        );
        sql.value(connector.0);
        let mut group_of_membership: HashMap<i64, i64> = HashMap::new();
        for row in self.db.query_all_raw(sql.build()).await? {
            group_of_membership.insert(row.try_get_by_index(0)?, row.try_get_by_index(1)?);
        }
        let groups: HashSet<i64> = group_of_membership.values().copied().collect();

        // Current direct grants: who is in which group, and what each group holds.
        let mut sql = Sql::new(
            backend,
            "SELECT entitlement_id, principal_id, expires_at FROM grants WHERE ended_at IS NULL AND source <> 'inherited' AND connector_id = ",
        );
        sql.value(connector.0);
        let mut members: HashMap<i64, Vec<i64>> = HashMap::new();
        let mut held: HashMap<i64, Vec<(i64, Expiry)>> = HashMap::new();
        for row in self.db.query_all_raw(sql.build()).await? {
            let entitlement: i64 = row.try_get_by_index(0)?;
            let principal: i64 = row.try_get_by_index(1)?;
            if let Some(group) = group_of_membership.get(&entitlement) {
                members.entry(*group).or_default().push(principal);
            }
            if groups.contains(&principal) {
                held.entry(principal).or_default().push((entitlement, row.try_get_by_index(2)?));
            }
        }

        // What should be inherited: (entitlement, member, via group) → expiry.
        let mut desired: HashMap<(i64, i64, i64), Expiry> = HashMap::new();
        for (group, grants) in &held {
            for member in transitive_members(*group, &members) {
                for (entitlement, expires_at) in grants {
                    desired.insert((*entitlement, member, *group), *expires_at);
                }
            }
        }

        // What is stored now.
        let mut sql = Sql::new(
            backend,
            "SELECT id, entitlement_id, principal_id, via_principal_id, expires_at FROM grants WHERE ended_at IS NULL AND source = 'inherited' AND connector_id = ",
        );
        sql.value(connector.0);
        let mut counts = KindCounts::default();
        let mut to_end = Vec::new();
        let mut to_update = Vec::new();
        for row in self.db.query_all_raw(sql.build()).await? {
            let id: i64 = row.try_get_by_index(0)?;
            let key = (row.try_get_by_index(1)?, row.try_get_by_index(2)?, row.try_get_by_index(3)?);
            let stored_expiry: Expiry = row.try_get_by_index(4)?;
            match desired.remove(&key) {
                None => to_end.push(GrantId(id)),
                Some(expiry) if expiry != stored_expiry => to_update.push((id, expiry)),
                Some(_) => counts.unchanged += 1,
            }
        }

        let txn = self.db.begin().await?;
        let to_insert: Vec<((i64, i64, i64), Expiry)> = desired.into_iter().collect();
        for chunk in to_insert.chunks(rows_per_statement(9)) {
            let mut sql = Sql::new(
                backend,
                "INSERT INTO grants (connector_id, entitlement_id, principal_id, source, via_principal_id, scope, first_seen_at, last_seen_at, expires_at) VALUES ",
            );
            for (i, ((entitlement, member, via), expiry)) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(",");
                }
                sql.tuple([
                    connector.0.into(),
                    (*entitlement).into(),
                    (*member).into(),
                    GrantSource::Inherited.as_str().into(),
                    (*via).into(),
                    "".into(),
                    now.into(),
                    now.into(),
                    (*expiry).into(),
                ]);
            }
            txn.execute_raw(sql.build()).await?;
        }
        for (id, expiry) in &to_update {
            let mut sql = Sql::new(backend, "UPDATE grants SET expires_at = ");
            sql.value(*expiry).push(" WHERE id = ").value(*id);
            txn.execute_raw(sql.build()).await?;
        }
        txn.commit().await?;
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

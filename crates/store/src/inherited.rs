//! Inherited grants: what principals hold through group membership, derived from the direct
//! grants and kept as rows (so "why does Ada have this?" is a lookup, not a graph walk).
//!
//! For every group G holding a grant of entitlement E, the members G's grant reaches get an
//! inherited grant (M, E, via G), by Entra's own rules (`attest_domain::inheritance`):
//! membership reaches every transitive member; application and directory roles reach direct
//! members only, and the nested members they would be expected to reach are kept as
//! *ineffective* rows with the reason and the nested group they are listed through; ownership
//! is never inherited. Membership is followed through nested groups with a visited set, so
//! cycles end. The derived set is diffed against the stored one: new rows inserted, vanished
//! rows ended (kept as history), nothing rewritten when nothing changed.

use std::collections::{HashMap, HashSet};

use attest_domain::inheritance::{self, Effect, Inheritance, Reach};
use attest_domain::time::micros;
use attest_domain::{ConnectorId, EntitlementKey, GrantId, GrantSource, IneffectiveReason, KindCounts, PrincipalKind};
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use crate::StoreError;
use crate::areas::Grants;
use crate::grants::scan_current;
use crate::sql::{JsonRows, Sql, json, select_json, timestamp_text};

type Expiry = Option<DateTime<Utc>>;

/// What an inherited row records besides its key: expiry, and for an ineffective row why and
/// the nested group it is listed through.
type Derived = (Expiry, Option<IneffectiveReason>, Option<i64>);

/// Rows per insert statement.
const BATCH: usize = 5_000;

impl Grants<'_> {
    /// Brings a connector's inherited grants in line with its current direct and JIT grants.
    pub async fn recompute_inherited_grants(
        self,
        connector: ConnectorId,
        now: DateTime<Utc>,
    ) -> Result<KindCounts, StoreError> {
        let backend = self.backend();
        let now = micros(now);

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
        // Every entitlement's key (what decides how far it reaches), and which principals are
        // service principals (they never receive app roles through a group).
        let mut sql = Sql::new(backend, "SELECT id, key FROM entitlements WHERE connector_id = ");
        sql.value(connector.0);
        let keys: Vec<(i64, String)> = select_json(&self.db, sql, &["id", "key"]).await?;
        let keys: HashMap<i64, EntitlementKey> =
            keys.into_iter().filter_map(|(id, key)| Some((id, key.parse().ok()?))).collect();
        let mut sql = Sql::new(
            backend,
            "SELECT id FROM principals WHERE kind IN ('service_principal', 'managed_identity') AND connector_id = ",
        );
        sql.value(connector.0);
        let service_principals: Vec<(i64,)> = select_json(&self.db, sql, &["id"]).await?;
        let service_principals: HashSet<i64> = service_principals.into_iter().map(|(id,)| id).collect();
        let kind_of = |p: i64| {
            if groups.contains(&p) {
                PrincipalKind::Group
            } else if service_principals.contains(&p) {
                PrincipalKind::ServicePrincipal
            } else {
                PrincipalKind::User
            }
        };

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

        // What should be inherited: (entitlement, member, via group) → what the row records.
        let mut desired: HashMap<(i64, i64, i64), Derived> = HashMap::new();
        for (group, grants) in &held {
            let reaches = |wanted: Inheritance| {
                grants.iter().any(|(e, _)| keys.get(e).map(inheritance::inheritance) == Some(wanted))
            };
            let transitive =
                if reaches(Inheritance::Transitive) { transitive_members(*group, &members) } else { Vec::new() };
            let (direct, nested) = if reaches(Inheritance::DirectMembers) {
                direct_and_nested_members(*group, &members, &groups)
            } else {
                (Vec::new(), Vec::new())
            };
            for (entitlement, expires_at) in grants {
                let Some(key) = keys.get(entitlement) else { continue };
                match inheritance::inheritance(key) {
                    Inheritance::Never => {}
                    Inheritance::Transitive => {
                        // In a cycle a group reaches itself; nobody is a member of themselves
                        // (Graph's `transitiveMembers` leaves the group out too).
                        let itself = group_of_membership.get(entitlement);
                        for member in transitive.iter().filter(|m| Some(*m) != itself) {
                            desired.insert((*entitlement, *member, *group), (*expires_at, None, None));
                        }
                    }
                    Inheritance::DirectMembers => {
                        let reached = direct.iter().map(|m| (*m, Reach::Direct, None));
                        let reached =
                            reached.chain(nested.iter().map(|(m, through)| (*m, Reach::Nested, Some(*through))));
                        for (member, reach, through) in reached {
                            let slot = (*entitlement, member, *group);
                            match inheritance::effect(key, kind_of(member), reach) {
                                None => {}
                                // Effective through any path wins over being listed elsewhere.
                                Some(Effect::Effective) => {
                                    desired.insert(slot, (*expires_at, None, None));
                                }
                                Some(Effect::Ineffective(reason)) => {
                                    desired.entry(slot).or_insert((*expires_at, Some(reason), through));
                                }
                            }
                        }
                    }
                }
            }
        }
        drop(members);

        // What is stored now.
        let mut counts = KindCounts::default();
        let mut to_end = Vec::new();
        let mut to_update = Vec::new();
        // Effective rows (nearly all of them) are read and written with the few columns they
        // use, the ineffective ones with their reason and nested group as well: at a million
        // rows the two columns more per row are a measurable part of a sync.
        let mut compare = |id: i64, key: (i64, i64, i64), stored: Derived| match desired.remove(&key) {
            None => to_end.push(GrantId(id)),
            Some(wanted) if wanted != stored => to_update.push((id, wanted)),
            Some(_) => counts.unchanged += 1,
        };
        let effective = |sql: &mut Sql| {
            sql.push("source = 'inherited' AND ineffective_reason IS NULL");
        };
        let columns = ["entitlement_id", "principal_id", "via_principal_id", "expires_at"];
        scan_current(&self.db, backend, connector, effective, &columns, |row: (i64, i64, i64, i64, Expiry)| {
            let (id, entitlement, principal, via, expiry) = row;
            compare(id, (entitlement, principal, via), (expiry, None, None));
        })
        .await?;
        let ineffective = |sql: &mut Sql| {
            sql.push("source = 'inherited' AND ineffective_reason IS NOT NULL");
        };
        let columns = [
            "entitlement_id",
            "principal_id",
            "via_principal_id",
            "expires_at",
            "ineffective_reason",
            "through_principal_id",
        ];
        type StoredRow = (i64, i64, i64, i64, Expiry, Option<String>, Option<i64>);
        scan_current(&self.db, backend, connector, ineffective, &columns, |row: StoredRow| {
            let (id, entitlement, principal, via, expiry, reason, through) = row;
            compare(id, (entitlement, principal, via), (expiry, reason.and_then(|r| r.parse().ok()), through));
        })
        .await?;

        let txn = self.begin_write().await?;
        let (plain, marked): (Vec<_>, Vec<_>) = desired.into_iter().partition(|(_, (_, reason, _))| reason.is_none());
        let plain: Vec<(i64, i64, i64, Option<String>)> =
            plain.into_iter().map(|((e, m, via), (expiry, _, _))| (e, m, via, expiry.map(timestamp_text))).collect();
        type MarkedRow = (i64, i64, i64, Option<String>, Option<&'static str>, Option<i64>);
        let marked: Vec<MarkedRow> = marked
            .into_iter()
            .map(|((e, m, via), (expiry, reason, through))| {
                (e, m, via, expiry.map(timestamp_text), reason.map(IneffectiveReason::as_str), through)
            })
            .collect();
        let inserted = plain.len() + marked.len();
        for chunk in plain.chunks(BATCH) {
            txn.execute_raw(insert_inherited(backend, connector, now, json(chunk)?, false)).await?;
        }
        for chunk in marked.chunks(BATCH) {
            txn.execute_raw(insert_inherited(backend, connector, now, json(chunk)?, true)).await?;
        }
        for (id, (expiry, reason, through)) in &to_update {
            let mut sql = Sql::new(backend, "UPDATE grants SET expires_at = ");
            sql.value(*expiry).push(", ineffective_reason = ").value(reason.map(|r| r.as_str().to_owned()));
            sql.push(", through_principal_id = ").value(*through).push(" WHERE id = ").value(*id);
            txn.execute_raw(sql.build()).await?;
        }
        let mut sql = Sql::new(backend, "UPDATE connectors SET inherited_rules = ");
        sql.value(inheritance::RULES_VERSION).push(" WHERE id = ").value(connector.0);
        txn.execute_raw(sql.build()).await?;
        txn.commit().await?;
        self.statistics.record(&self.db, "grants", inserted as u64).await?;
        let last_synced = self.connectors().get_connector(connector).await?.last_synced_at();
        counts.added = inserted as u64;
        counts.changed = to_update.len() as u64;
        counts.removed = self.end_grants(&to_end, now, last_synced).await?;
        Ok(counts)
    }
}

impl Grants<'_> {
    /// Whether the connector's inherited grants were derived by this build's rules (an upgrade
    /// that changed them derives them again at the next sync).
    pub async fn inherited_rules_are_current(self, connector: ConnectorId) -> Result<bool, StoreError> {
        let mut sql = Sql::new(self.backend(), "SELECT inherited_rules FROM connectors WHERE id = ");
        sql.value(connector.0);
        let rows: Vec<(i32,)> = select_json(&self.db, sql, &["inherited_rules"]).await?;
        Ok(rows.first().is_some_and(|(v,)| *v == inheritance::RULES_VERSION))
    }
}

/// The statement inserting a batch of inherited grants (JSON rows of entitlement, principal,
/// via, expiry, and with `marked` the ineffective reason and the nested group).
fn insert_inherited(
    backend: sea_orm::DbBackend,
    connector: ConnectorId,
    now: DateTime<Utc>,
    rows: String,
    marked: bool,
) -> sea_orm::Statement {
    let j = JsonRows::new(backend);
    let extra = if marked { ", ineffective_reason, through_principal_id" } else { "" };
    let mut sql = Sql::new(
        backend,
        &format!(
            "INSERT INTO grants (connector_id, entitlement_id, principal_id, source, via_principal_id, scope, \
             first_seen_at, last_seen_at, expires_at{extra}) SELECT "
        ),
    );
    sql.value(connector.0);
    sql.push(&format!(", {}, {}, ", j.get(0, "bigint"), j.get(1, "bigint")));
    sql.value(GrantSource::Inherited.as_str()).push(&format!(", {}, '', ", j.get(2, "bigint")));
    sql.value(now).push(", ").value(now).push(&format!(", {}", j.get(3, "timestamptz")));
    if marked {
        sql.push(&format!(", {}, {}", j.get(4, "text"), j.get(5, "bigint")));
    }
    sql.push(" FROM ");
    j.from(&mut sql, rows);
    sql.build()
}

impl Grants<'_> {
    /// Forgets which rules derived the connector's inherited grants, so the next sync derives
    /// them again whatever else it finds (what an upgrade that changes the rules amounts to).
    pub async fn forget_inherited_rules(self, connector: ConnectorId) -> Result<(), StoreError> {
        let mut sql = Sql::new(self.backend(), "UPDATE connectors SET inherited_rules = 0 WHERE id = ");
        sql.value(connector.0);
        self.db.execute_raw(sql.build()).await?;
        Ok(())
    }
}

/// A group's direct members, and the members of the groups nested in it (at any depth) each
/// with the nested group among the direct members they are reached through; `group` itself and
/// its direct members are never listed as nested.
fn direct_and_nested_members(
    group: i64,
    members: &HashMap<i64, Vec<i64>>,
    groups: &HashSet<i64>,
) -> (Vec<i64>, Vec<(i64, i64)>) {
    let direct: Vec<i64> = members.get(&group).cloned().unwrap_or_default();
    let mut listed: HashSet<i64> = direct.iter().copied().collect();
    listed.insert(group);
    let mut nested = Vec::new();
    for through in direct.iter().filter(|m| groups.contains(m)) {
        for member in transitive_members(*through, members) {
            if listed.insert(member) {
                nested.push((member, *through));
            }
        }
    }
    (direct, nested)
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

    #[test]
    fn nested_members_name_the_direct_member_group_they_come_through() {
        // 1 ⊃ {10, 2}; 2 ⊃ {11, 3, 10}; 3 ⊃ {12, 1} (a cycle back to 1)
        let members = HashMap::from([(1, vec![10, 2]), (2, vec![11, 3, 10]), (3, vec![12, 1])]);
        let groups = HashSet::from([1, 2, 3]);
        let (direct, mut nested) = direct_and_nested_members(1, &members, &groups);
        nested.sort();
        assert_eq!(direct, vec![10, 2]);
        // 10 is direct (not also nested), 1 is the group itself.
        assert_eq!(nested, vec![(3, 2), (11, 2), (12, 2)]);
    }
}

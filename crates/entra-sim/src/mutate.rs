//! `/_sim/mutate`: random, seeded changes of every kind, for delta and incremental-sync
//! tests. Every change goes through [`crate::changes`], so it obeys the same rules as a Graph
//! write and shows up in delta exactly as one would.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Duration, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::changes::DEFAULT_ACCESS_ROLE;
use crate::error::GraphError;
use crate::journal::Relation;
use crate::state::Sim;
use crate::tenant::{Group, RoleEligibility, Tenant, User};

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct MutateRequest {
    pub seed: u64,
    /// Changes of each kind.
    pub count: usize,
}

/// How many changes of each kind were applied (a kind may fall short when the tenant has
/// nothing left to change, e.g. no deleted user to restore).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MutateReport {
    pub applied: BTreeMap<String, usize>,
    /// The journal version after the changes.
    pub version: u64,
}

/// The kinds of change, in the order they are applied.
pub const KINDS: &[&str] = &[
    "user_created",
    "user_updated",
    "user_disabled",
    "user_enabled",
    "manager_changed",
    "user_deleted",
    "user_restored",
    "user_purged",
    "group_created",
    "group_updated",
    "group_deleted",
    "member_added",
    "member_removed",
    "owner_added",
    "owner_removed",
    "app_role_assigned",
    "app_role_unassigned",
    "role_assigned",
    "role_unassigned",
    "eligibility_added",
    "eligibility_removed",
];

fn uuid(rng: &mut SmallRng) -> String {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid().to_string()
}

fn pick<T: Clone>(rng: &mut SmallRng, items: &[T]) -> Option<T> {
    (!items.is_empty()).then(|| items[rng.random_range(0..items.len())].clone())
}

fn live_user_ids(t: &Tenant) -> Vec<String> {
    t.live_users().map(|u| u.id.clone()).collect()
}

/// Groups whose membership Graph lets an application change.
fn writable_groups(t: &Tenant) -> Vec<String> {
    t.live_groups().filter(|g| g.accepts_membership_writes()).map(|g| g.id.clone()).collect()
}

/// What changes pick from, gathered once per kind (not per change: a tenant may hold 100k
/// users). A pick that went stale meanwhile is refused by the rules and simply retried.
struct Pools {
    users: Vec<String>,
    writable_groups: Vec<String>,
}

/// Tries one change of `kind`; `Ok(false)` when there was nothing to change.
fn apply_one(
    t: &mut Tenant,
    rng: &mut SmallRng,
    kind: &str,
    pools: &Pools,
    now: DateTime<Utc>,
) -> Result<bool, GraphError> {
    let users = &pools.users;
    match kind {
        "user_created" => {
            let n = t.users.len();
            let manager = pick(rng, users);
            let user = User {
                id: uuid(rng),
                display_name: format!("New Hire {n}"),
                given_name: Some("New".into()),
                surname: Some(format!("Hire {n}")),
                user_principal_name: format!("new.hire{n}@{}", t.domain),
                mail: Some(format!("new.hire{n}@{}", t.domain)),
                business_phones: Vec::new(),
                mobile_phone: None,
                job_title: Some("Associate".into()),
                department: Some("Operations".into()),
                office_location: None,
                usage_location: Some("US".into()),
                employee_id: Some(format!("N{n:06}")),
                account_enabled: true,
                user_type: "Member".into(),
                created: now,
                manager,
                sign_in_activity: None,
                password_changed: None,
                force_change_password_next_sign_in: false,
                sign_in_sessions_valid_from: None,
                deleted: None,
                purged: false,
            };
            t.add_user(user);
            Ok(true)
        }
        "user_updated" => {
            let Some(id) = pick(rng, users) else { return Ok(false) };
            let department = ["Engineering", "Finance", "Sales", "Legal"][rng.random_range(0..4)].to_owned();
            let title = format!("Title {}", rng.random_range(0..1000));
            t.update_user(&id, |u| {
                let mut changed = vec!["jobTitle"];
                u.job_title = Some(title);
                if u.department.as_deref() != Some(department.as_str()) {
                    u.department = Some(department);
                    changed.push("department");
                }
                changed
            })?;
            Ok(true)
        }
        "user_disabled" | "user_enabled" => {
            let target = kind == "user_enabled";
            let candidates: Vec<String> =
                t.live_users().filter(|u| u.account_enabled != target).map(|u| u.id.clone()).collect();
            let Some(id) = pick(rng, &candidates) else { return Ok(false) };
            t.update_user(&id, |u| {
                u.account_enabled = target;
                vec!["accountEnabled"]
            })?;
            Ok(true)
        }
        "manager_changed" => {
            let (Some(id), Some(manager)) = (pick(rng, users), pick(rng, users)) else { return Ok(false) };
            if id == manager {
                return Ok(false);
            }
            t.set_manager(&id, Some(&manager))?;
            Ok(true)
        }
        "user_deleted" => {
            let Some(id) = pick(rng, users) else { return Ok(false) };
            t.delete_user(&id, now)?;
            Ok(true)
        }
        "user_restored" | "user_purged" => {
            let deleted: Vec<String> =
                t.users.iter().filter(|u| u.deleted.is_some() && !u.purged).map(|u| u.id.clone()).collect();
            let Some(id) = pick(rng, &deleted) else { return Ok(false) };
            if kind == "user_restored" {
                t.restore(&id)?;
            } else {
                t.purge(&id, now);
            }
            Ok(true)
        }
        "group_created" => {
            let n = t.groups.len();
            let members: Vec<String> = (0..rng.random_range(1..=10)).filter_map(|_| pick(rng, users)).collect();
            let mut unique = Vec::new();
            for m in members {
                if !unique.contains(&m) {
                    unique.push(m);
                }
            }
            let owners = pick(rng, users).into_iter().collect();
            t.add_group(Group {
                id: uuid(rng),
                display_name: format!("Project {n}"),
                description: Some(format!("Project group {n}")),
                group_types: vec![],
                mail_enabled: false,
                security_enabled: true,
                is_assignable_to_role: None,
                membership_rule: None,
                on_premises_sync_enabled: None,
                mail: None,
                mail_nickname: format!("project{n}"),
                created: now,
                members: unique,
                owners,
                deleted: None,
                purged: false,
            });
            Ok(true)
        }
        "group_updated" => {
            let groups: Vec<String> = t.live_groups().map(|g| g.id.clone()).collect();
            let Some(id) = pick(rng, &groups) else { return Ok(false) };
            let description = format!("Updated description {}", rng.random_range(0..1000));
            t.update_group(&id, |g| {
                g.description = Some(description);
                vec!["description"]
            })?;
            Ok(true)
        }
        "group_deleted" => {
            let Some(id) = pick(rng, &pools.writable_groups) else { return Ok(false) };
            t.delete_group(&id, now)?;
            Ok(true)
        }
        "member_added" | "owner_added" => {
            let relation = if kind == "member_added" { Relation::Members } else { Relation::Owners };
            let (Some(group), Some(user)) = (pick(rng, &pools.writable_groups), pick(rng, users)) else {
                return Ok(false);
            };
            Ok(t.add_group_link(&group, relation, &user).is_ok())
        }
        "member_removed" | "owner_removed" => {
            let relation = if kind == "member_removed" { Relation::Members } else { Relation::Owners };
            let Some(group) = pick(rng, &pools.writable_groups) else { return Ok(false) };
            let links = t
                .group(&group)
                .map(|g| if relation == Relation::Members { g.members.clone() } else { g.owners.clone() });
            let Some(target) = pick(rng, &links.unwrap_or_default()) else { return Ok(false) };
            Ok(t.remove_group_link(&group, relation, &target).is_ok())
        }
        "app_role_assigned" => {
            let apps: Vec<(String, Vec<String>)> = t
                .live_service_principals()
                .filter(|s| {
                    s.service_principal_type == "Application"
                        && s.app_owner_organization_id.as_deref() == Some(t.id.as_str())
                })
                .map(|s| (s.id.clone(), s.app_roles.iter().map(|r| r.id.clone()).collect()))
                .collect();
            let (Some((app, mut roles)), Some(user)) = (pick(rng, &apps), pick(rng, users)) else { return Ok(false) };
            roles.push(DEFAULT_ACCESS_ROLE.to_owned());
            let role = pick(rng, &roles).unwrap_or_default();
            let id = crate::generate::assignment_id(rng);
            Ok(t.assign_app_role(&app, &user, &role, id, now).is_ok())
        }
        "app_role_unassigned" => {
            let assignments: Vec<(String, String)> =
                t.app_role_assignments.iter().map(|a| (a.resource_id.clone(), a.id.clone())).collect();
            let Some((resource, id)) = pick(rng, &assignments) else { return Ok(false) };
            Ok(t.remove_app_role_assignment(&resource, &id).is_ok())
        }
        "role_assigned" | "eligibility_added" => {
            let roles: Vec<String> = t.role_definitions.iter().map(|d| d.id.clone()).collect();
            let (Some(role), Some(user)) = (pick(rng, &roles), pick(rng, users)) else { return Ok(false) };
            if kind == "role_assigned" {
                let id = format!("{}-1", crate::generate::assignment_id(rng));
                Ok(t.add_role_assignment((&role, &user, "/"), None, id).is_ok())
            } else {
                let end = rng.random_bool(0.5).then(|| now + Duration::days(rng.random_range(30..180)));
                let eligibility = RoleEligibility {
                    id: uuid(rng),
                    role_definition_id: role,
                    principal_id: user,
                    directory_scope_id: "/".into(),
                    start: now,
                    end,
                };
                Ok(t.add_role_eligibility(eligibility).is_ok())
            }
        }
        "role_unassigned" => {
            let ids: Vec<String> = t.role_assignments.iter().map(|a| a.id.clone()).collect();
            let Some(id) = pick(rng, &ids) else { return Ok(false) };
            t.remove_role_assignment(&id)?;
            Ok(true)
        }
        "eligibility_removed" => {
            let Some(eligibility) = pick(rng, &t.role_eligibilities) else { return Ok(false) };
            t.remove_role_eligibility(eligibility.key())?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Applies `count` changes of every kind, deterministic from `seed` and the tenant.
pub fn mutate(t: &mut Tenant, seed: u64, count: usize, now: DateTime<Utc>) -> MutateReport {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut report = MutateReport::default();
    for kind in KINDS {
        let pools = Pools { users: live_user_ids(t), writable_groups: writable_groups(t) };
        let mut applied = 0;
        // A few attempts per change: a random pick can be refused (already a member...).
        for _ in 0..count * 4 {
            if applied == count {
                break;
            }
            if matches!(apply_one(t, &mut rng, kind, &pools, now), Ok(true)) {
                applied += 1;
            }
        }
        report.applied.insert((*kind).to_owned(), applied);
    }
    report.version = t.journal.version();
    report
}

/// `POST /_sim/mutate` with `{"seed": S, "count": N}`.
pub(crate) async fn handler(State(sim): State<Arc<Sim>>, Json(request): Json<MutateRequest>) -> Json<MutateReport> {
    let now = sim.now();
    Json(sim.write(|t| mutate(t, request.seed, request.count, now)))
}

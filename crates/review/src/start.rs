//! Starting an instance: the grants in scope as they are now become items, each with the
//! reviewers resolved now and a recommendation with its reason. Later changes to the graph or
//! to managers apply to the next instance.

use std::collections::{HashMap, HashSet};

use attest_domain::command::{RevokeTarget, revoke_action};
use attest_domain::resource::group_managed_elsewhere;
use attest_domain::review::{
    CampaignDefinition, CampaignState, EntitlementKind, Facts, PeerFacts, Person, PrincipalScope, Recommendation,
    ReviewerChoice, ReviewerMode, Reviewers, choose_reviewers, recommend,
};
use attest_domain::{ChangeAction, ConnectorId, EntitlementKey, GrantSource, PrincipalKind, ResourceKind, UserType};
use attest_store::{GrantScope, Instance, NewItem, ScopedGrant, Store};
use chrono::{DateTime, Duration, Utc};

use crate::{ReviewError, definition_of};

/// What starting did.
#[derive(Debug, Clone)]
pub struct Started {
    pub instance: Instance,
    pub items: usize,
    /// Distinct reviewers.
    pub reviewers: usize,
    /// Items Attest recommends revoking (what a default decision of "recommendation" would
    /// remove).
    pub recommended_revoke: usize,
    /// Where the time went: reading the grants in scope, resolving reviewers and
    /// recommendations, writing the items.
    pub took: StartTimings,
}

/// How long each part of a start took.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartTimings {
    pub read: std::time::Duration,
    pub resolve: std::time::Duration,
    pub write: std::time::Duration,
}

/// Starts the next instance of campaign `id`.
pub async fn start(store: &Store, id: i64, started_by: &str, now: DateTime<Utc>) -> Result<Started, ReviewError> {
    let campaign = store.reviews().get_campaign(id).await?;
    if let Some(instance) = campaign.instance.as_ref().filter(|i| i.state == CampaignState::Running) {
        return Err(ReviewError::NotStartable(format!(
            "instance {} is still running (until {}); close it first",
            instance.number,
            instance.due_at.format("%Y-%m-%d %H:%M UTC")
        )));
    }
    let definition = definition_of(&campaign)?;
    let scope = &definition.scope;
    let connector = campaign.connector_id;
    let number = campaign.instance.as_ref().map_or(1, |i| i.number + 1);
    let sign_ins_known = sign_ins_known(store, connector).await?;
    if scope.principals == PrincipalScope::Inactive && !sign_ins_known {
        return Err(ReviewError::NotStartable(
            "principals = \"inactive\" needs sign-in activity, which this connector's sync does not read \
             (it needs an Entra ID P1 or P2 licence and the AuditLog.Read.All permission)"
                .into(),
        ));
    }

    let clock = std::time::Instant::now();
    let mut took = StartTimings::default();
    let rows = entitled_grants(store, connector, &definition).await?;

    // Peers: who in each department holds each entitlement (before the principal filter, so a
    // guests-only review still compares with everyone).
    let departments = store.reviews().department_sizes(connector).await?;
    let mut holders: HashMap<(i64, String), HashSet<i64>> = HashMap::new();
    for g in &rows {
        if let Some(department) = &g.department {
            holders.entry((g.entitlement_id, department.clone())).or_default().insert(g.principal_id);
        }
    }

    let admitted = admitted(&definition, now);
    let rows: Vec<ScopedGrant> = rows.into_iter().filter(|g| admitted(g)).collect();
    if rows.is_empty() {
        return Err(ReviewError::NotStartable(
            "nothing is in scope: no current grant matches the campaign's resources, entitlements and principals"
                .into(),
        ));
    }

    // Reviewers, resolved now: every stage's (a later stage reviews what the one before lets
    // through, but who that would be is fixed at start like the rest of the snapshot).
    let stages: Vec<Reviewers> = (1..=definition.settings.stages).map(|s| definition.stage_reviewers(s)).collect();
    let any_stage = |mode: ReviewerMode| stages.iter().any(|r| r.mode == mode);
    let managers: HashMap<String, Person> = if any_stage(ReviewerMode::Manager) {
        let ids: Vec<String> =
            rows.iter().filter_map(|g| g.manager_object.clone()).collect::<HashSet<_>>().into_iter().collect();
        store.reviews().people(connector, &ids).await?.into_iter().map(|p| (p.object_id.clone(), p)).collect()
    } else {
        HashMap::new()
    };
    let owners = if any_stage(ReviewerMode::ResourceOwner) {
        store.reviews().resource_owners(connector).await?
    } else {
        HashMap::new()
    };
    let mut people = Vec::with_capacity(stages.len());
    for (i, reviewers) in stages.iter().enumerate() {
        let field = if i == 0 { "reviewers" } else { "later_stages" };
        let named = people_or_groups(store, connector, &reviewers.named, &format!("{field}.named")).await?;
        let fallback = people_or_groups(store, connector, &reviewers.fallback, &format!("{field}.fallback")).await?;
        people.push((named, fallback));
    }
    let owned_apps: HashSet<String> = store.reviews().owned_principals(connector).await?.into_iter().collect();
    let inherited: Vec<i64> = rows.iter().filter(|g| g.source == "inherited").map(|g| g.principal_id).collect();
    let direct: HashSet<(i64, String)> = if inherited.is_empty() {
        HashSet::new()
    } else {
        store.reviews().direct_memberships(connector, &inherited).await?.into_iter().collect()
    };

    let stage_due_at = now + definition.duration()?;
    let due_at = now + definition.total_duration()?;
    let last = definition.schedule.ends_after.is_some_and(|n| u32::try_from(number).unwrap_or(u32::MAX) >= n);
    let next_start = if last { None } else { definition.schedule.recurrence.next_start(now) };
    took.read = clock.elapsed();

    // Reviewers and recommendations are worked out on a thread of their own while the store
    // writes the batches already done: the two overlap instead of adding up. An item nobody
    // may review stops the writing, and the transaction is rolled back.
    let resolver = Resolver {
        stages,
        people,
        managers,
        owners,
        departments,
        holders,
        owned_apps,
        direct,
        sign_ins_known,
        now,
        lookback_days: definition.settings.recommendation_lookback_days,
    };
    let (batches, mut received) = tokio::sync::mpsc::channel::<Result<Vec<NewItem>, String>>(2);
    let producer = tokio::task::spawn_blocking(move || resolver.run(rows, &batches));
    let stored = store
        .reviews()
        .start_instance(
            campaign.id,
            number,
            started_by,
            i32::from(definition.settings.stages),
            stage_due_at,
            due_at,
            sign_ins_known,
            &mut received,
            next_start,
            now,
        )
        .await;
    drop(received);
    let resolved = producer.await.map_err(|e| ReviewError::NotStartable(format!("resolving reviewers failed: {e}")))?;
    let resolved = resolved.map_err(ReviewError::NotStartable)?;
    let instance = stored?;
    took.resolve = resolved.busy;
    took.write = clock.elapsed() - took.read;
    tracing::info!(
        campaign = campaign.id,
        items = resolved.items,
        read_ms = took.read.as_millis() as u64,
        resolve_ms = took.resolve.as_millis() as u64,
        write_ms = took.write.as_millis() as u64,
        "campaign instance started"
    );
    Ok(Started {
        instance,
        items: resolved.items,
        reviewers: resolved.reviewers,
        recommended_revoke: resolved.recommended_revoke,
        took,
    })
}

/// Items per batch handed to the store.
const BATCH: usize = 10_000;

/// Everything resolving an item needs, read once at start.
struct Resolver {
    stages: Vec<Reviewers>,
    /// Each stage's named people and fallback.
    people: Vec<(Vec<Person>, Vec<Person>)>,
    managers: HashMap<String, Person>,
    owners: HashMap<i64, Vec<Person>>,
    departments: HashMap<String, u64>,
    holders: HashMap<(i64, String), HashSet<i64>>,
    owned_apps: HashSet<String>,
    direct: HashSet<(i64, String)>,
    sign_ins_known: bool,
    now: DateTime<Utc>,
    lookback_days: u32,
}

/// What resolving found, besides the items it handed over.
struct Resolved {
    items: usize,
    reviewers: usize,
    recommended_revoke: usize,
    /// Time spent resolving (it ran alongside the writing).
    busy: std::time::Duration,
}

impl Resolver {
    /// Resolves every grant into an item, handing them over in batches; an error (sent, and
    /// returned) says which items would have no reviewer.
    fn run(
        self,
        rows: Vec<ScopedGrant>,
        batches: &tokio::sync::mpsc::Sender<Result<Vec<NewItem>, String>>,
    ) -> Result<Resolved, String> {
        let started = std::time::Instant::now();
        // Time spent waiting for the store to take a batch is not resolving.
        let mut waiting = std::time::Duration::ZERO;
        let mut unresolved = Vec::new();
        let mut reviewers = HashSet::new();
        let (mut items, mut recommended_revoke) = (0, 0);
        let mut batch = Vec::with_capacity(BATCH);
        for g in rows {
            match self.item(g) {
                Ok(item) => {
                    items += 1;
                    recommended_revoke += usize::from(item.recommendation == Recommendation::Revoke);
                    for r in &item.reviewers {
                        if !reviewers.contains(&r.object_id) {
                            reviewers.insert(r.object_id.to_lowercase());
                        }
                    }
                    batch.push(item);
                }
                Err(what) => unresolved.push(what),
            }
            if batch.len() == BATCH && unresolved.is_empty() {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                let handed = std::time::Instant::now();
                if batches.blocking_send(Ok(full)).is_err() {
                    // The store stopped (it failed, and says why): nothing more to hand over.
                    let busy = started.elapsed().saturating_sub(waiting);
                    return Ok(Resolved { items, reviewers: reviewers.len(), recommended_revoke, busy });
                }
                waiting += handed.elapsed();
            }
        }
        if !unresolved.is_empty() {
            let shown: Vec<&str> = unresolved.iter().take(5).map(String::as_str).collect();
            let more = unresolved.len().saturating_sub(shown.len());
            let message = format!(
                "{} item(s) would have no reviewer (the person reviewed cannot review themselves, and the fallback \
                 names nobody else): {}{}; add a fallback reviewer",
                unresolved.len(),
                shown.join("; "),
                if more > 0 { format!(" and {more} more") } else { String::new() }
            );
            let _ = batches.blocking_send(Err(message.clone()));
            return Err(message);
        }
        let busy = started.elapsed().saturating_sub(waiting);
        if !batch.is_empty() {
            let _ = batches.blocking_send(Ok(batch));
        }
        // The end: the store commits only on this.
        let _ = batches.blocking_send(Ok(Vec::new()));
        Ok(Resolved { items, reviewers: reviewers.len(), recommended_revoke, busy })
    }

    /// One grant's item, or which item would have no reviewer.
    fn item(&self, g: ScopedGrant) -> Result<NewItem, String> {
        let kind: PrincipalKind = g.principal_kind.parse().unwrap_or(PrincipalKind::User);
        let themselves = (kind == PrincipalKind::User).then(|| Person {
            object_id: g.principal_object.clone(),
            name: g.principal_name.clone(),
            email: g.principal_email.clone().or(g.principal_upn.clone()),
        });
        let no_owners = Vec::new();
        let mut chosen = Vec::with_capacity(self.stages.len());
        for (stage, (reviewers, (named, fallback))) in self.stages.iter().zip(&self.people).enumerate() {
            let choice = ReviewerChoice {
                mode: reviewers.mode,
                principal: &g.principal_object,
                manager: g.manager_object.as_ref().and_then(|m| self.managers.get(m)),
                owners: self.owners.get(&g.resource_id).unwrap_or(&no_owners),
                named,
                themselves: themselves.as_ref(),
                fallback,
            };
            match choose_reviewers(&choice) {
                Ok(found) => chosen.push(found),
                Err(_) => {
                    let which = if self.stages.len() > 1 { format!(" in stage {}", stage + 1) } else { String::new() };
                    return Err(format!("{} on {} ({}){which}", g.principal_name, g.resource_name, g.entitlement_name));
                }
            }
        }
        let later_reviewers = chosen.split_off(1);
        let chosen = chosen.pop().unwrap_or_default();
        let peers = g.department.as_deref().and_then(|d| {
            let size = *self.departments.get(d)?;
            let holding = self.holders.get(&(g.entitlement_id, d.to_owned())).map_or(0, HashSet::len) as u64;
            Some(PeerFacts { department: d, department_size: size, holders: holding })
        });
        let facts = Facts {
            kind,
            user_type: g.user_type.as_deref().and_then(|t| t.parse().ok()),
            account_enabled: g.account_enabled,
            // Sign-ins are read for users; applications' sign-ins are not synced.
            sign_ins_known: self.sign_ins_known && kind == PrincipalKind::User,
            last_sign_in: g.last_sign_in_at,
            created: g.created_in_source_at,
            has_owner: self.owned_apps.contains(&g.principal_object),
            peers,
            now: self.now,
            lookback_days: self.lookback_days,
        };
        let (recommendation, reason) = recommend(&facts);
        let (revoke, blocked) = revocation(&g, &self.direct);
        Ok(NewItem {
            grant_id: g.grant_id,
            principal_id: g.principal_id,
            principal_object: g.principal_object,
            principal_name: g.principal_name,
            principal_upn: g.principal_upn,
            principal_kind: g.principal_kind,
            resource_id: g.resource_id,
            resource_object: g.resource_object,
            resource_name: g.resource_name,
            resource_kind: g.resource_kind,
            entitlement_key: g.entitlement_key,
            entitlement_name: g.entitlement_name,
            held_as: g.source,
            via_name: g.via_name,
            revoke_action: revoke.map(|a| serde_json::to_string(&a).unwrap_or_default()),
            revoke_blocked: blocked,
            recommendation,
            recommendation_reason: reason,
            reviewers: chosen,
            later_reviewers,
        })
    }
}

/// How many items starting `campaign` now would snapshot: its grants in scope. What the
/// campaign's page warns of before a start that could revoke by itself.
pub async fn in_scope(
    store: &Store,
    campaign: &attest_store::Campaign,
    definition: &CampaignDefinition,
    now: DateTime<Utc>,
) -> Result<usize, ReviewError> {
    let admitted = admitted(definition, now);
    Ok(entitled_grants(store, campaign.connector_id, definition).await?.iter().filter(|g| admitted(g)).count())
}

/// The current grants on the scope's resources of the scope's entitlements, whoever holds them.
async fn entitled_grants(
    store: &Store,
    connector: ConnectorId,
    definition: &CampaignDefinition,
) -> Result<Vec<ScopedGrant>, ReviewError> {
    let scope = &definition.scope;
    let kinds: Vec<&str> = scope.resource_kinds.iter().map(|k| k.as_str()).collect();
    let resources = resolve_resources(store, connector, &scope.resource_kinds, &scope.resources).await?;
    let grant_scope = GrantScope {
        resource_kinds: &kinds,
        resources: resources.as_deref(),
        include_inherited: scope.include_inherited,
    };
    let mut rows = store.reviews().scope_snapshot(connector, &grant_scope).await?;
    rows.retain(|g| {
        g.entitlement_key
            .parse::<EntitlementKey>()
            .is_ok_and(|key| scope.entitlements.contains(&EntitlementKind::of(&key)))
    });
    Ok(rows)
}

/// Whether the scope's `principals` takes in a grant's holder, as of `now`.
fn admitted(definition: &CampaignDefinition, now: DateTime<Utc>) -> impl Fn(&ScopedGrant) -> bool + '_ {
    let scope = &definition.scope;
    let inactive_since = scope.inactive_days.map(|d| now - Duration::days(i64::from(d)));
    move |g: &ScopedGrant| {
        let kind: Option<PrincipalKind> = g.principal_kind.parse().ok();
        let Some(kind) = kind.filter(|k| scope.principals.admits_kind(*k)) else { return false };
        match scope.principals {
            PrincipalScope::Guests => g.user_type.as_deref() == Some(UserType::Guest.as_str()),
            PrincipalScope::Disabled => g.account_enabled == Some(false),
            PrincipalScope::Inactive => {
                let since = inactive_since.unwrap_or(now);
                let old_enough = g.created_in_source_at.is_none_or(|c| c < since);
                old_enough && g.last_sign_in_at.is_none_or(|at| at < since)
            }
            _ => kind != PrincipalKind::Group,
        }
    }
}

/// Whether the connector's latest finished sync read sign-in activity.
async fn sign_ins_known(store: &Store, connector: ConnectorId) -> Result<bool, ReviewError> {
    let runs = store.syncs().list_sync_runs(connector, 20).await?;
    let latest = runs.iter().find(|r| r.finished_at.is_some());
    Ok(latest.is_some_and(|r| !r.notes.iter().any(|n| n.starts_with(attest_domain::sync::SIGN_IN_ACTIVITY_SKIPPED))))
}

/// The resources a scope names (object ids or exact display names), or `None` for all.
async fn resolve_resources(
    store: &Store,
    connector: ConnectorId,
    kinds: &[ResourceKind],
    named: &[String],
) -> Result<Option<Vec<i64>>, ReviewError> {
    if named.is_empty() {
        return Ok(None);
    }
    let mut ids = Vec::new();
    for name in named {
        let mut found = Vec::new();
        for kind in kinds {
            found.extend(store.directory().find_resources_named(connector, *kind, name).await?);
        }
        if found.is_empty() {
            return Err(ReviewError::Definition(format!(
                "scope.resources: nothing of the kinds in scope is named '{name}' (by object id or exact display name)"
            )));
        }
        ids.extend(found.iter().map(|r| r.id.0));
    }
    Ok(Some(ids))
}

/// People named by address or object id, or groups (by object id) whose members they are;
/// an entry that finds nobody is an error naming it.
async fn people_or_groups(
    store: &Store,
    connector: ConnectorId,
    entries: &[String],
    field: &str,
) -> Result<Vec<Person>, ReviewError> {
    let mut people = Vec::new();
    for entry in entries {
        let mut found = store.reviews().people_named(connector, std::slice::from_ref(entry)).await?;
        if found.is_empty() {
            found = store.reviews().group_members(connector, std::slice::from_ref(entry)).await?;
        }
        if found.is_empty() {
            return Err(ReviewError::NotStartable(format!(
                "{field}: '{entry}' is neither a user (by email, user principal name or object id) nor a group with members in this connector"
            )));
        }
        people.extend(found);
    }
    Ok(people)
}

/// The change revoking a grant would make, or why none can.
fn revocation(g: &ScopedGrant, direct: &HashSet<(i64, String)>) -> (Option<ChangeAction>, Option<String>) {
    let Ok(key) = g.entitlement_key.parse::<EntitlementKey>() else {
        return (None, Some(format!("unknown entitlement '{}'", g.entitlement_key)));
    };
    if g.source == GrantSource::Inherited.as_str() {
        // Inherited access ends with the person's own membership of the group it comes through.
        return match &g.via_object {
            Some(via) if direct.contains(&(g.principal_id, via.clone())) => {
                (Some(ChangeAction::RemoveGroupMember { group: via.clone(), member: g.principal_object.clone() }), None)
            }
            _ => (
                None,
                Some(format!(
                    "held through nested groups below {}; remove the membership it comes from on the person's page",
                    g.via_name.as_deref().unwrap_or("a group")
                )),
            ),
        };
    }
    let attributes: serde_json::Value = serde_json::from_str(&g.resource_attributes).unwrap_or_default();
    let kind: ResourceKind = match g.resource_kind.parse() {
        Ok(kind) => kind,
        Err(e) => return (None, Some(e.to_string())),
    };
    let managed_elsewhere = if kind == ResourceKind::Group { group_managed_elsewhere(&attributes, &key) } else { None };
    let source: GrantSource = g.source.parse().unwrap_or(GrantSource::Direct);
    let target = RevokeTarget {
        principal: &g.principal_object,
        resource_kind: kind,
        resource: &g.resource_object,
        resource_deleted: false,
        entitlement: &key,
        source,
        scope: &g.scope,
        external_ref: g.external_ref.as_deref(),
        expires_at: g.expires_at,
        ineffective: None,
        managed_elsewhere,
    };
    match revoke_action(&target) {
        Ok(action) => (Some(action), None),
        Err(e) => (None, Some(e.to_string())),
    }
}

//! The graph as canonical lines per kind of fact, in the format of the simulator's
//! `/_sim/truth`: how tests and benchmarks prove a synced graph equals the tenant exactly.

use std::collections::{BTreeMap, HashMap};

use attest_connector::SyncError;
use attest_domain::{ConnectorId, EntitlementKey, GrantSource, Principal, PrincipalKind, ResourceKind};
use attest_store::Store;

/// Canonical lines per kind (`users`, `memberships`, `app_role_assignments`...), sorted.
pub async fn canonical_lines(
    store: &Store,
    connector: ConnectorId,
) -> Result<BTreeMap<&'static str, Vec<String>>, SyncError> {
    let mut principals: HashMap<i64, Principal> = HashMap::new();
    let mut page = 0;
    loop {
        let batch = store.principals().list_principals(connector, None, page, 10_000).await?;
        if batch.is_empty() {
            break;
        }
        principals.extend(batch.into_iter().map(|p| (p.id.0, p)));
        page += 1;
    }
    let resources: HashMap<i64, (ResourceKind, String)> = store
        .resources()
        .list_resources(connector, None)
        .await?
        .into_iter()
        .map(|r| (r.id.0, (r.data.kind, r.data.external_id)))
        .collect();
    let entitlements: HashMap<i64, (i64, EntitlementKey)> = store
        .resources()
        .entitlement_ids_by_key(connector)
        .await?
        .into_iter()
        .map(|((resource, key), id)| (id.0, (resource.0, key)))
        .collect();

    let mut kinds: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for name in [
        "users",
        "groups",
        "service_principals",
        "memberships",
        "group_owners",
        "app_owners",
        "app_role_assignments",
        "role_assignments",
        "role_eligibilities",
    ] {
        kinds.insert(name, Vec::new());
    }
    let mut push = |kind: &'static str, line: String| kinds.entry(kind).or_default().push(line);
    for p in principals.values().filter(|p| p.data.deleted_at.is_none()) {
        let d = &p.data;
        let attribute = |name: &str| d.attributes.get(name).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        match d.kind {
            PrincipalKind::User => {
                let user_type = match d.user_type {
                    Some(attest_domain::UserType::Guest) => "Guest",
                    _ => "Member",
                };
                let upn = d.user_principal_name.as_deref().unwrap_or_default().to_lowercase();
                push("users", format!("{}|{upn}|{}|{user_type}", d.external_id, d.account_enabled.unwrap_or(false)));
            }
            PrincipalKind::Group => push("groups", d.external_id.clone()),
            PrincipalKind::ServicePrincipal | PrincipalKind::ManagedIdentity => push(
                "service_principals",
                format!("{}|{}|{}", d.external_id, attribute("appId"), attribute("servicePrincipalType")),
            ),
        }
    }
    let mut grants = Vec::new();
    store.grants().scan_current_grants(connector, |g| grants.push(g)).await?;
    for g in grants {
        if g.source == GrantSource::Inherited.as_str() {
            continue;
        }
        let (Some((resource, key)), Some(principal)) =
            (entitlements.get(&g.entitlement_id), principals.get(&g.principal_id))
        else {
            continue;
        };
        let Some((kind, resource)) = resources.get(resource) else { continue };
        let who = &principal.data.external_id;
        let reference = g.external_ref.clone().unwrap_or_default();
        match (kind, key) {
            (ResourceKind::Group, EntitlementKey::Member) => push("memberships", format!("{resource}|{who}")),
            (ResourceKind::Group, EntitlementKey::Owner) => push("group_owners", format!("{resource}|{who}")),
            (ResourceKind::Application, EntitlementKey::Owner) => push("app_owners", format!("{resource}|{who}")),
            (ResourceKind::Application, EntitlementKey::AppRole(role)) => {
                push("app_role_assignments", format!("{reference}|{resource}|{role}|{who}"))
            }
            (ResourceKind::DirectoryRole, EntitlementKey::Active) => {
                push("role_assignments", format!("{reference}|{resource}|{who}|{}", g.scope))
            }
            (ResourceKind::DirectoryRole, EntitlementKey::Eligible) => push(
                "role_eligibilities",
                format!("{reference}|{resource}|{who}|{}", g.expires_at.map(|t| t.to_rfc3339()).unwrap_or_default()),
            ),
            _ => {}
        }
    }
    for lines in kinds.values_mut() {
        lines.sort_unstable();
    }
    Ok(kinds)
}

//! The directory browser: people, groups, applications and directory roles, searchable a page
//! at a time; a principal's page with each grant and *why* they hold it (directly, or through
//! which group) plus the side panel of actions; a resource's page with its holders.

use std::collections::HashMap;

use attest_domain::command::{CommandError, revoke_action};
use attest_domain::{
    ChangeAction, EntitlementId, GrantId, GrantSource, IneffectiveReason, Principal, PrincipalId, PrincipalKind,
    Resource, ResourceId, ResourceKind, RevokeImpact,
};
use attest_store::{AccessView, ChangeFilter, HolderView};
use axum::extract::{Path, Query, State};
use axum::response::Html;
use serde::Deserialize;
use serde_json::json;

use super::changes::change_rows;
use super::{PAGE_SIZE, Paged, fetch_page, page, search_text, url_encode, when};
use crate::AppState;
use crate::error::WebError;
use crate::roles::{Allowed, Viewer, rule};

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub q: String,
    pub page: Option<u64>,
}

pub fn principal_json(p: &Principal) -> serde_json::Value {
    json!({
        "id": p.id.0,
        "kind": p.data.kind,
        "external_id": p.data.external_id,
        "display_name": p.data.display_name,
        "user_principal_name": p.data.user_principal_name,
        "email": p.data.email,
        "job_title": p.data.job_title,
        "department": p.data.department,
        "office_location": p.data.office_location,
        "account_enabled": p.data.account_enabled,
        "user_type": p.data.user_type,
        "deleted": p.data.deleted_at.is_some(),
        "last_sign_in_at": when(p.data.last_sign_in_at),
        "first_seen_at": when(Some(p.first_seen_at)),
    })
}

fn resource_json(r: &Resource) -> serde_json::Value {
    json!({
        "id": r.id.0,
        "kind": r.data.kind,
        "kind_label": kind_label(r.data.kind),
        "external_id": r.data.external_id,
        "display_name": r.data.display_name,
        "description": r.data.description,
        "deleted": r.data.deleted_at.is_some(),
    })
}

fn kind_label(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Group => "group",
        ResourceKind::Application => "application",
        ResourceKind::DirectoryRole => "directory role",
    }
}

/// The people directory's data (also `GET /api/v1/people`).
pub async fn people_data(state: &AppState, viewer: &Viewer, query: &ListQuery) -> Result<serde_json::Value, WebError> {
    let q = search_text(&query.q);
    let index = state.caches.people(&state.store).await?;
    let Paged { items: ids, total, page: page_no, pages } = fetch_page(query.page, |offset| {
        let found = index.search(&q, viewer.read_scope(), PAGE_SIZE as usize, offset as usize);
        std::future::ready(Ok::<_, WebError>(found))
    })
    .await?;
    let people = state.store.list_people_rows(&ids).await?;
    Ok(json!({
        "people": people.iter().map(|p| json!({
            "id": p.id.0,
            "display_name": p.display_name,
            "user_principal_name": p.user_principal_name,
            "email": p.email,
            "department": p.department,
            "job_title": p.job_title,
            "account_enabled": p.account_enabled,
            "deleted": p.deleted_at.is_some(),
        })).collect::<Vec<_>>(),
        "total": total, "page": page_no, "pages": pages, "q": q, "q_encoded": url_encode(&q),
    }))
}

/// `GET /people`
pub async fn people(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Html<String>, WebError> {
    let data = people_data(&state, &viewer, &query).await?;
    page(&viewer, "people.html", data)
}

/// Groups, applications or directory roles (also `GET /api/v1/{groups,applications,roles}`).
pub async fn resources_data(
    state: &AppState,
    viewer: &Viewer,
    kind: ResourceKind,
    query: &ListQuery,
) -> Result<serde_json::Value, WebError> {
    let q = search_text(&query.q);
    let Paged { items: found, total, page: page_no, pages } =
        fetch_page(query.page, |offset| state.store.search_resources(kind, &q, viewer.read_scope(), PAGE_SIZE, offset))
            .await?;
    let (title, path) = match kind {
        ResourceKind::Group => ("Groups", "/groups"),
        ResourceKind::Application => ("Applications", "/applications"),
        ResourceKind::DirectoryRole => ("Directory roles", "/roles"),
    };
    let rows: Vec<_> = found
        .iter()
        .map(|s| {
            let mut row = resource_json(&s.resource);
            row["holders"] = json!(s.holders.iter().map(|(k, n)| json!({"kind": k, "count": n})).collect::<Vec<_>>());
            row
        })
        .collect();
    Ok(json!({
        "title": title, "path": path, "resources": rows,
        "total": total, "page": page_no, "pages": pages, "q": q, "q_encoded": url_encode(&q),
    }))
}

async fn resources_page(
    state: AppState,
    viewer: Allowed<rule::DirectoryReader>,
    kind: ResourceKind,
    query: ListQuery,
) -> Result<Html<String>, WebError> {
    let data = resources_data(&state, &viewer, kind, &query).await?;
    page(&viewer, "resources.html", data)
}

/// `GET /groups`
pub async fn groups(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Html<String>, WebError> {
    resources_page(state, viewer, ResourceKind::Group, query).await
}

/// `GET /applications`
pub async fn applications(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Html<String>, WebError> {
    resources_page(state, viewer, ResourceKind::Application, query).await
}

/// `GET /roles`
pub async fn roles(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Html<String>, WebError> {
    resources_page(state, viewer, ResourceKind::DirectoryRole, query).await
}

/// A principal this viewer may read, or 404 (not 403: whether it exists is not theirs to know).
pub async fn readable_principal(state: &AppState, viewer: &Viewer, id: i64) -> Result<Principal, WebError> {
    Ok(readable_principal_with_manager(state, viewer, id).await?.0)
}

/// The same, with their manager.
async fn readable_principal_with_manager(
    state: &AppState,
    viewer: &Viewer,
    id: i64,
) -> Result<(Principal, Option<attest_store::Named<PrincipalId>>), WebError> {
    let not_found = || WebError::NotFound(format!("principal {id} not found"));
    let found = state.store.find_principal_with_manager(PrincipalId(id)).await?.ok_or_else(not_found)?;
    if !viewer.can_read(found.0.connector_id) {
        return Err(not_found());
    }
    Ok(found)
}

/// The change that takes this grant away (the rule is `attest_domain::command`).
pub fn removal(access: &AccessView, principal: &Principal) -> Result<ChangeAction, CommandError> {
    revoke_action(&access.revoke_target(&principal.data.external_id))
}

/// Why a grant is held: its source, and for an inherited one the group it flows through.
fn why_json(source: GrantSource, via: Option<(PrincipalId, &str)>) -> serde_json::Value {
    match (source, via) {
        (GrantSource::Inherited, Some((id, name))) => {
            json!({"kind": "inherited", "via": {"id": id.0, "display_name": name}})
        }
        (source, _) => json!({"kind": source}),
    }
}

/// Why an inherited grant is listed but not effective: the reason in words and the nested
/// group it is listed through (`null` for effective access).
fn ineffective_json(reason: Option<IneffectiveReason>, through: Option<(PrincipalId, &str)>) -> serde_json::Value {
    match reason {
        None => serde_json::Value::Null,
        Some(reason) => json!({
            "reason": reason,
            "explanation": reason.explain(),
            "through": through.map(|(id, name)| json!({"id": id.0, "display_name": name})),
        }),
    }
}

fn access_json(access: &AccessView, removable: bool, revoke: serde_json::Value) -> serde_json::Value {
    let why = why_json(access.grant.source, access.via.as_ref().map(|v| (v.id, v.display_name.as_str())));
    json!({
        "grant_id": access.grant.id.0,
        "resource": {
            "id": access.resource.id.0,
            "kind": access.resource.kind,
            "kind_label": kind_label(access.resource.kind),
            "external_id": access.resource.external_id,
            "display_name": access.resource.display_name,
            "deleted": access.resource.deleted,
        },
        "entitlement": {"key": access.entitlement.id, "display_name": access.entitlement.display_name},
        "why": why,
        "effective": access.grant.ineffective.is_none(),
        "ineffective": ineffective_json(
            access.grant.ineffective,
            access.through.as_ref().map(|t| (t.id, t.display_name.as_str())),
        ),
        "revoke": revoke,
        "scope": access.grant.scope,
        "since": when(Some(access.grant.first_seen_at)),
        "expires_at": when(access.grant.expires_at),
        "removable": removable,
    })
}

/// How many of the other things a revoke ends are named on each row (the count says the rest):
/// one membership can carry hundreds of grants, and every one of them would list the others.
const ALSO_ENDS_NAMED: usize = 10;

/// A principal's access rows by grant, and the first effective row of each entitlement: what
/// [`revoke_json`] names things by, built once per page.
struct AccessIndex<'a> {
    by_grant: HashMap<GrantId, &'a AccessView>,
    by_entitlement: HashMap<EntitlementId, &'a AccessView>,
}

impl<'a> AccessIndex<'a> {
    fn new(all: &'a [AccessView]) -> AccessIndex<'a> {
        let mut by_entitlement = HashMap::new();
        for a in all.iter().filter(|a| a.grant.ineffective.is_none()) {
            by_entitlement.entry(a.grant.entitlement_id).or_insert(a);
        }
        AccessIndex { by_grant: all.iter().map(|a| (a.grant.id, a)).collect(), by_entitlement }
    }
}

/// What revoking a grant takes and changes, in names: the person's direct grants to remove
/// (memberships, for inherited access), whether the entitlement then goes, and what else goes
/// with it (the first few by name, and how many in all). `null` for a grant listed but not
/// effective (revoking it changes nothing).
fn revoke_json(access: &AccessView, impact: Option<&RevokeImpact>, index: &AccessIndex) -> serde_json::Value {
    let Some(impact) = impact.filter(|_| access.grant.ineffective.is_none()) else { return serde_json::Value::Null };
    let named = |a: &&AccessView| {
        json!({
            "grant_id": a.grant.id.0,
            "resource": {"id": a.resource.id.0, "display_name": a.resource.display_name, "kind_label": kind_label(a.resource.kind)},
            "entitlement": a.entitlement.display_name,
        })
    };
    let remove: Vec<_> = impact.remove.iter().filter_map(|g| index.by_grant.get(g)).map(named).collect();
    let also_ends: Vec<_> =
        impact.also_ends.iter().filter_map(|e| index.by_entitlement.get(e)).take(ALSO_ENDS_NAMED).map(named).collect();
    json!({
        "remove": remove,
        // Through a group's own assignment only: no grant of theirs ends it.
        "only_by_group": impact.remove.is_empty(),
        "direct": impact.remove.len() == 1 && impact.remove.contains(&access.grant.id),
        "ends_entitlement": impact.ends_entitlement,
        "also_ends_more": impact.also_ends.len().saturating_sub(also_ends.len()),
        "also_ends": also_ends,
    })
}

/// A principal's page data (also `GET /api/v1/principals/{id}`).
pub async fn principal_data(state: &AppState, viewer: &Viewer, id: i64) -> Result<serde_json::Value, WebError> {
    let store = &state.store;
    let (principal, manager) = readable_principal_with_manager(state, viewer, id).await?;
    let connectors = state.caches.connectors(store).await?;
    let connector = match connectors.iter().find(|c| c.id == principal.connector_id) {
        Some(c) => c.clone(),
        // Added since the cache was filled.
        None => store.get_connector(principal.connector_id).await?,
    };
    let operate = viewer.can_operate(principal.connector_id) && principal.data.deleted_at.is_none();
    let access = store.list_access_of_principal(principal.id).await?;
    let impacts = store.revoke_impacts(principal.id, &access).await?;
    let index = AccessIndex::new(&access);
    let row = |a: &AccessView| {
        let revoke = revoke_json(a, impacts.get(&a.grant.id), &index);
        access_json(a, operate && removal(a, &principal).is_ok(), revoke)
    };
    let access_rows: Vec<_> = access.iter().filter(|a| a.grant.ineffective.is_none()).map(row).collect();
    let ineffective_rows: Vec<_> = access.iter().filter(|a| a.grant.ineffective.is_some()).map(row).collect();
    let group = store.find_resource_of_group(&principal).await?;
    let changes = store
        .list_changes(&ChangeFilter {
            involving: Some(principal.data.external_id.clone()),
            limit: 20,
            ..Default::default()
        })
        .await?;
    let is_user = principal.data.kind == PrincipalKind::User;
    Ok(json!({
        "principal": principal_json(&principal),
        "connector": connector.name,
        "manager": manager.map(|m| json!({"id": m.id.0, "display_name": m.display_name})),
        "group_resource_id": group.map(|g| g.id.0),
        "access": access_rows,
        "ineffective": ineffective_rows,
        "changes": change_rows(store, &changes).await?,
        "panel": {
            "show": viewer.can_operate(principal.connector_id),
            "user_actions": is_user,
            "deleted": principal.data.deleted_at.is_some(),
            "blocked": principal.data.account_enabled == Some(false),
            // A fresh token per rendering: submitting the same form twice queues one change.
            "nonce": crate::session::random_token().map_err(WebError::Internal)?,
        },
    }))
}

/// `GET /principals/{id}`
pub async fn principal(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Html<String>, WebError> {
    let data = principal_data(&state, &viewer, id).await?;
    page(&viewer, "principal.html", data)
}

fn holder_json(h: &HolderView) -> serde_json::Value {
    let through = h.through.as_ref().map(|t| (t.id, t.data.display_name.as_str()));
    json!({
        "principal": principal_json(&h.principal),
        "entitlement": {"key": h.entitlement.data.key, "display_name": h.entitlement.data.display_name},
        "why": why_json(h.grant.source, h.via.as_ref().map(|v| (v.id, v.data.display_name.as_str()))),
        "effective": h.grant.ineffective.is_none(),
        "ineffective": ineffective_json(h.grant.ineffective, through),
        "scope": h.grant.scope,
        "since": when(Some(h.grant.first_seen_at)),
        "expires_at": when(h.grant.expires_at),
    })
}

/// A resource's page data (also `GET /api/v1/resources/{id}`).
pub async fn resource_data(
    state: &AppState,
    viewer: &Viewer,
    id: i64,
    page_no: Option<u64>,
) -> Result<serde_json::Value, WebError> {
    let store = &state.store;
    let not_found = || WebError::NotFound(format!("resource {id} not found"));
    let resource = store.get_resource(ResourceId(id)).await.map_err(|_| not_found())?;
    if !viewer.can_read(resource.connector_id) {
        return Err(not_found());
    }
    let Paged { items: holders, total, page: page_no, pages } =
        fetch_page(page_no, |offset| store.list_holders_of_resource(resource.id, PAGE_SIZE, offset)).await?;
    // Listed through a group but not given by Entra: shown apart, the first page only.
    let (ineffective, ineffective_total) =
        store.list_ineffective_holders_of_resource(resource.id, PAGE_SIZE, 0).await?;
    let entitlements = store.list_entitlements(resource.id).await?;
    let as_principal = store.find_principal_of_group(&resource).await?;
    Ok(json!({
        "resource": resource_json(&resource),
        "attributes": resource.data.attributes,
        "entitlements": entitlements.iter().map(|e| json!({"key": e.data.key, "display_name": e.data.display_name, "sensitive": e.sensitive})).collect::<Vec<_>>(),
        "holders": holders.iter().map(holder_json).collect::<Vec<_>>(),
        "ineffective_holders": ineffective.iter().map(holder_json).collect::<Vec<_>>(),
        "ineffective_total": ineffective_total,
        "principal_id": as_principal.map(|p| p.id.0),
        "total": total, "page": page_no, "pages": pages,
    }))
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub page: Option<u64>,
}

/// `GET /resources/{id}`
pub async fn resource(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(query): Query<PageQuery>,
) -> Result<Html<String>, WebError> {
    let data = resource_data(&state, &viewer, id, query.page).await?;
    page(&viewer, "resource.html", data)
}

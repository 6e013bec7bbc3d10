//! The directory browser: people, groups, applications and directory roles, searchable a page
//! at a time; a principal's page with each grant and *why* they hold it (directly, or through
//! which group) plus the side panel of actions; a resource's page with its holders.

use attest_domain::command::{CommandError, revoke_action};
use attest_domain::resource::group_managed_elsewhere;
use attest_domain::{
    ChangeAction, ChangeKind, EntitlementKey, Principal, PrincipalId, PrincipalKind, ResourceId, ResourceKind,
};
use attest_store::{AccessView, ChangeFilter};
use axum::extract::State;
use axum::response::Html;
use serde::Deserialize;
use serde_json::json;

use super::{PAGE_SIZE, Paged, fetch_page, page, search_text, url_encode, with};
use crate::AppState;
use crate::api_model::{
    AccessIndex, ApiAccess, ApiEntitlement, ApiHolder, ApiPrincipal, ApiResource, PeopleList, PersonListed,
    PrincipalDetail, Ref, ResourceDetail, ResourceList, ResourceListed, ServicePrincipalList,
};
use crate::cache::PeopleFilter;
use crate::error::WebError;
use crate::extract::{Id, Query};
use crate::roles::{Allowed, Viewer, rule};

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub q: String,
    /// People only: exactly this department.
    #[serde(default)]
    pub department: String,
    /// People only: `member` or `guest`.
    #[serde(default, rename = "type")]
    pub user_type: String,
    /// People only: `yes` for those whose sign-in is blocked.
    #[serde(default)]
    pub blocked: String,
    /// People only: `name` (A to Z, the default) or `-name`.
    #[serde(default)]
    pub sort: String,
    #[serde(default, deserialize_with = "crate::extract::lenient_page")]
    pub page: Option<u64>,
}

/// The people directory's data (also `GET /api/v1/people`).
pub async fn people_data(state: &AppState, viewer: &Viewer, query: &ListQuery) -> Result<PeopleList, WebError> {
    let q = search_text(&query.q);
    let filter = PeopleFilter {
        department: Some(search_text(&query.department)).filter(|d| !d.is_empty()),
        guests: match query.user_type.as_str() {
            "" => None,
            "guest" => Some(true),
            "member" => Some(false),
            other => return Err(WebError::BadRequest(format!("type: member or guest, not '{other}'"))),
        },
        blocked: (query.blocked == "yes").then_some(true),
        descending: match query.sort.as_str() {
            "" | "name" => false,
            "-name" => true,
            other => return Err(WebError::BadRequest(format!("sort: name or -name, not '{other}'"))),
        },
    };
    let index = state.caches.people(&state.store).await?;
    let Paged { items: ids, total, page: page_no, pages } = fetch_page(query.page, |offset| {
        let found = index.search(&q, viewer.read_scope(), &filter, PAGE_SIZE as usize, offset as usize);
        std::future::ready(Ok::<_, WebError>(found))
    })
    .await?;
    let people = state.store.directory().list_people_rows(&ids).await?;
    Ok(PeopleList {
        people: people.iter().map(PersonListed::new).collect(),
        total,
        page: page_no,
        pages,
        q,
        departments: index.departments().to_vec(),
    })
}

/// `GET /people`
pub async fn people(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Html<String>, WebError> {
    let data = people_data(&state, &viewer, &query).await?;
    // The filter as a query string, for the pager's links.
    let filters = super::query_string(&[
        ("department", &query.department),
        ("type", &query.user_type),
        ("blocked", &query.blocked),
        ("sort", &query.sort),
    ]);
    let filters = if filters.is_empty() { filters } else { format!("{filters}&") };
    let extra = json!({
        "q_encoded": url_encode(&data.q),
        "filters": filters,
        "filter": {"department": query.department.trim(), "type": query.user_type, "blocked": query.blocked == "yes", "sort": query.sort},
    });
    page(&viewer, "people.html", with(&data, extra)?)
}

/// Groups, applications or directory roles (also `GET /api/v1/{groups,applications,roles}`).
pub async fn resources_data(
    state: &AppState,
    viewer: &Viewer,
    kind: ResourceKind,
    query: &ListQuery,
) -> Result<ResourceList, WebError> {
    let q = search_text(&query.q);
    let Paged { items: found, total, page: page_no, pages } = fetch_page(query.page, |offset| {
        state.store.directory().search_resources(kind, &q, viewer.read_scope(), PAGE_SIZE, offset)
    })
    .await?;
    Ok(ResourceList { resources: found.iter().map(ResourceListed::new).collect(), total, page: page_no, pages, q })
}

async fn resources_page(
    state: AppState,
    viewer: Allowed<rule::DirectoryReader>,
    kind: ResourceKind,
    query: ListQuery,
) -> Result<Html<String>, WebError> {
    let data = resources_data(&state, &viewer, kind, &query).await?;
    let (title, path) = match kind {
        ResourceKind::Group => ("Groups", "/groups"),
        ResourceKind::Application => ("Applications", "/applications"),
        ResourceKind::DirectoryRole => ("Directory roles", "/roles"),
    };
    let extra = json!({"title": title, "path": path, "q_encoded": url_encode(&data.q)});
    page(&viewer, "resources.html", with(&data, extra)?)
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

/// Service principals and managed identities (also `GET /api/v1/service-principals`).
pub async fn service_principals_data(
    state: &AppState,
    viewer: &Viewer,
    query: &ListQuery,
) -> Result<ServicePrincipalList, WebError> {
    let q = search_text(&query.q);
    let directory = state.store.directory();
    let Paged { items: found, total, page: page_no, pages } = fetch_page(query.page, |offset| {
        directory.search_service_principals(&q, viewer.read_scope(), PAGE_SIZE, offset)
    })
    .await?;
    Ok(ServicePrincipalList {
        principals: found.iter().map(ApiPrincipal::new).collect(),
        total,
        page: page_no,
        pages,
        q,
    })
}

/// `GET /service-principals`
pub async fn service_principals(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Html<String>, WebError> {
    let data = service_principals_data(&state, &viewer, &query).await?;
    let q_encoded = url_encode(&data.q);
    page(&viewer, "service_principals.html", with(&data, json!({"q_encoded": q_encoded}))?)
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
    let found = state.store.directory().find_principal_with_manager(PrincipalId(id)).await?.ok_or_else(not_found)?;
    if !viewer.can_read(found.0.connector_id) {
        return Err(not_found());
    }
    Ok(found)
}

/// The change that takes this grant away (the rule is `attest_domain::command`).
pub fn removal(access: &AccessView, principal: &Principal) -> Result<ChangeAction, CommandError> {
    revoke_action(&access.revoke_target(&principal.data.external_id))
}

/// A principal's page data (also `GET /api/v1/principals/{id}`).
pub async fn principal_data(state: &AppState, viewer: &Viewer, id: i64) -> Result<PrincipalDetail, WebError> {
    let (principal, manager) = readable_principal_with_manager(state, viewer, id).await?;
    principal_detail(state, viewer, principal, manager).await
}

/// A principal's access and why, what revoking each takes, and the changes involving them, as
/// `viewer` may act on them. The caller has checked the viewer may see this principal.
pub async fn principal_detail(
    state: &AppState,
    viewer: &Viewer,
    principal: Principal,
    manager: Option<attest_store::Named<PrincipalId>>,
) -> Result<PrincipalDetail, WebError> {
    let store = &state.store;
    let connectors = state.caches.connectors(store).await?;
    let connector = match connectors.iter().find(|c| c.id == principal.connector_id) {
        Some(c) => c.clone(),
        // Added since the cache was filled.
        None => store.connectors().get_connector(principal.connector_id).await?,
    };
    let operate = viewer.can_operate(principal.connector_id) && principal.data.deleted_at.is_none();
    let access = store.directory().list_access_of_principal(principal.id).await?;
    let impacts = store.directory().revoke_impacts(principal.id, &access).await?;
    let index = AccessIndex::new(&access);
    let row =
        |a: &AccessView| ApiAccess::new(a, impacts.get(&a.grant.id), &index, operate && removal(a, &principal).is_ok());
    let group = store.directory().find_resource_of_group(&principal).await?;
    let changes = store
        .changes()
        .list_changes(&ChangeFilter {
            involving: Some(principal.data.external_id.clone()),
            limit: 20,
            ..Default::default()
        })
        .await?;
    Ok(PrincipalDetail {
        principal: ApiPrincipal::new(&principal),
        connector: connector.name,
        manager: manager.as_ref().map(Ref::from),
        group_resource_id: group.map(|g| g.id.0),
        access: access.iter().filter(|a| a.grant.ineffective.is_none()).map(row).collect(),
        ineffective: access.iter().filter(|a| a.grant.ineffective.is_some()).map(row).collect(),
        changes: super::changes::change_rows(store, &changes).await?,
        can_act: viewer.can_operate(principal.connector_id),
    })
}

/// `GET /principals/{id}`
pub async fn principal(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Html<String>, WebError> {
    principal_page(&state, &viewer, id, json!({"group_error": null, "app_error": null})).await
}

/// A principal's page with its side panel; `extra` adds to it (a side-panel form shown again
/// with what went wrong).
pub async fn principal_page(
    state: &AppState,
    viewer: &Viewer,
    id: i64,
    extra: serde_json::Value,
) -> Result<Html<String>, WebError> {
    let data = principal_data(state, viewer, id).await?;
    // What is already asked for them and not done: the panel links to it rather than invite a
    // second request (asking again returns the same change).
    let open: Vec<_> = data
        .changes
        .iter()
        .filter(|c| ["pending", "awaiting_approval", "in_progress"].contains(&c.state.as_str()))
        .map(|c| json!({"id": c.id, "description": c.description, "state": c.state}))
        .collect();
    // Which of the panel's actions wait for a second person, by the configured policy.
    let policy = state.provisioner.policy();
    let second: serde_json::Map<String, serde_json::Value> = [
        ("add_to_group", ChangeKind::AddGroupMember),
        ("assign_app", ChangeKind::AssignAppRole),
        ("revoke_sessions", ChangeKind::RevokeSessions),
        ("block", ChangeKind::BlockSignIn),
        ("unblock", ChangeKind::UnblockSignIn),
        ("reset_password", ChangeKind::ResetPassword),
        ("delete", ChangeKind::DeleteUser),
        ("restore", ChangeKind::RestoreUser),
    ]
    .into_iter()
    .map(|(action, kind)| (action.to_owned(), policy.is_sensitive(kind).into()))
    .collect();
    let mut panel = json!({"open_changes": open, "second_person": second, "panel": {
        "show": data.can_act,
        "user_actions": data.principal.kind == PrincipalKind::User.to_string(),
        "deleted": data.principal.deleted,
        "blocked": data.principal.account_enabled == Some(false),
        // A fresh token per rendering: submitting the same form twice queues one change.
        "nonce": crate::session::random_token().map_err(WebError::Internal)?,
    }});
    if let (Some(panel), serde_json::Value::Object(extra)) = (panel.as_object_mut(), extra) {
        panel.extend(extra);
    }
    page(viewer, "principal.html", with(&data, panel)?)
}

/// A resource's page data (also `GET /api/v1/resources/{id}`).
pub async fn resource_data(
    state: &AppState,
    viewer: &Viewer,
    id: i64,
    page_no: Option<u64>,
) -> Result<ResourceDetail, WebError> {
    let store = &state.store;
    let not_found = || WebError::NotFound(format!("resource {id} not found"));
    let resource = store.resources().get_resource(ResourceId(id)).await.map_err(|_| not_found())?;
    if !viewer.can_read(resource.connector_id) {
        return Err(not_found());
    }
    let Paged { items: holders, total, page: page_no, pages } =
        fetch_page(page_no, |offset| store.directory().list_holders_of_resource(resource.id, PAGE_SIZE, offset))
            .await?;
    // Listed through a group but not given by Entra: shown apart, the first page only.
    let (ineffective, ineffective_total) =
        store.directory().list_ineffective_holders_of_resource(resource.id, PAGE_SIZE, 0).await?;
    let entitlements = store.resources().list_entitlements(resource.id).await?;
    let as_principal = store.directory().find_principal_of_group(&resource).await?;
    Ok(ResourceDetail {
        resource: ApiResource::new(&resource),
        attributes: resource.data.attributes.clone(),
        entitlements: entitlements
            .iter()
            .map(|e| ApiEntitlement {
                key: e.data.key.to_string(),
                display_name: e.data.display_name.clone(),
                sensitive: e.sensitive,
            })
            .collect(),
        holders: holders.iter().map(ApiHolder::new).collect(),
        total,
        page: page_no,
        pages,
        ineffective_holders: ineffective.iter().map(ApiHolder::new).collect(),
        ineffective_total,
        principal_id: as_principal.map(|p| p.id.0),
        members_managed_elsewhere: (resource.data.kind == ResourceKind::Group)
            .then(|| group_managed_elsewhere(&resource.data.attributes, &EntitlementKey::Member))
            .flatten()
            .map(str::to_owned),
    })
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    #[serde(default, deserialize_with = "crate::extract::lenient_page")]
    pub page: Option<u64>,
}

/// `GET /resources/{id}`
pub async fn resource(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
    Id(id): Id,
    Query(query): Query<PageQuery>,
) -> Result<Html<String>, WebError> {
    let data = resource_data(&state, &viewer, id, query.page).await?;
    // Time-bound access to it that came back in Entra after Attest ended it.
    let drifted =
        state.store.requests().drifted(None, viewer.read_scope(), Some(attest_domain::ResourceId(id)), 50).await?;
    let out_of_band = super::requests::drift_json(&drifted);
    page(&viewer, "resource.html", with(&data, json!({"out_of_band": out_of_band}))?)
}

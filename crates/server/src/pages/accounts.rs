//! Attest's accounts, for administrators: directory sync from Entra over SCIM (the endpoint,
//! its bearer tokens: make one, shown once; revoke), the groups whose members hold a role
//! (pushed over SCIM or synced from Entra), and every account with where each role comes from.

use attest_domain::ResourceKind;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{page, when};
use crate::AppState;
use crate::error::WebError;
use crate::extract::{Id, Query};
use crate::forms::Submitted;
use crate::roles::{Allowed, Viewer, rule};

/// The roles a group can give: the others (reviewer, requester, integration owner) follow from
/// the directory.
const MAPPABLE_ROLES: &[&str] = &["admin", "auditor"];

/// Accounts listed on the page (the newest sign-ins and pushes are a search away in Entra).
const LISTED_ACCOUNTS: usize = 200;

/// The page, with `new_token` (the secret just made, shown this once) when there is one, and
/// the directory's people matching `search` to import.
async fn accounts_page(
    state: &AppState,
    viewer: &Viewer,
    new_token: Option<Value>,
    search: &super::directory::ListQuery,
) -> Result<Response, WebError> {
    let store = &state.store;
    let searched =
        [&search.q, &search.department, &search.user_type, &search.blocked].iter().any(|f| !f.trim().is_empty());
    let departments = state.caches.people(store).await?.departments().to_vec();
    let candidates = if searched {
        serde_json::to_value(super::directory::people_data(state, viewer, search).await?.people)
            .map_err(|e| WebError::Internal(e.to_string()))?
    } else {
        Value::Array(Vec::new())
    };
    let tokens: Vec<Value> = store
        .scim()
        .list_tokens()
        .await?
        .into_iter()
        .map(|t| {
            json!({
                "id": t.id, "name": t.name, "tenant_id": t.tenant_id, "created_by": t.created_by,
                "created_at": when(Some(t.created_at)), "last_used_at": when(t.last_used_at),
                "revoked_at": when(t.revoked_at),
            })
        })
        .collect();
    let mappings = store.scim().list_role_mappings().await?;
    let pushed = store.scim().find_groups(&[], 1, 1_000).await?.items;
    let (synced, _) = store.directory().search_resources(ResourceKind::Group, "", None, 1_000, 0).await?;
    let mut groups: Vec<Value> = pushed
        .iter()
        .map(|g| json!({"value": format!("scim:{}", g.id), "name": g.display_name, "kind": "pushed over SCIM"}))
        .collect();
    groups.extend(synced.iter().map(|g| {
        json!({"value": format!("entra:{}", g.resource.id.0), "name": g.resource.data.display_name, "kind": "synced from Entra"})
    }));
    let all = store.scim().list_accounts().await?;
    let total = all.len();
    let unlinked_accounts: Vec<Value> = all
        .iter()
        .filter(|a| unlinked(a))
        .map(|a| json!({"id": a.id, "name": a.display_name, "email": a.email}))
        .collect();
    let mut accounts = Vec::new();
    for account in all.into_iter().take(LISTED_ACCOUNTS) {
        let mapped = store.scim().mapped_roles(account.id, &account.tenant_id, &account.object_id).await?;
        let roles = role_sources(&account.roles, &mapped);
        accounts.push(json!({
            "name": account.display_name, "email": account.email, "phone": account.phone, "source": account.source,
            "disabled": account.disabled_at.is_some(), "last_sign_in_at": when(account.last_sign_in_at), "roles": roles,
        }));
    }
    let context = json!({
        "endpoint": format!("{}/scim/v2", state.public_url),
        "tokens": tokens,
        "new_token": new_token,
        "mappings": mappings.iter().map(|m| json!({
            "id": m.id, "group": m.group_name, "kind": if m.group_kind == "scim" { "pushed over SCIM" } else { "synced from Entra" },
            "role": m.role, "created_by": m.created_by, "created_at": when(Some(m.created_at)),
        })).collect::<Vec<_>>(),
        "groups": groups,
        "roles": MAPPABLE_ROLES,
        "accounts": accounts,
        "accounts_total": total,
        "unlinked": unlinked_accounts,
        "q": search.q,
        "department": search.department,
        "user_type": search.user_type,
        "departments": departments,
        "searched": searched,
        "candidates": candidates,
    });
    Ok(page(viewer, "accounts.html", context)?.into_response())
}

/// `GET /admin/accounts` (`?q=` searches the directory for people to import)
pub async fn accounts(
    viewer: Allowed<rule::Admin>,
    State(state): State<AppState>,
    Query(search): Query<super::directory::ListQuery>,
) -> Result<Response, WebError> {
    accounts_page(&state, &viewer, None, &search).await
}

#[derive(Debug, Default, Deserialize)]
pub struct LinkForm {
    /// The account (its id on this page).
    #[serde(default)]
    pub account: String,
    /// The directory person (principal id).
    #[serde(default)]
    pub person: String,
}

/// `POST /admin/accounts/link`: an account not yet bound to a directory user (the
/// break-glass administrator; one pushed before its object id was known) becomes that user's.
/// Audited.
pub async fn link(
    viewer: Allowed<rule::Admin>,
    State(state): State<AppState>,
    Submitted(form): Submitted<LinkForm>,
) -> Result<Response, WebError> {
    let store = &state.store;
    let bad = |what: &str| WebError::BadRequest(format!("{what}: pick one from the lists"));
    let account_id: i64 = form.account.trim().parse().map_err(|_| bad("account"))?;
    let person_id: i64 = form.person.trim().parse().map_err(|_| bad("person"))?;
    let account = store.scim().get_account(account_id).await?.filter(unlinked).ok_or_else(|| bad("account"))?;
    let (person, tenant) = directory_user(&state, person_id).await?.ok_or_else(|| bad("person"))?;
    store
        .web()
        .link_web_user(account.id, &tenant, &person.data.external_id, &attest_store::Profile::of(&person.data))
        .await
        .map_err(|e| match e {
            attest_store::StoreError::Conflict { .. } => WebError::Conflict(format!(
                "{} already has an Attest account: give that account the roles instead",
                person.data.display_name
            )),
            other => other.into(),
        })?;
    let draft = attest_domain::AuditEventDraft::about(
        &viewer.actor(),
        "account.linked",
        "account",
        account.id,
        json!({"from": format!("{}/{}", account.tenant_id, account.object_id),
            "to": format!("{tenant}/{}", person.data.external_id), "name": person.data.display_name}),
        state.now(),
    );
    store.audit().append_audit_event(draft).await?;
    state.caches.forget_connectors().await;
    Ok(Redirect::to("/admin/accounts#accounts").into_response())
}

/// An account no directory user is bound to: the break-glass administrator, or one pushed
/// over SCIM whose owner's object id is not known yet.
/// A live user of a synced directory, by principal id, and its tenant: someone an account can
/// be made for or linked to. `None` for any other id.
async fn directory_user(state: &AppState, id: i64) -> Result<Option<(attest_domain::Principal, String)>, WebError> {
    let Ok(person) = state.store.principals().get_principal(attest_domain::PrincipalId(id)).await else {
        return Ok(None);
    };
    if person.data.kind != attest_domain::PrincipalKind::User || person.data.deleted_at.is_some() {
        return Ok(None);
    }
    let connectors = state.caches.connectors(&state.store).await?;
    let tenant = connectors.iter().find(|c| c.id == person.connector_id).and_then(|c| c.tenant_id.clone());
    Ok(tenant.map(|tenant| (person, tenant)))
}

fn unlinked(account: &attest_store::Account) -> bool {
    account.tenant_id == attest_store::LOCAL_TENANT || account.object_id.starts_with("scim:")
}

/// `POST /admin/accounts/sync-profiles`: names, addresses and phones from the directory; accounts whose
/// directory user is disabled or deleted marked inactive (each sync does the same). Audited.
pub async fn sync_profiles(
    viewer: Allowed<rule::Admin>,
    State(state): State<AppState>,
    Submitted(_): Submitted<Value>,
) -> Result<Response, WebError> {
    let now = state.now();
    let (refreshed, deactivated) = state.store.web().sync_profiles(now).await?;
    let draft = attest_domain::AuditEventDraft {
        occurred_at: now,
        actor: viewer.actor(),
        action: "account.profiles_synced".into(),
        target_kind: None,
        target_id: None,
        details: json!({"refreshed": refreshed, "deactivated": deactivated}),
    };
    state.store.audit().append_audit_event(draft).await?;
    Ok(Redirect::to("/admin/accounts#accounts").into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct ImportForm {
    /// Directory people (principal ids), one or many.
    #[serde(default, deserialize_with = "crate::forms::one_or_many")]
    pub people: Vec<String>,
    /// `admin`, `auditor`, or empty for none beyond reviewing and requesting.
    #[serde(default)]
    pub role: String,
}

/// An account's roles, each with where it comes from: granted explicitly, or held through a
/// mapped group (`{"role", "from"}`), as the accounts page and the person's own page say it.
pub fn role_sources(explicit: &[String], mapped: &[attest_store::MappedRole]) -> Vec<Value> {
    let mut roles: Vec<Value> = explicit.iter().map(|r| json!({"role": r, "from": "granted explicitly"})).collect();
    roles.extend(mapped.iter().map(|m| {
        let kind = if m.group_kind == "scim" { "pushed" } else { "Entra" };
        json!({"role": m.role, "from": format!("member of {kind} group {}", m.group_name)})
    }));
    roles
}

/// The most people imported in one step.
const MAX_IMPORT: usize = 500;

/// `POST /admin/accounts/import`: accounts for people of the directory before they sign in,
/// with a role, each mailed that they have one. Audited.
pub async fn import(
    viewer: Allowed<rule::Admin>,
    State(state): State<AppState>,
    Submitted(form): Submitted<ImportForm>,
) -> Result<Response, WebError> {
    let store = &state.store;
    let role = form.role.trim();
    if !role.is_empty() && !MAPPABLE_ROLES.contains(&role) {
        return Err(WebError::BadRequest(format!("role: none, or one of {}", MAPPABLE_ROLES.join(", "))));
    }
    if form.people.is_empty() || form.people.len() > MAX_IMPORT {
        return Err(WebError::BadRequest(format!("people: pick 1 to {MAX_IMPORT} people from the search")));
    }
    let roles: Vec<String> = (!role.is_empty()).then(|| role.to_owned()).into_iter().collect();
    // Every pick is checked before any is imported: a bad one imports nobody.
    let mut people = Vec::with_capacity(form.people.len());
    for id in &form.people {
        let unknown = || WebError::BadRequest(format!("people: {id} is not a person of the directory"));
        let id: i64 = id.trim().parse().map_err(|_| unknown())?;
        people.push(directory_user(&state, id).await?.ok_or_else(unknown)?);
    }
    let (now, actor) = (state.now(), viewer.actor());
    for (person, tenant) in people {
        let profile = attest_store::Profile::of(&person.data);
        let (account, created) =
            store.web().import_web_user(&tenant, &person.data.external_id, &profile, &roles, now).await?;
        let draft = attest_domain::AuditEventDraft::about(
            &actor,
            "account.imported",
            "account",
            account.id,
            json!({"tenant_id": tenant, "object_id": account.object_id, "name": account.display_name,
                "roles_added": roles, "new": created}),
            now,
        );
        store.audit().append_audit_event(draft).await?;
        if let Some(to) = profile.email.filter(|e| attest_notify::is_email_address(e)) {
            let template = attest_notify::Template::AccountInvitation {
                name: account.display_name.clone(),
                invited_by: actor.clone(),
                role: roles.first().cloned(),
                sign_in_url: format!("{}/auth/sign-in", state.public_url),
            };
            // Once per account and role: importing again with another role says so.
            let key = format!("account-invitation:{}:{}", account.id, roles.first().map_or("none", String::as_str));
            state
                .outbox
                .enqueue(attest_notify::Email { key, to, template }, now)
                .await
                .map_err(|e| WebError::Unavailable(format!("the invitation could not be queued: {e}")))?;
        }
    }
    state.caches.forget_connectors().await;
    Ok(Redirect::to("/admin/accounts#accounts").into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    pub name: String,
}

/// `POST /admin/accounts/tokens`: a token for Entra, shown on the page this once.
pub async fn create_token(
    viewer: Allowed<rule::Admin>,
    State(state): State<AppState>,
    Submitted(form): Submitted<TokenForm>,
) -> Result<Response, WebError> {
    let (token, secret) =
        crate::scim::create_token(&state.store, &form.name, None, &viewer.actor(), state.now()).await?;
    let new_token = Some(json!({"id": token.id, "name": token.name, "token": secret}));
    accounts_page(&state, &viewer, new_token, &Default::default()).await
}

/// `POST /admin/accounts/tokens/{id}/revoke`
pub async fn revoke_token(
    viewer: Allowed<rule::Admin>,
    State(state): State<AppState>,
    Id(id): Id,
    Submitted(_): Submitted<Value>,
) -> Result<Response, WebError> {
    crate::scim::revoke_token(&state.store, id, &viewer.actor(), state.now()).await?;
    Ok(Redirect::to("/admin/accounts#tokens").into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct MappingForm {
    /// `scim:<SCIM group id>` or `entra:<resource id>`.
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub role: String,
}

/// `POST /admin/accounts/mappings`: a group's members hold a role (from their next request).
pub async fn add_mapping(
    viewer: Allowed<rule::Admin>,
    State(state): State<AppState>,
    Submitted(form): Submitted<MappingForm>,
) -> Result<Response, WebError> {
    let store = &state.store;
    if !MAPPABLE_ROLES.contains(&form.role.as_str()) {
        return Err(WebError::BadRequest(format!("role: one of {}", MAPPABLE_ROLES.join(", "))));
    }
    let unknown = || WebError::BadRequest("group: pick a group from the list".into());
    let (kind, id, name) = match form.group.split_once(':') {
        Some(("scim", id)) => {
            let group = store.scim().get_group(id).await?.ok_or_else(unknown)?;
            ("scim", group.id, group.display_name)
        }
        Some(("entra", id)) => {
            let id: i64 = id.parse().map_err(|_| unknown())?;
            let resource =
                store.resources().get_resource(attest_domain::ResourceId(id)).await.map_err(|_| unknown())?;
            if resource.data.kind != ResourceKind::Group {
                return Err(unknown());
            }
            ("entra", id.to_string(), resource.data.display_name)
        }
        _ => return Err(unknown()),
    };
    let now = state.now();
    store.scim().add_role_mapping(kind, &id, &name, &form.role, &viewer.actor(), now).await?;
    state.caches.forget_role_mappings().await;
    let draft = attest_domain::AuditEventDraft::about(
        &viewer.actor(),
        "account.role_mapped",
        &format!("{kind}_group"),
        id,
        json!({"group": name, "role": form.role}),
        now,
    );
    store.audit().append_audit_event(draft).await?;
    Ok(Redirect::to("/admin/accounts#mappings").into_response())
}

/// `POST /admin/accounts/mappings/{id}/remove`
pub async fn remove_mapping(
    viewer: Allowed<rule::Admin>,
    State(state): State<AppState>,
    Id(id): Id,
    Submitted(_): Submitted<Value>,
) -> Result<Response, WebError> {
    let removed = state
        .store
        .scim()
        .remove_role_mapping(id)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("no role mapping {id}")))?;
    state.caches.forget_role_mappings().await;
    let draft = attest_domain::AuditEventDraft::about(
        &viewer.actor(),
        "account.role_unmapped",
        &format!("{}_group", removed.group_kind),
        removed.group_id,
        json!({"group": removed.group_name, "role": removed.role}),
        state.now(),
    );
    state.store.audit().append_audit_event(draft).await?;
    Ok(Redirect::to("/admin/accounts#mappings").into_response())
}

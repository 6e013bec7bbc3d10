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
use crate::extract::Id;
use crate::forms::Submitted;
use crate::roles::{Allowed, Viewer, rule};

/// The roles a group can give: the others (reviewer, requester, integration owner) follow from
/// the directory.
const MAPPABLE_ROLES: &[&str] = &["admin", "auditor"];

/// Accounts listed on the page (the newest sign-ins and pushes are a search away in Entra).
const LISTED_ACCOUNTS: usize = 200;

/// The page, with `new_token` (the secret just made, shown this once) when there is one.
async fn accounts_page(state: &AppState, viewer: &Viewer, new_token: Option<Value>) -> Result<Response, WebError> {
    let store = &state.store;
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
    let mut accounts = Vec::new();
    for account in all.into_iter().take(LISTED_ACCOUNTS) {
        let mapped = store.scim().mapped_roles(account.id, &account.tenant_id, &account.object_id).await?;
        let mut roles: Vec<Value> =
            account.roles.iter().map(|r| json!({"role": r, "from": "granted explicitly"})).collect();
        roles.extend(mapped.iter().map(|m| {
            let kind = if m.group_kind == "scim" { "pushed" } else { "Entra" };
            json!({"role": m.role, "from": format!("member of {kind} group {}", m.group_name)})
        }));
        accounts.push(json!({
            "name": account.display_name, "email": account.email, "source": account.source,
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
    });
    Ok(page(viewer, "accounts.html", context)?.into_response())
}

/// `GET /admin/accounts`
pub async fn accounts(viewer: Allowed<rule::Admin>, State(state): State<AppState>) -> Result<Response, WebError> {
    accounts_page(&state, &viewer, None).await
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
    accounts_page(&state, &viewer, Some(json!({"id": token.id, "name": token.name, "token": secret}))).await
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
    let draft = attest_domain::AuditEventDraft {
        occurred_at: now,
        actor: viewer.actor(),
        action: "account.role_mapped".into(),
        target_kind: Some(format!("{kind}_group")),
        target_id: Some(id),
        details: json!({"group": name, "role": form.role}),
    };
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
    let draft = attest_domain::AuditEventDraft {
        occurred_at: state.now(),
        actor: viewer.actor(),
        action: "account.role_unmapped".into(),
        target_kind: Some(format!("{}_group", removed.group_kind)),
        target_id: Some(removed.group_id),
        details: json!({"group": removed.group_name, "role": removed.role}),
    };
    state.store.audit().append_audit_event(draft).await?;
    Ok(Redirect::to("/admin/accounts#mappings").into_response())
}

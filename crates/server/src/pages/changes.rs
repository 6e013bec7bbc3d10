//! The changes queue: every change Attest made or will make in Entra, filterable by state and
//! connector; a change's page with its attempts' outcome; approve, deny (with a reason), retry
//! and cancel.
//!
//! Approving applies the change at once, in person (as `attest change approve` does), so a
//! password reset's temporary password is shown to the approver and to nobody else.

use attest_domain::{Change, ChangeId, ChangeState};
use attest_store::{ChangeFilter, Store};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::{PAGE_SIZE, page};
use crate::AppState;
use crate::api_model::{ApiChange, ChangePermissions};
use crate::error::WebError;
use crate::extract::{Id, Query};
use crate::forms::Submitted;
use crate::roles::{Allowed, Viewer, rule};

/// Changes as the API answers and the pages show them, described with names ("add member Ada
/// Lovelace to group Finance") where the directory objects are synced.
pub async fn change_rows(store: &Store, changes: &[Change]) -> Result<Vec<ApiChange>, WebError> {
    let descriptions = store.changes().describe_changes(changes).await?;
    Ok(changes.iter().zip(descriptions).map(|(c, d)| ApiChange::new(c, d)).collect())
}

#[derive(Debug, Default, Deserialize)]
pub struct ChangesQuery {
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub connector: String,
    /// Older than this change id (the next page).
    pub before: Option<i64>,
}

/// One page of the queue as this viewer may see it.
pub struct ChangesFound {
    pub changes: Vec<Change>,
    /// The connectors the viewer reads, by name (the filter's choices).
    pub connectors: Vec<String>,
    /// Where the next (older) page starts.
    pub next_before: Option<i64>,
}

/// The queue's page for `query`, newest first (the page and `GET /api/v1/changes`).
pub async fn find_changes(state: &AppState, viewer: &Viewer, query: &ChangesQuery) -> Result<ChangesFound, WebError> {
    let store = &state.store;
    let wanted_state = match query.state.as_str() {
        "" => None,
        s => Some(s.parse::<ChangeState>().map_err(|e| WebError::BadRequest(e.to_string()))?),
    };
    let connectors: Vec<_> =
        store.connectors().list_connectors().await?.into_iter().filter(|c| viewer.can_read(c.id)).collect();
    let connector = match query.connector.as_str() {
        "" => None,
        name => Some(
            connectors
                .iter()
                .find(|c| c.name == name)
                .ok_or_else(|| WebError::NotFound(format!("no connector named '{name}'")))?
                .id,
        ),
    };
    // Integration owners see their connectors' changes only, asked of the database.
    let filter = ChangeFilter {
        state: wanted_state,
        connector,
        within: viewer.read_scope().map(<[_]>::to_vec),
        before: query.before.map(ChangeId),
        limit: PAGE_SIZE,
        ..Default::default()
    };
    let changes = store.changes().list_changes(&filter).await?;
    let next_before = (changes.len() as u64 == PAGE_SIZE).then(|| changes.last().map(|c| c.id.0)).flatten();
    Ok(ChangesFound { changes, connectors: connectors.into_iter().map(|c| c.name).collect(), next_before })
}

/// The queue page's data.
async fn changes_data(state: &AppState, viewer: &Viewer, query: &ChangesQuery) -> Result<serde_json::Value, WebError> {
    let found = find_changes(state, viewer, query).await?;
    Ok(json!({
        "changes": change_rows(&state.store, &found.changes).await?,
        "state": query.state,
        "connector": query.connector,
        "connectors": found.connectors,
        "states": ["pending", "awaiting_approval", "in_progress", "applied", "failed", "cancelled", "denied"],
        "next_before": found.next_before,
    }))
}

/// `GET /changes`
pub async fn changes(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
    Query(query): Query<ChangesQuery>,
) -> Result<Html<String>, WebError> {
    let data = changes_data(&state, &viewer, &query).await?;
    page(&viewer, "changes.html", data)
}

pub async fn readable_change(state: &AppState, viewer: &Viewer, id: i64) -> Result<Change, WebError> {
    let not_found = || WebError::NotFound(format!("change {id} not found"));
    let change = state.store.changes().get_change(ChangeId(id)).await.map_err(|_| not_found())?;
    if !viewer.can_read(change.connector_id) {
        return Err(not_found());
    }
    Ok(change)
}

/// What `viewer` may do with `change` now.
pub fn permissions(viewer: &Viewer, change: &Change) -> ChangePermissions {
    let operate = viewer.can_operate(change.connector_id);
    let own = viewer.asked_for(change);
    let approve = viewer.may_approve(change) && change.state == ChangeState::AwaitingApproval;
    ChangePermissions {
        approve,
        deny: approve,
        own_awaiting: own && change.state == ChangeState::AwaitingApproval,
        retry: operate && matches!(change.state, ChangeState::Failed | ChangeState::OutcomeUnknown),
        cancel: operate
            && matches!(
                change.state,
                ChangeState::Pending | ChangeState::AwaitingApproval | ChangeState::OutcomeUnknown
            ),
    }
}

/// A password reset cut off mid-way: its temporary password was never shown.
pub fn password_unknown(change: &Change) -> bool {
    change.state == ChangeState::OutcomeUnknown && change.kind == attest_domain::ChangeKind::ResetPassword
}

/// One change's page data.
async fn change_data(state: &AppState, viewer: &Viewer, id: i64) -> Result<serde_json::Value, WebError> {
    let change = readable_change(state, viewer, id).await?;
    let row = change_rows(&state.store, std::slice::from_ref(&change)).await?.pop();
    let (who, what) = linked(state, &change).await?;
    Ok(json!({
        "who": who,
        "what": what,
        "change": row,
        "action": change.action,
        "idempotency_key": change.idempotency_key,
        "password_unknown": password_unknown(&change),
        "can": permissions(viewer, &change),
    }))
}

/// Who a change is about and the group, application or role it touches, as synced (for
/// links to their pages); `null` for what is not synced (yet, or any more).
async fn linked(state: &AppState, change: &Change) -> Result<(serde_json::Value, serde_json::Value), WebError> {
    let store = &state.store;
    let action = &change.action;
    let who_id = action.principal().unwrap_or(action.target());
    let who = store.principals().find_principal_by_external_id(change.connector_id, who_id).await?;
    let who = who.map(|p| json!({"id": p.id.0, "display_name": p.data.display_name}));
    let kind = change.kind.resource_kind();
    let what = match kind {
        Some(kind) => store
            .directory()
            .find_resources_named(change.connector_id, kind, action.target())
            .await?
            .into_iter()
            .find(|r| r.data.external_id == action.target())
            .map(|r| json!({"id": r.id.0, "display_name": r.data.display_name, "kind": r.data.kind})),
        None => None,
    };
    Ok((who.unwrap_or_default(), what.unwrap_or_default()))
}

/// `GET /changes/{id}`: the change, and once after an action on it, what was just done.
pub async fn change(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
    Id(id): Id,
    headers: axum::http::HeaderMap,
) -> Result<Response, WebError> {
    let mut data = change_data(&state, &viewer, id).await?;
    let flash = crate::flash::of(&headers);
    if let Some(flash) = flash.as_ref().filter(|f| f.change == id) {
        data["flash"] = json!({"back": flash.back});
    }
    let mut response = page(&viewer, "change.html", data)?.into_response();
    if flash.is_some() {
        crate::flash::clear(&mut response);
    }
    Ok(response)
}

/// A change this viewer may change, or 404 / 403.
async fn operable_change(state: &AppState, viewer: &Viewer, id: i64) -> Result<Change, WebError> {
    let change = readable_change(state, viewer, id).await?;
    if !viewer.can_operate(change.connector_id) {
        return Err(WebError::Forbidden("only administrators and this connector's owners change its changes".into()));
    }
    Ok(change)
}

/// The change's page, which then says (once) what was just done to it; `back` is the page the
/// action was taken from.
pub fn to_change(id: i64, back: Option<String>) -> Response {
    let mut response = Redirect::to(&format!("/changes/{id}")).into_response();
    crate::flash::set(&mut response, &crate::flash::Flash { change: id, back });
    response
}

/// What an approver sees once: the change as applied, and a secret if it made one; otherwise
/// the change's page. `back` is the page the action was taken from.
pub async fn applied_page(
    state: &AppState,
    viewer: &Viewer,
    done: attest_provisioner::InPerson,
    back: Option<String>,
) -> Result<Response, WebError> {
    let Some(secret) = done.secret else {
        return Ok(to_change(done.change.id.0, back));
    };
    // Whose password it is, by name and sign-in name, so it reaches the right person.
    let user = done.change.action.target();
    let whose = state.store.principals().find_principal_by_external_id(done.change.connector_id, user).await?;
    let data = json!({
        "change_id": done.change.id.0,
        "secret_value": secret.expose(),
        "whose": whose.as_ref().map(|p| &p.data.display_name),
        "whose_upn": whose.as_ref().and_then(|p| p.data.user_principal_name.as_ref()),
    });
    let mut response = page(viewer, "change.html", json!({"secret": data}))?.into_response();
    // Shown once: never cached, never restored from history.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Approves change `id` as the viewer and applies it at once, in person.
pub async fn approve_now(state: &AppState, viewer: &Viewer, id: i64) -> Result<attest_provisioner::InPerson, WebError> {
    operable_change(state, viewer, id).await?;
    let actor = viewer.actor();
    state.store.changes().approve_change(ChangeId(id), &actor, Some(&viewer.actor_id()), state.now()).await?;
    state.provisioner.apply_in_person(ChangeId(id), &actor).await.map_err(provision_error)
}

/// Denies change `id` as the viewer, saying why.
pub async fn deny_now(state: &AppState, viewer: &Viewer, id: i64, reason: &str) -> Result<Change, WebError> {
    let change = operable_change(state, viewer, id).await?;
    if change.state == ChangeState::AwaitingApproval && reason.trim().is_empty() {
        return Err(WebError::BadRequest(
            "say why you deny it: the requester is told, and the audit log keeps it".into(),
        ));
    }
    let (name, actor_id) = (viewer.actor(), viewer.actor_id());
    Ok(state.store.changes().deny_change(ChangeId(id), &name, Some(&actor_id), reason, state.now()).await?)
}

/// Puts a failed change back in the queue.
pub async fn retry_now(state: &AppState, viewer: &Viewer, id: i64) -> Result<Change, WebError> {
    operable_change(state, viewer, id).await?;
    let (name, actor_id) = (viewer.actor(), viewer.actor_id());
    let actor = attest_domain::Actor { name: &name, id: Some(&actor_id) };
    Ok(state.store.changes().retry_change(ChangeId(id), actor, state.now()).await?)
}

/// Withdraws a change that has not been applied.
pub async fn cancel_now(state: &AppState, viewer: &Viewer, id: i64) -> Result<Change, WebError> {
    operable_change(state, viewer, id).await?;
    let (name, actor_id) = (viewer.actor(), viewer.actor_id());
    let actor = attest_domain::Actor { name: &name, id: Some(&actor_id) };
    Ok(state.store.changes().cancel_change(ChangeId(id), actor, state.now()).await?)
}

/// `POST /changes/{id}/approve`: approves and applies at once, in person.
pub async fn approve(
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Id(id): Id,
    Submitted(_): Submitted<serde_json::Value>,
) -> Result<Response, WebError> {
    let done = approve_now(&state, &viewer, id).await?;
    applied_page(&state, &viewer, done, None).await
}

/// What an approver says when denying.
#[derive(Debug, Deserialize)]
pub struct DenyForm {
    #[serde(default)]
    pub reason: String,
}

/// `POST /changes/{id}/deny`: refused, with the reason; the change's page says so.
pub async fn deny(
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Id(id): Id,
    Submitted(form): Submitted<DenyForm>,
) -> Result<Response, WebError> {
    deny_now(&state, &viewer, id, &form.reason).await?;
    Ok(to_change(id, None))
}

/// `POST /changes/{id}/retry`
pub async fn retry(
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Id(id): Id,
    Submitted(_): Submitted<serde_json::Value>,
) -> Result<Response, WebError> {
    retry_now(&state, &viewer, id).await?;
    Ok(to_change(id, None))
}

/// `POST /changes/{id}/cancel`
pub async fn cancel(
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Id(id): Id,
    Submitted(_): Submitted<serde_json::Value>,
) -> Result<Response, WebError> {
    cancel_now(&state, &viewer, id).await?;
    Ok(to_change(id, None))
}

pub fn provision_error(e: attest_provisioner::ProvisionError) -> WebError {
    match e {
        attest_provisioner::ProvisionError::Store(e) => e.into(),
        e @ attest_provisioner::ProvisionError::NotClaimable(_) => WebError::Conflict(e.to_string()),
    }
}

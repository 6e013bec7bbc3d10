//! The user side panel's actions: add to or remove from a group, assign or remove an app role,
//! and the user actions (revoke sessions, block or unblock sign-in, reset password, delete,
//! restore). Each becomes a change in the provisioner's queue, exactly as `attest action` makes
//! them: a sensitive one waits for a second person's approval; any other is applied at once, in
//! person, and the page shows its outcome (and a reset password, once).
//!
//! The form names *what* to change, never raw directory ids for the principal: the principal
//! comes from the URL, a grant to remove from the stored graph, a group or application from
//! its name or object id within the principal's connector.

use attest_domain::command::CommandError;
use attest_domain::resource::group_managed_elsewhere;
use attest_domain::{ChangeAction, ChangeState, EntitlementKey, NewChange, Principal, PrincipalKind, ResourceKind};
use attest_provisioner::InPerson;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::changes::{applied_page, provision_error};
use super::directory::{readable_principal, removal};
use crate::AppState;
use crate::error::WebError;
use crate::extract::Id;
use crate::forms::Submitted;
use crate::roles::{Allowed, Viewer, rule};

/// The default-access app role (assigning an app without a specific role).
const DEFAULT_ACCESS: &str = EntitlementKey::DEFAULT_ACCESS_ROLE_ID;

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct ActionForm {
    pub action: String,
    /// The token the page was rendered with: the same form submitted twice queues one change.
    pub nonce: String,
    #[serde(default)]
    pub group: String,
    /// `member` (default) or `owner`.
    #[serde(default)]
    pub relation: String,
    #[serde(default)]
    pub app: String,
    #[serde(default)]
    pub app_role: String,
    #[serde(default)]
    pub grant: String,
    /// `yes`: a destructive action (remove, block, delete) was confirmed. The API needs it
    /// for deleting a user; the pages ask on a page that says what will happen.
    #[serde(default)]
    pub confirm: String,
    /// Why, in the requester's words (optional): shown to the approver, kept in the audit log.
    #[serde(default)]
    pub reason: String,
}

impl ActionForm {
    /// Removing access, blocking sign-in or deleting a user: asked again before it is done.
    fn destructive(&self) -> bool {
        matches!(self.action.as_str(), "remove_grant" | "block" | "delete")
    }
}

/// `POST /principals/{id}/actions`
pub async fn submit(
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Id(id): Id,
    Submitted(form): Submitted<ActionForm>,
) -> Result<Response, WebError> {
    if form.destructive() && form.confirm != "yes" {
        return confirm_page(&state, &viewer, id, &form).await;
    }
    match act(&state, &viewer, id, &form).await {
        Ok(done) => applied_page(&state, &viewer, done, Some(format!("/principals/{id}"))).await,
        // A group or application the form named wrongly: the page again, the form filled in,
        // what is wrong beside the field, and what was probably meant.
        Err(error @ (WebError::BadRequest(_) | WebError::Refused { .. }))
            if matches!(form.action.as_str(), "add_to_group" | "assign_app") =>
        {
            shown_again(&state, &viewer, id, &form, error).await
        }
        Err(error) => Err(error),
    }
}

/// Asks before a destructive action: what exactly will happen, whether a second person must
/// approve it, and an optional reason; confirming sends the same form with `confirm=yes`.
async fn confirm_page(state: &AppState, viewer: &Viewer, id: i64, form: &ActionForm) -> Result<Response, WebError> {
    let principal = readable_principal(state, viewer, id).await?;
    if !viewer.can_operate(principal.connector_id) {
        return Err(WebError::Forbidden("only administrators and this connector's owners make changes in it".into()));
    }
    let confirmed = ActionForm { confirm: "yes".into(), ..form.clone() };
    let action = action_for(state, &principal, &confirmed).await?;
    let kind = action.kind();
    let description = state
        .store
        .changes()
        .describe_actions(&[(principal.connector_id, &action)])
        .await?
        .pop()
        .unwrap_or_else(|| action.describe());
    let data = serde_json::json!({
        "principal": {"id": principal.id.0, "display_name": principal.data.display_name},
        "description": description,
        "consequence": kind.consequence(),
        "second_person": state.provisioner.policy().is_sensitive(kind),
        "form": confirmed,
        "verb": match form.action.as_str() {
            "block" => "Block sign-in",
            "delete" => "Delete user",
            _ => "Remove",
        },
    });
    Ok(super::page(viewer, "confirm.html", data)?.into_response())
}

/// The person's page with the side panel's form as it was sent, `error` beside the field, and
/// the groups or applications it may have meant (those of the same name, or whose names begin
/// with what was typed). Answered with the error's status.
async fn shown_again(
    state: &AppState,
    viewer: &Viewer,
    id: i64,
    form: &ActionForm,
    error: WebError,
) -> Result<Response, WebError> {
    let principal = readable_principal(state, viewer, id).await?;
    let (kind, typed, key) = match form.action.as_str() {
        "add_to_group" => (ResourceKind::Group, form.group.trim(), "group_error"),
        _ => (ResourceKind::Application, form.app.trim(), "app_error"),
    };
    let directory = state.store.directory();
    let mut meant = directory.find_resources_named(principal.connector_id, kind, typed).await?;
    if meant.len() < 2 && !typed.is_empty() {
        let scope = [principal.connector_id];
        let (found, _) = directory.search_resources(kind, typed, Some(&scope), 5, 0).await?;
        meant = found.into_iter().map(|s| s.resource).filter(|r| r.data.deleted_at.is_none()).collect();
    }
    // Those Graph cannot change are not offered.
    let key_wanted = if form.relation == "owner" { EntitlementKey::Owner } else { EntitlementKey::Member };
    meant.retain(|r| kind != ResourceKind::Group || group_managed_elsewhere(&r.data.attributes, &key_wanted).is_none());
    let candidates: Vec<_> = meant
        .iter()
        .take(10)
        .map(|r| serde_json::json!({"id": r.data.external_id, "display_name": r.data.display_name, "description": r.data.description}))
        .collect();
    let shown = serde_json::json!({
        "message": error.to_string(),
        "value": typed,
        "relation": form.relation,
        "app_role": form.app_role,
        "candidates": candidates,
    });
    let mut extra = serde_json::json!({"group_error": null, "app_error": null});
    extra[key] = shown;
    let status = error.status();
    let html = super::directory::principal_page(state, viewer, id, extra).await?;
    Ok((status, html).into_response())
}

/// Queues the change a form asks for on principal `id` and, unless it waits for approval,
/// applies it at once in person. What the page and the API both do.
pub async fn act(state: &AppState, viewer: &Viewer, id: i64, form: &ActionForm) -> Result<InPerson, WebError> {
    let principal = readable_principal(state, viewer, id).await?;
    if !viewer.can_operate(principal.connector_id) {
        return Err(WebError::Forbidden("only administrators and this connector's owners make changes in it".into()));
    }
    let nonce = form.nonce.trim();
    if nonce.len() < 16 || nonce.len() > 100 {
        return Err(WebError::BadRequest(
            "the form has no valid request token (nonce, 16 to 100 characters); reload the page".into(),
        ));
    }
    let action = action_for(state, &principal, form).await?;
    let actor = viewer.actor();
    let new = NewChange::manual(principal.connector_id, action, &actor, nonce)
        .by(Some(viewer.actor_id()))
        .because(Some(&form.reason));
    let change = state.provisioner.enqueue(new, state.now()).await.map_err(provision_error)?.change;
    if change.state != ChangeState::Pending {
        return Ok(InPerson { change, secret: None });
    }
    match state.provisioner.apply_in_person(change.id, &actor).await {
        Ok(done) => Ok(done),
        // A worker claimed it first: the change shows how it went.
        Err(attest_provisioner::ProvisionError::NotClaimable(_)) => {
            Ok(InPerson { change: state.store.changes().get_change(change.id).await?, secret: None })
        }
        Err(e) => Err(provision_error(e)),
    }
}

/// The change a form asks for.
async fn action_for(state: &AppState, principal: &Principal, form: &ActionForm) -> Result<ChangeAction, WebError> {
    let who = principal.data.external_id.clone();
    let user_only = || -> Result<String, WebError> {
        if principal.data.kind == PrincipalKind::User {
            Ok(who.clone())
        } else {
            Err(WebError::BadRequest(format!("'{}' is for users only", form.action)))
        }
    };
    Ok(match form.action.as_str() {
        "add_to_group" => {
            let group = resolve(state, principal, ResourceKind::Group, &form.group).await?;
            let key = match form.relation.as_str() {
                "" | "member" => EntitlementKey::Member,
                "owner" => EntitlementKey::Owner,
                other => return Err(WebError::BadRequest(format!("relation '{other}' is not member or owner"))),
            };
            // Refused here, not queued to fail in Graph.
            if let Some(why) = group_managed_elsewhere(&group.data.attributes, &key) {
                let refusal = CommandError::ManagedElsewhere(why);
                let message = format!("{} is not changed here: {refusal}", group.data.display_name);
                return Err(WebError::Refused { reason: refusal.code(), message });
            }
            match key {
                EntitlementKey::Owner => ChangeAction::AddGroupOwner { group: group.data.external_id, owner: who },
                _ => ChangeAction::AddGroupMember { group: group.data.external_id, member: who },
            }
        }
        "assign_app" => {
            let app = resolve(state, principal, ResourceKind::Application, &form.app).await?;
            let app_role = app_role(state, &app, &form.app_role).await?;
            ChangeAction::AssignAppRole { app: app.data.external_id, principal: who, app_role }
        }
        "remove_grant" => {
            let grant: i64 =
                form.grant.trim().parse().map_err(|_| WebError::BadRequest("no grant was chosen".into()))?;
            let access = state.store.directory().list_access_of_principal(principal.id).await?;
            let held = access
                .iter()
                .find(|a| a.grant.id.0 == grant)
                .ok_or_else(|| WebError::Conflict("this grant has already ended; the page was out of date".into()))?;
            removal(held, principal).map_err(|e| WebError::BadRequest(e.to_string()))?
        }
        "revoke_sessions" => ChangeAction::RevokeSessions { user: user_only()? },
        "block" => ChangeAction::BlockSignIn { user: user_only()? },
        "unblock" => ChangeAction::UnblockSignIn { user: user_only()? },
        "reset_password" => ChangeAction::ResetPassword { user: user_only()? },
        "delete" if form.confirm == "yes" => ChangeAction::DeleteUser { user: user_only()? },
        "delete" => return Err(WebError::BadRequest("tick the box to confirm deleting this user".into())),
        "restore" => ChangeAction::RestoreUser { user: user_only()? },
        other => return Err(WebError::BadRequest(format!("unknown action '{other}'"))),
    })
}

/// The one live resource of `kind` named `name` (or with that object id) in the principal's
/// connector.
async fn resolve(
    state: &AppState,
    principal: &Principal,
    kind: ResourceKind,
    name: &str,
) -> Result<attest_domain::Resource, WebError> {
    let what = match kind {
        ResourceKind::Group => "group",
        ResourceKind::Application => "application",
        ResourceKind::DirectoryRole => "directory role",
    };
    if name.trim().is_empty() {
        return Err(WebError::BadRequest(format!("name the {what}")));
    }
    let mut found = state.store.directory().find_resources_named(principal.connector_id, kind, name).await?;
    match found.len() {
        0 => Err(WebError::BadRequest(format!(
            "no {what} is named '{}' (by display name or object id); run a sync if it is new",
            name.trim()
        ))),
        1 => Ok(found.remove(0)),
        n => Err(WebError::BadRequest(format!(
            "{n} {what}s are named '{}'; use the object id of the one you mean: {}",
            name.trim(),
            found.iter().map(|r| r.data.external_id.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The app role to assign: named (display name or id), else default access, else the app's
/// only role.
async fn app_role(state: &AppState, app: &attest_domain::Resource, wanted: &str) -> Result<String, WebError> {
    let roles: Vec<(String, String)> = state
        .store
        .resources()
        .list_entitlements(app.id)
        .await?
        .into_iter()
        .filter_map(|e| match e.data.key {
            EntitlementKey::AppRole(id) => Some((id, e.data.display_name)),
            _ => None,
        })
        .collect();
    let wanted = wanted.trim();
    if !wanted.is_empty() {
        return roles
            .iter()
            .find(|(id, name)| id.eq_ignore_ascii_case(wanted) || name.eq_ignore_ascii_case(wanted))
            .map(|(id, _)| id.clone())
            .ok_or_else(|| {
                WebError::BadRequest(format!(
                    "'{}' has no app role '{wanted}'; its roles: {}",
                    app.data.display_name,
                    roles.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>().join(", ")
                ))
            });
    }
    if roles.iter().any(|(id, _)| id == DEFAULT_ACCESS) || roles.is_empty() {
        return Ok(DEFAULT_ACCESS.to_owned());
    }
    match roles.as_slice() {
        [(only, _)] => Ok(only.clone()),
        _ => Err(WebError::BadRequest(format!(
            "choose one of '{}''s app roles: {}",
            app.data.display_name,
            roles.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

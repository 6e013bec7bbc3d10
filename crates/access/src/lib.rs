//! Just-in-time access, run: asking for access under its policy (or asking what would happen,
//! a dry run), approving and denying, extending, relinquishing and revoking, and the sweep that
//! gives approved access in Entra, ends it on time and denies requests nobody answered.
//!
//! Rules are in `attest_domain::access`; the store keeps requests and checks each step's
//! starting state in the transaction that takes it. Access is given and taken away only
//! through the change queue (origin `access_request`, or `expiry`), so the provisioner applies
//! it with its retries, pacing and audit; the sweep reads how those changes ended.

mod sweep;

use attest_domain::access::{
    AccessPolicy, AccessRefusal, Approver, Asking, EntitlementRef, Length, RequestState, Requesters, Span,
    check_approvers, check_asking,
};
use attest_domain::review::Person;
use attest_domain::{
    ConnectorId, Entitlement, EntitlementId, Principal, PrincipalId, PrincipalKind, Resource, UserType,
};
use attest_store::SetValue as Value;
use attest_store::{NewRequest, PolicyScope, Request, Store, StoreError, Voted};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

pub use sweep::{BATCH, SWEEPER, Swept, sweep};

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Refused(#[from] AccessRefusal),
    /// The entitlement or person named does not exist, or names several.
    #[error("{0}")]
    NotFound(String),
}

impl AccessError {
    /// The refusal, when the request was refused by a rule (for the API's error code).
    pub fn refusal(&self) -> Option<&AccessRefusal> {
        match self {
            AccessError::Refused(r) | AccessError::Store(StoreError::AccessRefused(r)) => Some(r),
            _ => None,
        }
    }
}

/// Someone acting on requests: a person of the tenant, and how the audit log names the act.
#[derive(Debug, Clone)]
pub struct Actor {
    pub person: Person,
    /// As the audit log names them ("ada@contoso.com", "ada@contoso.com (command line)").
    pub by: String,
    /// An administrator may end anyone's access.
    pub administrator: bool,
}

/// A person asking, as the directory knows them in one connector.
#[derive(Debug, Clone)]
pub struct Requester {
    pub actor: Actor,
    pub connector: ConnectorId,
    pub principal: Principal,
}

/// What is asked for.
#[derive(Debug, Clone)]
pub struct Ask {
    pub entitlement: EntitlementId,
    pub length: Length,
    pub justification: String,
    pub ticket: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
}

/// The answer to "would this be approved, by whom, for how long?".
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub entitlement_id: i64,
    pub resource: String,
    pub entitlement: String,
    /// `8h`, or `permanent`.
    pub duration: String,
    pub auto_approved: bool,
    pub quorum: u32,
    /// Each stage's approvers (the requester is never one).
    pub stages: Vec<Vec<Person>>,
    /// The longest that can be asked for, and the shortcuts offered.
    pub max_duration: Span,
    pub presets: Vec<Span>,
    pub permanent_allowed: bool,
    /// When it would end if given now.
    pub would_end_at: Option<DateTime<Utc>>,
    /// The policy it was checked against (what a request records).
    #[serde(skip)]
    pub policy: AccessPolicy,
}

/// A live user of `connector`, by email, user principal name or object id.
pub async fn person(store: &Store, connector: ConnectorId, who: &str) -> Result<Person, AccessError> {
    store.reviews().people_named(connector, &[who.to_owned()]).await?.into_iter().next().ok_or_else(|| {
        AccessError::NotFound(format!(
            "{who}: nobody of that email, user principal name or object id in this directory"
        ))
    })
}

/// The person asking, by object id or name, in `connector`.
pub async fn requester(
    store: &Store,
    connector: ConnectorId,
    who: &str,
    by: impl FnOnce(&Person) -> String,
) -> Result<Requester, AccessError> {
    let found = person(store, connector, who).await?;
    let principal = store
        .principals()
        .find_principal_by_external_id(connector, &found.object_id)
        .await?
        .ok_or_else(|| AccessError::NotFound(format!("{who} is not in this directory")))?;
    let by = by(&found);
    Ok(Requester { actor: Actor { person: found, by, administrator: false }, connector, principal })
}

/// The entitlement a name gives (`group:Finance:member`, ...), within `connector` if given.
pub async fn resolve(
    store: &Store,
    connector: Option<ConnectorId>,
    name: &EntitlementRef,
) -> Result<(Entitlement, Resource), AccessError> {
    let key = name.right.key().map(|k| k.to_string());
    let role = match &name.right {
        attest_domain::access::Right::AppRole(role) => Some(role.as_str()),
        _ => None,
    };
    let found = store.requests().find_entitlements(connector, name.kind, &name.resource, key.as_deref(), role).await?;
    match found.as_slice() {
        [] => Err(AccessError::NotFound(format!("{name}: no such entitlement (check the name and the right)"))),
        [(id, _, _)] => {
            let entitlement = store.resources().get_entitlement(EntitlementId(*id)).await?;
            let resource = store.resources().get_resource(entitlement.data.resource_id).await?;
            Ok((entitlement, resource))
        }
        several => Err(AccessError::NotFound(format!(
            "{name} names {} entitlements; use the resource's object id instead of its name",
            several.len()
        ))),
    }
}

/// The policy that applies to an entitlement now.
pub async fn policy_of(
    store: &Store,
    entitlement: &Entitlement,
    resource: &Resource,
) -> Result<AccessPolicy, AccessError> {
    let (own, default) =
        store.requests().policies_for(entitlement.connector_id, entitlement.id, resource.data.kind).await?;
    Ok(AccessPolicy::effective(own.as_ref(), default.as_ref()))
}

/// Sets the policy of an entitlement. A group Graph cannot change cannot be made requestable
/// (the error says why).
pub async fn set_policy(
    store: &Store,
    entitlement: &Entitlement,
    resource: &Resource,
    policy: &AccessPolicy,
    by: &str,
    now: DateTime<Utc>,
) -> Result<(), AccessError> {
    policy.check().map_err(|e| AccessError::NotFound(e.to_string()))?;
    if policy.self_activate
        && (resource.data.kind != attest_domain::ResourceKind::DirectoryRole
            || entitlement.data.key != attest_domain::EntitlementKey::Active)
    {
        return Err(AccessError::NotFound(
            "self_activate: only a directory role's active assignment is activated in Entra by its holder".into(),
        ));
    }
    // PIM activates for a bounded time only: 8 hours by default, never more than 24.
    if policy.self_activate
        && (policy.permanent_allowed || policy.max_duration.is_none_or(|d| d.duration() > chrono::Duration::hours(24)))
    {
        return Err(AccessError::NotFound(
            "self_activate: Entra activates a role for at most 24 hours (8 by default): set --max-duration 24h or less, \
             and no permanent access"
                .into(),
        ));
    }
    if policy.requestable
        && resource.data.kind == attest_domain::ResourceKind::Group
        && let Some(why) =
            attest_domain::resource::group_managed_elsewhere(&resource.data.attributes, &entitlement.data.key)
    {
        return Err(
            AccessRefusal::NotRequestable(Some(format!("Microsoft Graph cannot change this group: {why}"))).into()
        );
    }
    store
        .requests()
        .set_policy(entitlement.connector_id, PolicyScope::Entitlement(entitlement.id), policy, by, now)
        .await?;
    Ok(())
}

/// Checks a request without recording it: the dry run, and the first half of [`request`].
pub async fn plan(store: &Store, asker: &Requester, ask: &Ask, now: DateTime<Utc>) -> Result<Plan, AccessError> {
    let entitlement = store.resources().get_entitlement(ask.entitlement).await?;
    let resource = store.resources().get_resource(entitlement.data.resource_id).await?;
    if entitlement.connector_id != asker.connector || entitlement.deleted_at.is_some() {
        return Err(AccessRefusal::NotRequestable(None).into());
    }
    let policy = policy_of(store, &entitlement, &resource).await?;
    if resource.data.kind == attest_domain::ResourceKind::Group
        && let Some(why) =
            attest_domain::resource::group_managed_elsewhere(&resource.data.attributes, &entitlement.data.key)
    {
        return Err(
            AccessRefusal::NotRequestable(Some(format!("Microsoft Graph cannot change this group: {why}"))).into()
        );
    }
    let in_group = match &policy.requesters {
        Requesters::Everyone => true,
        Requesters::GroupMembers(group) => match store.requests().group_object(asker.connector, group).await? {
            Some(object) => {
                store.requests().is_member(asker.connector, &object, &asker.principal.data.external_id).await?
            }
            None => false,
        },
    };
    let is_guest =
        asker.principal.data.kind != PrincipalKind::User || asker.principal.data.user_type == Some(UserType::Guest);
    check_asking(&Asking {
        policy: &policy,
        length: ask.length,
        justification: &ask.justification,
        ticket: ask.ticket.as_deref(),
        requester_is_guest: is_guest,
        in_requester_group: in_group,
        starts_at: ask.starts_at,
        now,
    })?;
    let mut stages = Vec::new();
    for n in 1..=policy.stages() {
        stages.push(approvers(store, asker, &resource, policy.stage_approvers(n)).await?);
    }
    check_approvers(&policy, &stages.iter().map(Vec::len).collect::<Vec<_>>())?;
    let begins = ask.starts_at.unwrap_or(now).max(now);
    Ok(Plan {
        entitlement_id: entitlement.id.0,
        resource: resource.data.display_name.clone(),
        entitlement: entitlement.data.display_name.clone(),
        duration: ask.length.to_string(),
        auto_approved: policy.auto_approve,
        quorum: policy.quorum,
        stages,
        max_duration: policy.cap(),
        presets: policy.offered_presets(),
        permanent_allowed: policy.permanent_allowed,
        would_end_at: attest_domain::access::expiry(begins, ask.length.span()),
        policy,
    })
}

/// A stage's approvers as people: each once, never the requester.
async fn approvers(
    store: &Store,
    asker: &Requester,
    resource: &Resource,
    specs: &[Approver],
) -> Result<Vec<Person>, AccessError> {
    let connector = asker.connector;
    let mut people: Vec<Person> = Vec::new();
    for spec in specs {
        let found = match spec {
            Approver::Manager => match &asker.principal.data.manager_external_id {
                Some(manager) => store.reviews().people(connector, std::slice::from_ref(manager)).await?,
                None => Vec::new(),
            },
            Approver::Owners => store.requests().owners_of(resource.id).await?,
            Approver::Person(who) => store.reviews().people_named(connector, std::slice::from_ref(who)).await?,
            Approver::GroupMembers(group) => match store.requests().group_object(connector, group).await? {
                Some(object) => store.reviews().group_members(connector, &[object]).await?,
                None => Vec::new(),
            },
        };
        for p in found {
            if p.object_id != asker.actor.person.object_id && !people.iter().any(|q| q.object_id == p.object_id) {
                people.push(p);
            }
        }
    }
    Ok(people)
}

/// Asks for access. Refused if the policy says no, if the person already holds it for good,
/// or already asked; holding it for a time, they are told to extend instead.
pub async fn request(store: &Store, asker: &Requester, ask: &Ask, now: DateTime<Utc>) -> Result<Request, AccessError> {
    let plan = plan(store, asker, ask, now).await?;
    if let Some(open) = store.requests().open_request(ask.entitlement, asker.principal.id).await? {
        return Err(match (open.state, open.expires_at) {
            (RequestState::Pending, _) => AccessRefusal::AlreadyAsked(open.id),
            (_, Some(until)) => AccessRefusal::AlreadyHeldUntil { request: open.id, until: when(until) },
            _ => AccessRefusal::AlreadyAsked(open.id),
        }
        .into());
    }
    if let Some(attest_store::HeldAccess { expires_at: end, .. }) =
        store.requests().held_grant(ask.entitlement, asker.principal.id).await?
    {
        return Err(match end {
            None => AccessRefusal::AlreadyHeldPermanently,
            Some(until) => AccessRefusal::AlreadyHeldUntil { request: 0, until: when(until) },
        }
        .into());
    }
    let new = NewRequest {
        connector_id: asker.connector,
        entitlement_id: ask.entitlement,
        principal_id: asker.principal.id,
        requester: asker.actor.person.clone(),
        asked_by: asker.actor.by.clone(),
        duration_minutes: ask.length.span().map(Span::as_minutes),
        justification: ask.justification.trim().to_owned(),
        ticket: ask.ticket.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned),
        policy: plan.policy,
        starts_at: ask.starts_at,
        extends: None,
        approvers: plan.stages,
    };
    Ok(store.requests().create_request(&new, now).await?)
}

/// Asks to extend access held for a time, by `length` past its current end, under the same
/// policy and approvals. Only the holder asks.
pub async fn extend(
    store: &Store,
    id: i64,
    asker: &Requester,
    length: Span,
    justification: &str,
    now: DateTime<Utc>,
) -> Result<Request, AccessError> {
    let held = store.requests().get_request(id).await?;
    if held.requester_object != asker.actor.person.object_id {
        return Err(AccessRefusal::NotRequester("extend").into());
    }
    if held.state != RequestState::Active || held.expires_at.is_none() || held.revoke_change_id.is_some() {
        return Err(AccessRefusal::NotExtendable.into());
    }
    // Activated in Entra by its holder: Entra ends it at the end it was given (PIM caps an
    // activation), so it is activated again rather than extended.
    if held.activated_by_holder() {
        return Err(AccessRefusal::NotExtendable.into());
    }
    let ask = Ask {
        entitlement: EntitlementId(held.entitlement_id),
        length: Length::For(length),
        justification: if justification.trim().is_empty() {
            held.justification.clone()
        } else {
            justification.to_owned()
        },
        ticket: held.ticket.clone(),
        starts_at: None,
    };
    let plan = plan(store, asker, &ask, now).await?;
    if let Some(waiting) = store
        .requests()
        .list_requests(&attest_store::RequestFilter {
            requester: Some(held.requester_object.clone()),
            state: Some(RequestState::Pending),
            limit: 1000,
            ..Default::default()
        })
        .await?
        .into_iter()
        .find(|r| r.extends_id == Some(id))
    {
        return Err(AccessRefusal::AlreadyAsked(waiting.id).into());
    }
    let new = NewRequest {
        connector_id: asker.connector,
        entitlement_id: ask.entitlement,
        principal_id: asker.principal.id,
        requester: asker.actor.person.clone(),
        asked_by: asker.actor.by.clone(),
        duration_minutes: Some(length.as_minutes()),
        justification: ask.justification.trim().to_owned(),
        ticket: ask.ticket.clone(),
        policy: plan.policy,
        starts_at: None,
        extends: Some(id),
        approvers: plan.stages,
    };
    Ok(store.requests().create_request(&new, now).await?)
}

/// An approver approves or denies (a denial needs a reason). Nobody decides their own request,
/// nor one they are not an approver of in its current stage.
pub async fn decide(
    store: &Store,
    id: i64,
    approver: &Actor,
    approve: bool,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Voted, AccessError> {
    let request = store.requests().get_request(id).await?;
    if request.requester_object == approver.person.object_id {
        return Err(AccessRefusal::OwnRequest.into());
    }
    let reason = reason.trim();
    if !approve && reason.is_empty() {
        return Err(AccessRefusal::ReasonRequired.into());
    }
    let reason = (!reason.is_empty()).then_some(reason);
    Ok(store.requests().vote(id, &approver.person, &approver.by, approve, reason, now).await?)
}

/// Whether an approved request waits for its requester to activate the role in Entra
/// themselves (PIM's self-activation) at `now`: its policy says so, it is not an extension, its
/// start has come, it has an end, and they are eligible for the role now. Otherwise Attest
/// gives the access itself.
pub async fn awaits_activation(store: &Store, request: &Request, now: DateTime<Utc>) -> Result<bool, AccessError> {
    if request.state != RequestState::Approved
        || request.extends_id.is_some()
        || request.ended_by.is_some()
        || request.duration_minutes.is_none()
        || request.starts_at.is_some_and(|s| s > now)
        || !request.policy().self_activate
    {
        return Ok(false);
    }
    let (entitlement, principal) = (EntitlementId(request.entitlement_id), PrincipalId(request.principal_id));
    Ok(store.requests().holds_eligibility(entitlement, principal, now).await?)
}

/// Until when a request waiting to be activated in Entra may wait: the policy's approval
/// timeout, from its approval or its start, whichever is later.
pub fn activation_due(request: &Request) -> DateTime<Utc> {
    let from = request.decided_at.unwrap_or(request.created_at).max(request.starts_at.unwrap_or(request.created_at));
    from + request.policy().approval_timeout.duration()
}

/// Claims a request waiting for activation for one attempt by its requester (`provisioning`,
/// with no change of Attest's): the access job no longer gives or times it out, and a second
/// attempt is refused, while Entra is asked. `None` when it no longer waits.
pub async fn begin_activation(
    store: &Store,
    request: &Request,
    now: DateTime<Utc>,
) -> Result<Option<Request>, AccessError> {
    let sets = [("state", Value::from(RequestState::Provisioning.as_str()))];
    let by = &request.requester_name;
    Ok(store
        .requests()
        .step(request.id, &[RequestState::Approved], &sets, by, "access.activating", json!({}), now)
        .await?)
}

/// Entra did not activate it (`why`): the request waits again, or ends if someone ended it
/// meanwhile.
pub async fn activation_refused(store: &Store, id: i64, why: &str, now: DateTime<Utc>) -> Result<(), AccessError> {
    let request = store.requests().get_request(id).await?;
    let mut sets = vec![("state", Value::from(RequestState::Approved.as_str()))];
    if request.ended_by.is_some() {
        sets = vec![("state", Value::from(RequestState::Revoked.as_str())), ("ended_at", Value::from(now))];
    }
    let details = json!({"reason": why});
    let by = &request.requester_name;
    store
        .requests()
        .step(id, &[RequestState::Provisioning], &sets, by, "access.activation_refused", details, now)
        .await?;
    Ok(())
}

/// The requester activated the role in Entra themselves (`graph_request`: the id of Entra's
/// schedule request), ending at `until`: the claimed request is active from now. The caller
/// writes the assignment into the graph (the provisioner's write-through) and marks it just in
/// time. Ended by someone meanwhile, the access job removes it at once.
pub async fn activated(
    store: &Store,
    request: &Request,
    graph_request: &str,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Request, AccessError> {
    let sets = [
        ("state", Value::from(RequestState::Active.as_str())),
        ("activated_at", Value::from(now)),
        ("expires_at", Value::from(until)),
    ];
    let details = json!({"activated_in_entra": graph_request, "until": until});
    let by = &request.requester_name;
    let done = store
        .requests()
        .step(request.id, &[RequestState::Provisioning], &sets, by, "access.activated", details, now)
        .await?
        .ok_or(AccessRefusal::WrongState(request.state, "activated"))?;
    Ok(done)
}

/// The requester withdraws a request nobody has decided yet.
pub async fn cancel(store: &Store, id: i64, asker: &Actor, now: DateTime<Utc>) -> Result<Request, AccessError> {
    let request = store.requests().get_request(id).await?;
    if request.requester_object != asker.person.object_id {
        return Err(AccessRefusal::NotRequester("cancel").into());
    }
    let sets = [
        ("state", Value::from(RequestState::Cancelled.as_str())),
        ("ended_at", Value::from(now)),
        ("ended_by", Value::from(asker.by.clone())),
    ];
    store
        .requests()
        .step(id, &[RequestState::Pending], &sets, &asker.by, "access.cancelled", json!({}), now)
        .await?
        .ok_or_else(|| AccessRefusal::WrongState(request.state, "cancelled").into())
}

/// Ends access early: its holder relinquishes it, or one of its approvers or an administrator
/// revokes it. Access not given yet ends at once; access given is removed through the queue
/// by the next sweep (and the request ends `revoked` when Entra confirms it).
pub async fn revoke(
    store: &Store,
    id: i64,
    actor: &Actor,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Request, AccessError> {
    let request = store.requests().get_request(id).await?;
    let holder = request.requester_object == actor.person.object_id;
    let approver = store.requests().approvers(id).await?.iter().any(|a| a.object_id == actor.person.object_id);
    if !(holder || approver || actor.administrator) {
        return Err(AccessRefusal::NotAnApprover(None).into());
    }
    if !request.state.holds() || request.revoke_change_id.is_some() || request.ended_by.is_some() {
        return Err(AccessRefusal::WrongState(request.state, "revoked").into());
    }
    let reason = match reason.trim() {
        "" if holder => "given up by its holder".to_owned(),
        "" => return Err(AccessRefusal::ReasonRequired.into()),
        text => text.to_owned(),
    };
    let details = json!({"reason": reason, "relinquished": holder});
    let action = if holder { "access.relinquished" } else { "access.revoked" };
    // Approved but not given yet: nothing is in Entra, it simply ends.
    let mut sets = vec![("ended_by", Value::from(actor.by.clone())), ("end_reason", Value::from(reason.clone()))];
    let from = if request.state == RequestState::Approved && request.grant_change_id.is_none() {
        sets.push(("state", Value::from(RequestState::Revoked.as_str())));
        sets.push(("ended_at", Value::from(now)));
        vec![RequestState::Approved]
    } else {
        vec![RequestState::Approved, RequestState::Provisioning, RequestState::Active]
    };
    store
        .requests()
        .step(id, &from, &sets, &actor.by, action, details, now)
        .await?
        .ok_or_else(|| AccessRefusal::WrongState(request.state, "revoked").into())
}

/// A time for people: "18 December 2026 at 09:00 UTC".
pub fn when(at: DateTime<Utc>) -> String {
    at.format("%-d %B %Y at %H:%M UTC").to_string()
}

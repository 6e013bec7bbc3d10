//! The sweep: what is due on requests at a moment, done once. `attest serve` runs it every few
//! seconds under a lease (one replica at a time); it looks at the state rather than being told,
//! so after downtime the first sweep removes everything that expired meanwhile, once (each
//! change is keyed by its request, and each step checks the state it starts from).

use attest_domain::access::{RequestState, Span};
use attest_domain::command::AccessCommand;
use attest_domain::{ChangeOrigin, EntitlementId, NewChange, PrincipalId};
use attest_store::{DueRequest, Request, SetValue as Value, Store};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::AccessError;

/// Who the sweep's steps are by, in the audit log.
pub const SWEEPER: &str = "system (access expiry)";

/// Requests looked at per sweep; a full batch means there may be more.
pub const BATCH: u64 = 2_000;

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Approved requests whose access was queued to be given.
    pub queued: usize,
    /// Given in Entra: now active.
    pub activated: usize,
    /// Extensions that took over the access they extend.
    pub extended: usize,
    /// Removals queued (expired, or ended early).
    pub removing: usize,
    /// Removed in Entra: now expired or revoked.
    pub ended: usize,
    /// Entra refused, or it cannot be done.
    pub failed: usize,
    /// Denied for want of an answer.
    pub timed_out: usize,
    /// Access back in Entra after its request ended, queued for removal again (authoritative
    /// policies only).
    pub reverted: usize,
    /// Approved, now waiting for their requesters to activate them in Entra.
    pub awaiting_activation: usize,
    /// Rows looked at (a full batch: sweep again at once).
    pub looked_at: usize,
}

/// Does what is due at `now`.
pub async fn sweep(store: &Store, now: DateTime<Utc>) -> Result<Swept, AccessError> {
    let mut done = Swept::default();
    let due = store.requests().due(now, BATCH).await?;
    done.looked_at = due.len();
    // Removals are queued together (one transaction for the changes, one for the requests):
    // ten thousand ending in one minute must not wait on each other's transactions.
    let mut removals = Vec::new();
    for row in due {
        match row.state {
            RequestState::Pending if row.approval_due_at <= now => time_out(store, &row, now, &mut done).await?,
            RequestState::Approved if row.starts_at.is_none_or(|s| s <= now) => {
                give(store, &row, now, &mut done).await?
            }
            RequestState::Provisioning => settle_given(store, &row, now, &mut done).await?,
            RequestState::Active if row.revoke_change_id.is_some() => settle_taken(store, &row, now, &mut done).await?,
            // Expired, or ended early by someone.
            RequestState::Active if row.ended_by.is_some() || row.expires_at.is_some_and(|e| e <= now) => {
                if let Some(removal) = removal(store, &row, now, &mut done).await? {
                    removals.push(removal);
                }
            }
            _ => {}
        }
    }
    if !removals.is_empty() {
        let news: Vec<NewChange> = removals.iter().map(|(_, new)| new.clone()).collect();
        let changes = store.changes().enqueue_changes(&news, now).await?;
        let marks: Vec<(i64, i64, &str)> = removals
            .iter()
            .zip(&changes)
            .map(|((row, new), change)| {
                let action =
                    if new.origin == ChangeOrigin::Expiry { "access.expiring" } else { "access.removal_queued" };
                (row.id, change.0, action)
            })
            .collect();
        done.removing += store.requests().mark_removals(&marks, SWEEPER, now).await?;
    }
    revert_drift(store, now, &mut done).await?;
    Ok(done)
}

/// Access that came back in Entra after its request ended, under an authoritative policy: its
/// removal is queued again (keyed by the request and the grant that came back, so once per
/// return) and audited. Under other policies it is only shown (`Requests::drifted`).
async fn revert_drift(store: &Store, now: DateTime<Utc>, done: &mut Swept) -> Result<(), AccessError> {
    // Only access that came back: access extended in Entra ends at its request's end, where
    // `removal` takes it away under an authoritative policy.
    for drift in
        store.requests().drifted(Some("returned"), None, None, BATCH).await?.into_iter().filter(|d| d.authoritative())
    {
        let grant = attest_domain::GrantId(drift.grant_id);
        let Ok((connector, action)) = store.grants().resolve_command(&AccessCommand::Revoke { grant }).await else {
            continue;
        };
        let reason = format!(
            "access request {} ended at {}; the access came back in Entra outside Attest, and its policy is authoritative",
            drift.request_id,
            crate::when(drift.ended_at)
        );
        let new = NewChange {
            connector_id: connector,
            action,
            idempotency_key: format!("access-request:{}:drift:{}", drift.request_id, drift.grant_id),
            origin: ChangeOrigin::AccessRequest,
            origin_ref: Some(drift.request_id.to_string()),
            requested_by: SWEEPER.to_owned(),
            requested_by_id: None,
            reason: Some(reason.clone()),
        };
        let queued = store.changes().enqueue_change(new, false, now).await?;
        if queued.created {
            let draft = attest_domain::AuditEventDraft {
                occurred_at: now,
                actor: SWEEPER.to_owned(),
                action: "access.drift_reverted".into(),
                target_kind: Some("access_request".into()),
                target_id: Some(drift.request_id.to_string()),
                details: json!({"grant": drift.grant_id, "change": queued.change.id.0, "seen_at": drift.seen_at, "reason": reason}),
            };
            store.audit().append_audit_event(draft).await?;
            done.reverted += 1;
        }
    }
    Ok(())
}

async fn time_out(store: &Store, row: &DueRequest, now: DateTime<Utc>, done: &mut Swept) -> Result<(), AccessError> {
    let request = store.requests().get_request(row.id).await?;
    let reason = format!("nobody approved it within {}", request.policy().approval_timeout.words());
    let sets = [
        ("state", Value::from(RequestState::Denied.as_str())),
        ("decided_at", Value::from(now)),
        ("ended_at", Value::from(now)),
        ("ended_by", Value::from(SWEEPER)),
        ("end_reason", Value::from(reason.clone())),
    ];
    let details = json!({"reason": reason, "approval_due_at": row.approval_due_at});
    if store
        .requests()
        .step(row.id, &[RequestState::Pending], &sets, SWEEPER, "access.timed_out", details, now)
        .await?
        .is_some()
    {
        done.timed_out += 1;
    }
    Ok(())
}

/// Queues the change that gives approved access (or lets an extension take over).
async fn give(store: &Store, row: &DueRequest, now: DateTime<Utc>, done: &mut Swept) -> Result<(), AccessError> {
    let request = store.requests().get_request(row.id).await?;
    if let Some(extended) = request.extends_id {
        return take_over(store, &request, extended, now, done).await;
    }
    if crate::awaits_activation(store, &request, now).await? {
        // Theirs to activate in Entra, from the request's page, within the approval window;
        // looked at again only at its end.
        let due = crate::activation_due(&request);
        if due <= now {
            let why =
                format!("not activated in Entra within {} of its approval", request.policy().approval_timeout.words());
            return fail(store, &request, RequestState::Approved, &why, now, done).await;
        }
        if store.requests().await_activation(request.id, due).await? {
            done.awaiting_activation += 1;
        }
        return Ok(());
    }
    let span = request.duration_minutes.map(Span::minutes);
    let command = AccessCommand::Grant {
        principal: PrincipalId(request.principal_id),
        entitlement: EntitlementId(request.entitlement_id),
        // Where the directory keeps an end itself (a PIM role assignment), it enforces it too.
        until: attest_domain::access::expiry(now, span),
    };
    let resolved = store.grants().resolve_command(&command).await;
    let (connector, action) = match resolved {
        Ok(found) => found,
        Err(e) => {
            return fail(store, &request, RequestState::Approved, &format!("it cannot be given: {e}"), now, done).await;
        }
    };
    let new = NewChange {
        connector_id: connector,
        action,
        idempotency_key: format!("access-request:{}:grant", request.id),
        origin: ChangeOrigin::AccessRequest,
        origin_ref: Some(request.id.to_string()),
        requested_by: request.requester_name.clone(),
        requested_by_id: None,
        reason: Some(format!("access request {}: {}", request.id, request.justification)),
    };
    // The approvers' answer is the approval: no second person is asked again.
    let change = store.changes().enqueue_change(new, false, now).await?.change;
    let sets =
        [("state", Value::from(RequestState::Provisioning.as_str())), ("grant_change_id", Value::from(change.id.0))];
    let details = json!({"change": change.id.0});
    if store
        .requests()
        .step(row.id, &[RequestState::Approved], &sets, SWEEPER, "access.provisioning", details, now)
        .await?
        .is_some()
    {
        done.queued += 1;
    }
    Ok(())
}

/// An approved extension takes over the access it extends: that one ends as extended, this
/// one runs from its end for the length asked. Nothing changes in Entra.
async fn take_over(
    store: &Store,
    extension: &Request,
    extended: i64,
    now: DateTime<Utc>,
    done: &mut Swept,
) -> Result<(), AccessError> {
    let held = store.requests().get_request(extended).await?;
    let (Some(end), true) = (
        held.expires_at,
        held.state == RequestState::Active && held.revoke_change_id.is_none() && held.ended_by.is_none(),
    ) else {
        let why = format!("the access it extends (request {extended}) has ended");
        return fail(store, extension, RequestState::Approved, &why, now, done).await;
    };
    let until = attest_domain::access::expiry(end.max(now), extension.duration_minutes.map(Span::minutes));
    let ended = [
        ("state", Value::from(RequestState::Expired.as_str())),
        ("ended_at", Value::from(now)),
        ("end_reason", Value::from(format!("extended by request {}", extension.id))),
    ];
    let details = json!({"extended_by": extension.id, "until": until});
    if store
        .requests()
        .step(extended, &[RequestState::Active], &ended, SWEEPER, "access.extended", details, now)
        .await?
        .is_none()
    {
        return Ok(());
    }
    let sets = [
        ("state", Value::from(RequestState::Active.as_str())),
        ("activated_at", Value::from(now)),
        ("expires_at", Value::from(until)),
        ("grant_change_id", Value::from(held.grant_change_id)),
    ];
    let details = json!({"extends": extended, "previous_end": end, "until": until});
    store
        .requests()
        .step(extension.id, &[RequestState::Approved], &sets, SWEEPER, "access.active", details, now)
        .await?;
    store
        .requests()
        .mark_grant_jit(EntitlementId(extension.entitlement_id), PrincipalId(extension.principal_id), until)
        .await?;
    done.extended += 1;
    Ok(())
}

/// The giving change has ended: the access is active from when Entra had it, or failed.
async fn settle_given(
    store: &Store,
    row: &DueRequest,
    now: DateTime<Utc>,
    done: &mut Swept,
) -> Result<(), AccessError> {
    match row.grant_change_state.as_deref() {
        Some("applied") => {
            let from = row.grant_change_finished_at.unwrap_or(now);
            given_from(store, row.id, from, json!({"change": row.grant_change_id}), now, done).await?;
        }
        // An activation in Entra by its requester (no change of Attest's) that never came
        // back: it may have happened, so it counts as given, removed at its end as any other.
        None if row.grant_change_id.is_none() => {
            let from = store.requests().get_request(row.id).await?.updated_at;
            given_from(store, row.id, from, json!({"activation_outcome_unknown": true}), now, done).await?;
        }
        Some("failed" | "cancelled" | "denied" | "outcome_unknown") => {
            let request = store.requests().get_request(row.id).await?;
            let why = format!(
                "Entra did not give it: {}",
                row.grant_change_error.as_deref().unwrap_or("the change did not go through")
            );
            fail(store, &request, RequestState::Provisioning, &why, now, done).await?;
        }
        _ => {}
    }
    Ok(())
}

/// Request `id`, being given, is active from `from` for the length asked (`details` say how it
/// was given), and its grant just in time.
async fn given_from(
    store: &Store,
    id: i64,
    from: DateTime<Utc>,
    mut details: serde_json::Value,
    now: DateTime<Utc>,
    done: &mut Swept,
) -> Result<(), AccessError> {
    let request = store.requests().get_request(id).await?;
    let until = attest_domain::access::expiry(from, request.duration_minutes.map(Span::minutes));
    let sets = [
        ("state", Value::from(RequestState::Active.as_str())),
        ("activated_at", Value::from(from)),
        ("expires_at", Value::from(until)),
    ];
    details["until"] = json!(until);
    if store
        .requests()
        .step(id, &[RequestState::Provisioning], &sets, SWEEPER, "access.active", details, now)
        .await?
        .is_some()
    {
        let entitlement = EntitlementId(request.entitlement_id);
        store.requests().mark_grant_jit(entitlement, PrincipalId(request.principal_id), until).await?;
        done.activated += 1;
    }
    Ok(())
}

/// The change that removes access that has expired or was ended early, to be queued with the
/// others; `None` when there is nothing to remove (the request is ended, or failed, here).
async fn removal(
    store: &Store,
    row: &DueRequest,
    now: DateTime<Utc>,
    done: &mut Swept,
) -> Result<Option<(DueRequest, NewChange)>, AccessError> {
    let (entitlement, principal) = (EntitlementId(row.entitlement_id), PrincipalId(row.principal_id));
    let Some(held) = store.requests().held_grant(entitlement, principal).await? else {
        // Gone from Entra already (removed by hand, or its PIM schedule ended it).
        let request = store.requests().get_request(row.id).await?;
        end(store, &request, now, "it was already gone from Entra", done).await?;
        return Ok(None);
    };
    // Made permanent (or extended) in Entra by someone there: expiring, it is left to them
    // unless the policy is authoritative, and becomes ordinary access (a direct grant with no
    // end, as Entra holds it). An early end by a person still removes it.
    if let Some(found) = held.extended_in_directory_at
        && row.ended_by.is_none()
    {
        let request = store.requests().get_request(row.id).await?;
        if !request.policy().authoritative {
            let note = format!(
                "left in place: made permanent or extended in Entra (found {}), and the policy is not authoritative",
                crate::when(found)
            );
            store.requests().release_grant(held.id).await?;
            end(store, &request, now, &note, done).await?;
            return Ok(None);
        }
    }
    let grant = held.id;
    let (connector, action) = match store.grants().resolve_command(&AccessCommand::Revoke { grant }).await {
        Ok(found) => found,
        Err(e) => {
            let request = store.requests().get_request(row.id).await?;
            fail(store, &request, RequestState::Active, &format!("it cannot be removed: {e}"), now, done).await?;
            return Ok(None);
        }
    };
    let early = row.ended_by.is_some();
    let reason = match (&row.ended_by, &row.end_reason) {
        (Some(by), Some(why)) => format!("access request {} ended early by {by}: {why}", row.id),
        _ => format!("access request {} expired at {}", row.id, row.expires_at.map(crate::when).unwrap_or_default()),
    };
    let new = NewChange {
        connector_id: connector,
        action,
        idempotency_key: format!("access-request:{}:end", row.id),
        origin: if early { ChangeOrigin::AccessRequest } else { ChangeOrigin::Expiry },
        origin_ref: Some(row.id.to_string()),
        requested_by: row.ended_by.clone().unwrap_or_else(|| SWEEPER.to_owned()),
        requested_by_id: None,
        reason: Some(reason),
    };
    Ok(Some((row.clone(), new)))
}

/// The removal has been applied: the request ends.
async fn settle_taken(
    store: &Store,
    row: &DueRequest,
    now: DateTime<Utc>,
    done: &mut Swept,
) -> Result<(), AccessError> {
    if row.revoke_change_state.as_deref() != Some("applied") {
        return Ok(());
    }
    let request = store.requests().get_request(row.id).await?;
    let note = match row.revoke_change_result.as_deref() {
        Some("target_not_found") => "removed (it was already gone from Entra)",
        _ => "removed from Entra",
    };
    end(store, &request, row.revoke_change_finished_at.unwrap_or(now), note, done).await
}

/// Ends a request whose access is gone: `revoked` if someone ended it early, else `expired`.
async fn end(
    store: &Store,
    request: &Request,
    at: DateTime<Utc>,
    note: &str,
    done: &mut Swept,
) -> Result<(), AccessError> {
    let early = request.ended_by.is_some();
    let state = if early { RequestState::Revoked } else { RequestState::Expired };
    let mut sets = vec![("state", Value::from(state.as_str())), ("ended_at", Value::from(at))];
    if !early {
        sets.push(("end_reason", Value::from(format!("expired; {note}"))));
    }
    let action = if early { "access.ended" } else { "access.expired" };
    let details = json!({"note": note, "change": request.revoke_change_id});
    if store.requests().step(request.id, &[RequestState::Active], &sets, SWEEPER, action, details, at).await?.is_some()
    {
        done.ended += 1;
    }
    Ok(())
}

async fn fail(
    store: &Store,
    request: &Request,
    from: RequestState,
    why: &str,
    now: DateTime<Utc>,
    done: &mut Swept,
) -> Result<(), AccessError> {
    let sets = [
        ("state", Value::from(RequestState::Failed.as_str())),
        ("ended_at", Value::from(now)),
        ("end_reason", Value::from(why.to_owned())),
    ];
    if store
        .requests()
        .step(request.id, &[from], &sets, SWEEPER, "access.failed", json!({"reason": why}), now)
        .await?
        .is_some()
    {
        done.failed += 1;
    }
    Ok(())
}

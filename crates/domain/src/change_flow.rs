//! How a queued change moves once asked for: approved by a second person, cancelled, retried.
//!
//! The store applies a [`Transition`] in one statement fenced by the state it was decided
//! from; the rules of which step is allowed from which state, and who may approve, are here.

use crate::roles::Roles;
use crate::{Change, ChangeState, same_person};

/// Someone, by name and (when signed in) identity `tenant/objectId`.
#[derive(Debug, Clone, Copy)]
pub struct Person<'a> {
    pub name: &'a str,
    pub id: Option<&'a str>,
}

/// What a person does to a change.
#[derive(Debug, Clone, Copy)]
pub enum ChangeStep<'a> {
    Approve(Person<'a>),
    /// A second person refuses a sensitive change, saying why.
    Deny(Person<'a>, &'a str),
    Cancel,
    Retry,
}

/// Where a step takes a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub state: ChangeState,
    /// The approver, by name and identity, for an approval.
    pub approved_by: Option<(String, Option<String>)>,
    /// Attempts start again from nothing (a retry).
    pub reset: bool,
    /// Who denied it, by name and identity, and why, for a denial.
    pub denied: Option<Denial>,
}

/// A second person's refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub by: String,
    pub by_id: Option<String>,
    pub reason: String,
}

/// Why a step was refused; each has a stable [`code`](ChangeRefusal::code) for the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeRefusal {
    #[error("change {id} is {state}; only changes awaiting approval can be approved")]
    NotAwaitingApproval { id: i64, state: ChangeState },
    #[error("change {id} was requested by you; a second person must approve it")]
    OwnChange { id: i64 },
    #[error("change {id} is {state}; only changes awaiting approval can be denied")]
    NotDeniable { id: i64, state: ChangeState },
    #[error("change {id} was requested by you; withdraw it with cancel instead of denying it")]
    OwnDenial { id: i64 },
    #[error("say why change {id} is denied: the requester and the audit log are told")]
    DenialWithoutReason { id: i64 },
    #[error("change {id} is being applied right now; wait for it to finish (then reverse it with a new change)")]
    BeingApplied { id: i64 },
    #[error("change {id} is already {state}; only pending changes can be cancelled")]
    NotCancellable { id: i64, state: ChangeState },
    #[error("change {id} is {state}; only failed changes, or those whose outcome is unknown, can be retried")]
    NotRetryable { id: i64, state: ChangeState },
    /// Someone else moved it between reading and writing.
    #[error("change {id} changed while this was being done; look again")]
    ChangedMeanwhile { id: i64 },
}

impl ChangeRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            ChangeRefusal::NotAwaitingApproval { .. } => "change_not_awaiting_approval",
            ChangeRefusal::OwnChange { .. } => "change_own_approval",
            ChangeRefusal::NotDeniable { .. } => "change_not_deniable",
            ChangeRefusal::OwnDenial { .. } => "change_own_denial",
            ChangeRefusal::DenialWithoutReason { .. } => "change_denial_reason_missing",
            ChangeRefusal::BeingApplied { .. } => "change_being_applied",
            ChangeRefusal::NotCancellable { .. } => "change_not_cancellable",
            ChangeRefusal::NotRetryable { .. } => "change_not_retryable",
            ChangeRefusal::ChangedMeanwhile { .. } => "change_changed_meanwhile",
        }
    }
}

/// Where `step` takes `change`, or why it cannot.
pub fn step(change: &Change, step: ChangeStep) -> Result<Transition, ChangeRefusal> {
    let (id, state) = (change.id.0, change.state);
    let to = |state| Transition { state, approved_by: None, reset: false, denied: None };
    match step {
        ChangeStep::Approve(_) if state != ChangeState::AwaitingApproval => {
            Err(ChangeRefusal::NotAwaitingApproval { id, state })
        }
        ChangeStep::Approve(approver) if asked_for(change, approver) => Err(ChangeRefusal::OwnChange { id }),
        ChangeStep::Approve(approver) => Ok(Transition {
            approved_by: Some((approver.name.to_owned(), approver.id.map(str::to_owned))),
            ..to(ChangeState::Pending)
        }),
        ChangeStep::Deny(_, _) if state != ChangeState::AwaitingApproval => {
            Err(ChangeRefusal::NotDeniable { id, state })
        }
        ChangeStep::Deny(denier, _) if asked_for(change, denier) => Err(ChangeRefusal::OwnDenial { id }),
        ChangeStep::Deny(denier, reason) => {
            let reason = crate::change::reason_given(reason).ok_or(ChangeRefusal::DenialWithoutReason { id })?;
            let denial = Denial { by: denier.name.to_owned(), by_id: denier.id.map(str::to_owned), reason };
            Ok(Transition { denied: Some(denial), ..to(ChangeState::Denied) })
        }
        ChangeStep::Cancel => match state {
            ChangeState::Pending | ChangeState::AwaitingApproval | ChangeState::OutcomeUnknown => {
                Ok(to(ChangeState::Cancelled))
            }
            ChangeState::InProgress => Err(ChangeRefusal::BeingApplied { id }),
            state => Err(ChangeRefusal::NotCancellable { id, state }),
        },
        ChangeStep::Retry => match state {
            ChangeState::Failed | ChangeState::OutcomeUnknown => {
                Ok(Transition { reset: true, ..to(ChangeState::Pending) })
            }
            state => Err(ChangeRefusal::NotRetryable { id, state }),
        },
    }
}

/// Whether `person` asked for `change` (by identity when both have one; see [`same_person`]).
pub fn asked_for(change: &Change, person: Person) -> bool {
    same_person((&change.requested_by, change.requested_by_id.as_deref()), (person.name, person.id))
}

/// Who may approve a change: someone who operates its connector (an administrator or one of
/// its owners) and is not the person who asked for it.
pub fn may_approve(roles: &Roles, change: &Change, person: Person) -> bool {
    roles.can_operate(change.connector_id) && !asked_for(change, person)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChangeAction, ChangeId, ChangeOrigin, ConnectorId};
    use chrono::TimeZone;

    fn change(state: ChangeState) -> Change {
        let now = chrono::Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap();
        let action = ChangeAction::RevokeSessions { user: "u1".into() };
        Change {
            id: ChangeId(7),
            connector_id: ConnectorId(1),
            kind: action.kind(),
            action,
            idempotency_key: "k".into(),
            origin: ChangeOrigin::Manual,
            origin_ref: None,
            requested_by: "ada@contoso.com".into(),
            requested_by_id: Some("t/ada".into()),
            state,
            result: None,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            graph_request_id: None,
            verified: None,
            approved_by: None,
            approved_by_id: None,
            reason: None,
            denied_by: None,
            denied_by_id: None,
            denial_reason: None,
            lease_owner: None,
            lease_expires_at: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
        }
    }

    const BOB: Person = Person { name: "bob@contoso.com", id: Some("t/bob") };

    #[test]
    fn approval_needs_a_change_awaiting_it_and_a_second_person() {
        let awaiting = change(ChangeState::AwaitingApproval);
        let approved = step(&awaiting, ChangeStep::Approve(BOB)).unwrap();
        assert_eq!(approved.state, ChangeState::Pending);
        assert_eq!(approved.approved_by, Some(("bob@contoso.com".into(), Some("t/bob".into()))));
        // The requester under another name is still the requester.
        let ada = Person { name: "ada.renamed@contoso.com", id: Some("T/ADA") };
        assert_eq!(step(&awaiting, ChangeStep::Approve(ada)), Err(ChangeRefusal::OwnChange { id: 7 }));
        let pending = change(ChangeState::Pending);
        let refused = step(&pending, ChangeStep::Approve(BOB)).unwrap_err();
        assert_eq!(refused.code(), "change_not_awaiting_approval");
    }

    #[test]
    fn a_denial_is_a_second_persons_decision_with_a_reason() {
        let awaiting = change(ChangeState::AwaitingApproval);
        let denied = step(&awaiting, ChangeStep::Deny(BOB, "  not during the freeze ")).unwrap();
        assert_eq!(denied.state, ChangeState::Denied);
        assert!(denied.state.is_final());
        let denial = denied.denied.unwrap();
        assert_eq!((denial.by.as_str(), denial.reason.as_str()), ("bob@contoso.com", "not during the freeze"));
        assert_eq!(step(&awaiting, ChangeStep::Deny(BOB, " ")), Err(ChangeRefusal::DenialWithoutReason { id: 7 }));
        // The requester withdraws their own request; they do not deny it.
        let ada = Person { name: "ada@contoso.com", id: Some("t/ada") };
        assert_eq!(step(&awaiting, ChangeStep::Deny(ada, "oops")), Err(ChangeRefusal::OwnDenial { id: 7 }));
        let refused = step(&change(ChangeState::Pending), ChangeStep::Deny(BOB, "no")).unwrap_err();
        assert_eq!(refused.code(), "change_not_deniable");
        assert!(matches!(
            step(&change(ChangeState::Denied), ChangeStep::Cancel),
            Err(ChangeRefusal::NotCancellable { .. })
        ));
    }

    #[test]
    fn cancel_and_retry_follow_the_state() {
        for state in [ChangeState::Pending, ChangeState::AwaitingApproval, ChangeState::OutcomeUnknown] {
            assert_eq!(step(&change(state), ChangeStep::Cancel).unwrap().state, ChangeState::Cancelled);
        }
        assert_eq!(
            step(&change(ChangeState::InProgress), ChangeStep::Cancel),
            Err(ChangeRefusal::BeingApplied { id: 7 })
        );
        assert!(matches!(
            step(&change(ChangeState::Applied), ChangeStep::Cancel),
            Err(ChangeRefusal::NotCancellable { .. })
        ));
        let retried = step(&change(ChangeState::Failed), ChangeStep::Retry).unwrap();
        assert_eq!((retried.state, retried.reset), (ChangeState::Pending, true));
        assert!(matches!(
            step(&change(ChangeState::Applied), ChangeStep::Retry),
            Err(ChangeRefusal::NotRetryable { .. })
        ));
    }

    #[test]
    fn approvers_operate_the_connector_and_did_not_ask() {
        let awaiting = change(ChangeState::AwaitingApproval);
        assert!(may_approve(&Roles::admin(), &awaiting, BOB));
        assert!(may_approve(&Roles::owner_of(vec![ConnectorId(1)]), &awaiting, BOB));
        assert!(!may_approve(&Roles::owner_of(vec![ConnectorId(2)]), &awaiting, BOB), "another connector's owner");
        let ada = Person { name: "ada@contoso.com", id: None };
        assert!(!may_approve(&Roles::admin(), &awaiting, ada), "the requester, by name");
    }
}

//! Changes: one operation on the directory, queued durably and applied by the provisioner.
//!
//! A change names its target by directory object ids (what Graph takes), carries an
//! idempotency key (enqueueing the same key twice queues one change), and moves through
//! `pending` (or `awaiting_approval`) → `in_progress` → `applied` / `failed`, or `cancelled`.
//! Applying one twice has the effect of applying it once: "already a member" and "not a member"
//! are results (`already_in_state`, `target_not_found`), not failures.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ChangeId, ConnectorId};
use crate::macros::string_enum;

/// What to do, with the directory object ids it needs. Serialised as `{"kind": ..., fields}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChangeAction {
    AddGroupMember {
        group: String,
        member: String,
    },
    RemoveGroupMember {
        group: String,
        member: String,
    },
    AddGroupOwner {
        group: String,
        owner: String,
    },
    RemoveGroupOwner {
        group: String,
        owner: String,
    },
    /// `app` is the resource service principal; `app_role` the role id (all zeros: default access).
    AssignAppRole {
        app: String,
        principal: String,
        app_role: String,
    },
    /// Removed by assignment id when known (it is what Graph deletes by); otherwise the
    /// assignment of `app_role` to `principal` is looked up.
    RemoveAppRoleAssignment {
        app: String,
        principal: String,
        app_role: String,
        assignment_id: Option<String>,
    },
    AddAppOwner {
        app: String,
        owner: String,
    },
    RemoveAppOwner {
        app: String,
        owner: String,
    },
    /// A permanent active directory role assignment; `scope` is a `directoryScopeId` (`/`).
    AddRoleAssignment {
        role: String,
        principal: String,
        scope: String,
    },
    RemoveRoleAssignment {
        role: String,
        principal: String,
        scope: String,
        assignment_id: Option<String>,
    },
    /// PIM: an eligibility, until `until` (permanent when `None`).
    AddRoleEligibility {
        role: String,
        principal: String,
        scope: String,
        until: Option<DateTime<Utc>>,
    },
    RemoveRoleEligibility {
        role: String,
        principal: String,
        scope: String,
    },
    /// PIM: an active assignment that ends by itself at `until`.
    AddTimeBoundRoleAssignment {
        role: String,
        principal: String,
        scope: String,
        until: DateTime<Utc>,
    },
    RemoveTimeBoundRoleAssignment {
        role: String,
        principal: String,
        scope: String,
    },
    RevokeSessions {
        user: String,
    },
    BlockSignIn {
        user: String,
    },
    UnblockSignIn {
        user: String,
    },
    /// A temporary password, changed at next sign-in. The password is generated when applied,
    /// shown once to whoever applies it, and never stored or logged.
    ResetPassword {
        user: String,
    },
    DeleteUser {
        user: String,
    },
    RestoreUser {
        user: String,
    },
}

string_enum! {
    /// The kind of a change, for listing, filtering and policy (which kinds are sensitive).
    pub enum ChangeKind as "change kind" {
        AddGroupMember => "add_group_member",
        RemoveGroupMember => "remove_group_member",
        AddGroupOwner => "add_group_owner",
        RemoveGroupOwner => "remove_group_owner",
        AssignAppRole => "assign_app_role",
        RemoveAppRoleAssignment => "remove_app_role_assignment",
        AddAppOwner => "add_app_owner",
        RemoveAppOwner => "remove_app_owner",
        AddRoleAssignment => "add_role_assignment",
        RemoveRoleAssignment => "remove_role_assignment",
        AddRoleEligibility => "add_role_eligibility",
        RemoveRoleEligibility => "remove_role_eligibility",
        AddTimeBoundRoleAssignment => "add_time_bound_role_assignment",
        RemoveTimeBoundRoleAssignment => "remove_time_bound_role_assignment",
        RevokeSessions => "revoke_sessions",
        BlockSignIn => "block_sign_in",
        UnblockSignIn => "unblock_sign_in",
        ResetPassword => "reset_password",
        DeleteUser => "delete_user",
        RestoreUser => "restore_user",
    }
}

/// Broad classes a sensitivity policy is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeClass {
    Membership,
    Ownership,
    AppRole,
    DirectoryRole,
    UserAction,
    /// Revoking a user's sign-in sessions: an incident response that cannot lock anyone out
    /// (it only makes them sign in again), so not sensitive by default.
    Sessions,
}

impl ChangeKind {
    pub fn class(self) -> ChangeClass {
        use ChangeKind::*;
        match self {
            AddGroupMember | RemoveGroupMember => ChangeClass::Membership,
            AddGroupOwner | RemoveGroupOwner | AddAppOwner | RemoveAppOwner => ChangeClass::Ownership,
            AssignAppRole | RemoveAppRoleAssignment => ChangeClass::AppRole,
            AddRoleAssignment
            | RemoveRoleAssignment
            | AddRoleEligibility
            | RemoveRoleEligibility
            | AddTimeBoundRoleAssignment
            | RemoveTimeBoundRoleAssignment => ChangeClass::DirectoryRole,
            RevokeSessions => ChangeClass::Sessions,
            BlockSignIn | UnblockSignIn | ResetPassword | DeleteUser | RestoreUser => ChangeClass::UserAction,
        }
    }

    /// The kind of resource the change's target is (`None`: it acts on a user).
    pub fn resource_kind(self) -> Option<crate::ResourceKind> {
        use crate::ResourceKind as R;
        use ChangeKind::*;
        match self {
            AddGroupMember | RemoveGroupMember | AddGroupOwner | RemoveGroupOwner => Some(R::Group),
            AddAppOwner | RemoveAppOwner | AssignAppRole | RemoveAppRoleAssignment => Some(R::Application),
            AddRoleAssignment
            | RemoveRoleAssignment
            | AddRoleEligibility
            | RemoveRoleEligibility
            | AddTimeBoundRoleAssignment
            | RemoveTimeBoundRoleAssignment => Some(R::DirectoryRole),
            RevokeSessions | BlockSignIn | UnblockSignIn | ResetPassword | DeleteUser | RestoreUser => None,
        }
    }

    /// Whether the change gives access (as opposed to taking it away or acting on a user).
    /// What taking this action does beyond its description, for the page that asks to confirm
    /// it (removals, blocking and deleting); `None` where the description says it all.
    pub fn consequence(self) -> Option<&'static str> {
        use ChangeKind::*;
        Some(match self {
            RemoveGroupMember => {
                "They stop being a member of the group in Entra and lose every access that comes through it: \
                 its app roles, its directory roles, and the groups it is nested in."
            }
            RemoveGroupOwner => "They can no longer manage the group's members or settings.",
            RemoveAppRoleAssignment => {
                "They lose the app role; the application stops granting it at their next sign-in or token refresh."
            }
            RemoveAppOwner => "They can no longer manage the application's settings, credentials or assignments.",
            RemoveRoleAssignment | RemoveTimeBoundRoleAssignment => {
                "They lose the directory role's permissions in Entra at once."
            }
            RemoveRoleEligibility => "They can no longer activate the directory role.",
            BlockSignIn => {
                "They cannot sign in to anything that uses Entra until sign-in is unblocked. Sessions already \
                 open last until their tokens expire: revoke their sessions too to end them now."
            }
            DeleteUser => {
                "The account goes to Entra's deleted items with its group memberships and app assignments; \
                 it can be restored for 30 days, then it is gone for good."
            }
            _ => return None,
        })
    }

    pub fn grants_access(self) -> bool {
        use ChangeKind::*;
        matches!(
            self,
            AddGroupMember
                | AddGroupOwner
                | AssignAppRole
                | AddAppOwner
                | AddRoleAssignment
                | AddRoleEligibility
                | AddTimeBoundRoleAssignment
        )
    }
}

impl ChangeAction {
    pub fn kind(&self) -> ChangeKind {
        use ChangeAction as A;
        match self {
            A::AddGroupMember { .. } => ChangeKind::AddGroupMember,
            A::RemoveGroupMember { .. } => ChangeKind::RemoveGroupMember,
            A::AddGroupOwner { .. } => ChangeKind::AddGroupOwner,
            A::RemoveGroupOwner { .. } => ChangeKind::RemoveGroupOwner,
            A::AssignAppRole { .. } => ChangeKind::AssignAppRole,
            A::RemoveAppRoleAssignment { .. } => ChangeKind::RemoveAppRoleAssignment,
            A::AddAppOwner { .. } => ChangeKind::AddAppOwner,
            A::RemoveAppOwner { .. } => ChangeKind::RemoveAppOwner,
            A::AddRoleAssignment { .. } => ChangeKind::AddRoleAssignment,
            A::RemoveRoleAssignment { .. } => ChangeKind::RemoveRoleAssignment,
            A::AddRoleEligibility { .. } => ChangeKind::AddRoleEligibility,
            A::RemoveRoleEligibility { .. } => ChangeKind::RemoveRoleEligibility,
            A::AddTimeBoundRoleAssignment { .. } => ChangeKind::AddTimeBoundRoleAssignment,
            A::RemoveTimeBoundRoleAssignment { .. } => ChangeKind::RemoveTimeBoundRoleAssignment,
            A::RevokeSessions { .. } => ChangeKind::RevokeSessions,
            A::BlockSignIn { .. } => ChangeKind::BlockSignIn,
            A::UnblockSignIn { .. } => ChangeKind::UnblockSignIn,
            A::ResetPassword { .. } => ChangeKind::ResetPassword,
            A::DeleteUser { .. } => ChangeKind::DeleteUser,
            A::RestoreUser { .. } => ChangeKind::RestoreUser,
        }
    }

    /// The directory object the change is about (the user, or the group / app / role).
    pub fn target(&self) -> &str {
        use ChangeAction as A;
        match self {
            A::AddGroupMember { group, .. }
            | A::RemoveGroupMember { group, .. }
            | A::AddGroupOwner { group, .. }
            | A::RemoveGroupOwner { group, .. } => group,
            A::AssignAppRole { app, .. }
            | A::RemoveAppRoleAssignment { app, .. }
            | A::AddAppOwner { app, .. }
            | A::RemoveAppOwner { app, .. } => app,
            A::AddRoleAssignment { role, .. }
            | A::RemoveRoleAssignment { role, .. }
            | A::AddRoleEligibility { role, .. }
            | A::RemoveRoleEligibility { role, .. }
            | A::AddTimeBoundRoleAssignment { role, .. }
            | A::RemoveTimeBoundRoleAssignment { role, .. } => role,
            A::RevokeSessions { user }
            | A::BlockSignIn { user }
            | A::UnblockSignIn { user }
            | A::ResetPassword { user }
            | A::DeleteUser { user }
            | A::RestoreUser { user } => user,
        }
    }

    /// The principal that gains or loses access, for access changes.
    pub fn principal(&self) -> Option<&str> {
        use ChangeAction as A;
        match self {
            A::AddGroupMember { member, .. } | A::RemoveGroupMember { member, .. } => Some(member),
            A::AddGroupOwner { owner, .. }
            | A::RemoveGroupOwner { owner, .. }
            | A::AddAppOwner { owner, .. }
            | A::RemoveAppOwner { owner, .. } => Some(owner),
            A::AssignAppRole { principal, .. }
            | A::RemoveAppRoleAssignment { principal, .. }
            | A::AddRoleAssignment { principal, .. }
            | A::RemoveRoleAssignment { principal, .. }
            | A::AddRoleEligibility { principal, .. }
            | A::RemoveRoleEligibility { principal, .. }
            | A::AddTimeBoundRoleAssignment { principal, .. }
            | A::RemoveTimeBoundRoleAssignment { principal, .. } => Some(principal),
            _ => None,
        }
    }

    /// One line for people: "add member 1b2c… to group 9f8e…".
    pub fn describe(&self) -> String {
        use ChangeAction as A;
        match self {
            A::AddGroupMember { group, member } => format!("add member {member} to group {group}"),
            A::RemoveGroupMember { group, member } => format!("remove member {member} from group {group}"),
            A::AddGroupOwner { group, owner } => format!("add owner {owner} to group {group}"),
            A::RemoveGroupOwner { group, owner } => format!("remove owner {owner} from group {group}"),
            A::AssignAppRole { app, principal, app_role } => {
                format!("assign app role {app_role} of {app} to {principal}")
            }
            A::RemoveAppRoleAssignment { app, principal, app_role, .. } => {
                format!("remove app role {app_role} of {app} from {principal}")
            }
            A::AddAppOwner { app, owner } => format!("add owner {owner} to application {app}"),
            A::RemoveAppOwner { app, owner } => format!("remove owner {owner} from application {app}"),
            A::AddRoleAssignment { role, principal, scope } => {
                format!("assign directory role {role} to {principal} at {scope}")
            }
            A::RemoveRoleAssignment { role, principal, scope, .. } => {
                format!("remove directory role {role} from {principal} at {scope}")
            }
            A::AddRoleEligibility { role, principal, scope, until } => match until {
                Some(until) => format!("make {principal} eligible for directory role {role} at {scope} until {until}"),
                None => format!("make {principal} eligible for directory role {role} at {scope}"),
            },
            A::RemoveRoleEligibility { role, principal, scope } => {
                format!("remove {principal}'s eligibility for directory role {role} at {scope}")
            }
            A::AddTimeBoundRoleAssignment { role, principal, scope, until } => {
                format!("assign directory role {role} to {principal} at {scope} until {until}")
            }
            A::RemoveTimeBoundRoleAssignment { role, principal, scope } => {
                format!("end {principal}'s time-bound assignment of directory role {role} at {scope}")
            }
            A::RevokeSessions { user } => format!("revoke the sign-in sessions of {user}"),
            A::BlockSignIn { user } => format!("block sign-in of {user}"),
            A::UnblockSignIn { user } => format!("unblock sign-in of {user}"),
            A::ResetPassword { user } => format!("reset the password of {user}"),
            A::DeleteUser { user } => format!("delete user {user}"),
            A::RestoreUser { user } => format!("restore user {user}"),
        }
    }
}

string_enum! {
    /// Where a change stands.
    pub enum ChangeState as "change state" {
        /// Queued; a worker applies it at `next_attempt_at`.
        Pending => "pending",
        /// Sensitive: waits for a second person to approve it.
        AwaitingApproval => "awaiting_approval",
        /// Claimed by a worker whose lease has not expired.
        InProgress => "in_progress",
        /// Done; `result` says how.
        Applied => "applied",
        /// Given up: a permanent error, or every attempt failed. `last_error` says why and what to do.
        Failed => "failed",
        /// Withdrawn before it was applied.
        Cancelled => "cancelled",
        /// Sensitive, and refused by a second person (`denial_reason` says why); never applied.
        Denied => "denied",
        /// Whoever was applying it stopped (a crash, a lost connection) and its effect cannot be
        /// read back (a password reset): it may or may not have happened. A person retries it
        /// (a new reset) or cancels it.
        OutcomeUnknown => "outcome_unknown",
    }
}

impl ChangeState {
    /// No further transition happens on its own.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ChangeState::Applied
                | ChangeState::Failed
                | ChangeState::Cancelled
                | ChangeState::Denied
                | ChangeState::OutcomeUnknown
        )
    }
}

string_enum! {
    /// How an apply ended.
    pub enum ApplyResult as "apply result" {
        /// The directory changed as asked.
        Applied => "applied",
        /// The directory already was as asked (already a member, already disabled...).
        AlreadyInState => "already_in_state",
        /// What was to be removed is not there (not a member, assignment or user gone).
        TargetNotFound => "target_not_found",
        /// The directory cannot do this (e.g. a licence is missing for PIM).
        NotSupported => "not_supported",
        /// A permanent error; nothing changed.
        Failed => "failed",
    }
}

impl ApplyResult {
    /// The desired state holds afterwards.
    pub fn succeeded(self) -> bool {
        matches!(self, ApplyResult::Applied | ApplyResult::AlreadyInState | ApplyResult::TargetNotFound)
    }
}

string_enum! {
    /// What asked for a change.
    pub enum ChangeOrigin as "change origin" {
        ReviewItem => "review_item",
        AccessRequest => "access_request",
        Expiry => "expiry",
        Manual => "manual",
        Workflow => "workflow",
    }
}

/// A change as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChange {
    pub connector_id: ConnectorId,
    pub action: ChangeAction,
    /// Enqueueing the same key again returns the existing change.
    pub idempotency_key: String,
    pub origin: ChangeOrigin,
    /// The review item, access request or grant it came from, when there is one.
    pub origin_ref: Option<String>,
    /// Who asked, for reading: an email, `cli`, `system`.
    pub requested_by: String,
    /// Who asked, as an identity (`tenant/objectId` of the signed-in person), when a person did:
    /// what the second-person rule compares, as names can change.
    pub requested_by_id: Option<String>,
    /// Why it was asked for, in the requester's words (shown to the approver, kept in the
    /// audit log).
    pub reason: Option<String>,
}

impl NewChange {
    /// A manual change keyed by its action and a request token (so a retried form post or
    /// command does not queue it twice).
    pub fn manual(connector_id: ConnectorId, action: ChangeAction, requested_by: &str, token: &str) -> NewChange {
        NewChange {
            connector_id,
            idempotency_key: format!("manual:{token}:{}", serde_json::to_string(&action).unwrap_or_default()),
            action,
            origin: ChangeOrigin::Manual,
            origin_ref: None,
            requested_by: requested_by.to_owned(),
            requested_by_id: None,
            reason: None,
        }
    }

    /// The same, with the requester's reason (blank is none; see [`reason_given`]).
    pub fn because(mut self, reason: Option<&str>) -> NewChange {
        self.reason = reason.and_then(reason_given);
        self
    }

    /// The same, naming who asked by their identity too (see [`Change::requested_by_id`]).
    pub fn by(mut self, requested_by_id: Option<String>) -> NewChange {
        self.requested_by_id = requested_by_id;
        self
    }
}

/// Longest reason kept, in characters: a sentence or two, not a document.
pub const MAX_REASON_CHARS: usize = 1000;

/// A reason as typed, trimmed and capped at [`MAX_REASON_CHARS`]; `None` when blank.
pub fn reason_given(typed: &str) -> Option<String> {
    let typed = typed.trim();
    (!typed.is_empty()).then(|| typed.chars().take(MAX_REASON_CHARS).collect())
}

/// The second-person rule: whether the approver is the person who asked. Identities
/// (`tenant/objectId`) are compared when both sides have one, as a name or address can be
/// changed by whoever controls the account; a change asked for without one (the command line,
/// older rows) falls back to the name.
pub fn same_person(requester: (&str, Option<&str>), approver: (&str, Option<&str>)) -> bool {
    match (requester.1, approver.1) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => requester.0.eq_ignore_ascii_case(approver.0),
    }
}

/// A queued change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub id: ChangeId,
    pub connector_id: ConnectorId,
    pub kind: ChangeKind,
    pub action: ChangeAction,
    pub idempotency_key: String,
    pub origin: ChangeOrigin,
    pub origin_ref: Option<String>,
    pub requested_by: String,
    /// Who asked, as an identity, when a signed-in person did (see [`same_person`]).
    pub requested_by_id: Option<String>,
    pub state: ChangeState,
    pub result: Option<ApplyResult>,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    /// Graph's `request-id` of the request that settled it, for support cases.
    pub graph_request_id: Option<String>,
    /// After applying, whether a re-read showed the desired state (`None`: not checked).
    pub verified: Option<bool>,
    pub approved_by: Option<String>,
    pub approved_by_id: Option<String>,
    /// Why it was asked for, when the requester said.
    pub reason: Option<String>,
    /// Who refused it (a denied change), by name and identity, and why.
    pub denied_by: Option<String>,
    pub denied_by_id: Option<String>,
    pub denial_reason: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// How long to wait before attempt `attempts + 1` after a transient failure: exponential from
/// 5 s, capped at 15 minutes (the caller adds jitter). A `Retry-After` that asks for longer wins.
pub fn retry_delay(attempts: u32, retry_after: Option<Duration>) -> Duration {
    let exponential = Duration::from_secs(5).saturating_mul(2u32.saturating_pow(attempts.min(16)));
    let capped = exponential.min(Duration::from_secs(15 * 60));
    retry_after.map_or(capped, |after| capped.max(after))
}

#[cfg(test)]
mod two_person_tests {
    use super::same_person;

    #[test]
    fn identities_decide_and_names_only_without_them() {
        let ada = Some("t/ada-oid");
        assert!(
            same_person(("ada@contoso.com", ada), ("eve@contoso.com", ada)),
            "a changed address is the same person"
        );
        assert!(
            !same_person(("ada@contoso.com", ada), ("ada@contoso.com", Some("t/eve-oid"))),
            "a borrowed address is not"
        );
        assert!(same_person(("ADA@contoso.com", None), ("ada@contoso.com", ada)));
        assert!(!same_person(("cli", None), ("bob@contoso.com", None)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_as_tagged_json_and_name_their_kind() {
        let action = ChangeAction::RemoveAppRoleAssignment {
            app: "sp".into(),
            principal: "u".into(),
            app_role: "r".into(),
            assignment_id: Some("a".into()),
        };
        let json = serde_json::to_value(&action).unwrap();
        assert_eq!(json["kind"], "remove_app_role_assignment");
        assert_eq!(serde_json::from_value::<ChangeAction>(json).unwrap(), action);
        assert_eq!(action.kind().as_str(), "remove_app_role_assignment");
        assert_eq!((action.target(), action.principal()), ("sp", Some("u")));
        assert!(!action.kind().grants_access());
        assert_eq!(ChangeKind::ResetPassword.class(), ChangeClass::UserAction);
    }

    #[test]
    fn a_change_touches_a_resource_of_its_kind_or_acts_on_a_user() {
        use crate::ResourceKind;
        assert_eq!(ChangeKind::AddGroupOwner.resource_kind(), Some(ResourceKind::Group));
        assert_eq!(ChangeKind::AddAppOwner.resource_kind(), Some(ResourceKind::Application));
        assert_eq!(ChangeKind::RemoveAppRoleAssignment.resource_kind(), Some(ResourceKind::Application));
        assert_eq!(ChangeKind::AddRoleEligibility.resource_kind(), Some(ResourceKind::DirectoryRole));
        assert_eq!(ChangeKind::BlockSignIn.resource_kind(), None);
    }

    #[test]
    fn retries_back_off_exponentially_and_honour_retry_after() {
        assert_eq!(retry_delay(0, None), Duration::from_secs(5));
        assert_eq!(retry_delay(3, None), Duration::from_secs(40));
        assert_eq!(retry_delay(30, None), Duration::from_secs(900));
        assert_eq!(retry_delay(0, Some(Duration::from_secs(60))), Duration::from_secs(60));
        assert!(ApplyResult::TargetNotFound.succeeded() && !ApplyResult::NotSupported.succeeded());
    }
}

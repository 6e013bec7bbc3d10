//! Lifecycle events: what a sync saw change in the directory, appended for the workflows and
//! notifications that react to joiners, movers and leavers.
//!
//! Events are written in the same transaction as the change they describe, so a crash never
//! leaves one without the other. A connector's first sync writes none: everything in it is new
//! to Attest, not to the directory.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ConnectorId, EntitlementId, GrantId, LifecycleEventId, PrincipalId, SyncRunId};
use crate::macros::string_enum;

string_enum! {
    /// What happened. Principal events apply to every kind of principal (users, guests, groups,
    /// service principals); grant events to direct and JIT grants (inherited ones follow from
    /// memberships and are not repeated).
    pub enum LifecycleEventKind as "lifecycle event kind" {
        /// A principal appeared in the directory.
        PrincipalCreated => "principal_created",
        /// Sign-in was blocked (`accountEnabled` became false).
        PrincipalDisabled => "principal_disabled",
        /// Sign-in was allowed again.
        PrincipalEnabled => "principal_enabled",
        /// The principal was deleted (or left the sync's scope).
        PrincipalDeleted => "principal_deleted",
        /// A deleted principal came back (restored from the recycle bin, or back in scope).
        PrincipalRestored => "principal_restored",
        /// Someone became a member of a group.
        MembershipAdded => "membership_added",
        /// Someone stopped being a member of a group.
        MembershipRemoved => "membership_removed",
        /// Any other grant began: an app role, an ownership, a directory role (active or eligible).
        AssignmentAdded => "assignment_added",
        /// Any other grant ended.
        AssignmentRemoved => "assignment_removed",
    }
}

impl LifecycleEventKind {
    /// The event for a grant of an entitlement with `key` beginning (`added`) or ending.
    pub fn for_grant(key: &str, added: bool) -> LifecycleEventKind {
        match (key == "member", added) {
            (true, true) => LifecycleEventKind::MembershipAdded,
            (true, false) => LifecycleEventKind::MembershipRemoved,
            (false, true) => LifecycleEventKind::AssignmentAdded,
            (false, false) => LifecycleEventKind::AssignmentRemoved,
        }
    }
}

/// One appended event. `entitlement_id` and `grant_id` are set for grant events only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleEvent {
    pub id: LifecycleEventId,
    pub connector_id: ConnectorId,
    /// The sync run that saw the change.
    pub sync_run_id: Option<SyncRunId>,
    pub kind: LifecycleEventKind,
    pub principal_id: PrincipalId,
    pub entitlement_id: Option<EntitlementId>,
    pub grant_id: Option<GrantId>,
    /// When Attest saw the change (the run's start): Graph does not say when it happened.
    pub detected_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_events_say_membership_for_group_members_only() {
        assert_eq!(LifecycleEventKind::for_grant("member", true), LifecycleEventKind::MembershipAdded);
        assert_eq!(LifecycleEventKind::for_grant("member", false), LifecycleEventKind::MembershipRemoved);
        assert_eq!(LifecycleEventKind::for_grant("owner", true), LifecycleEventKind::AssignmentAdded);
        assert_eq!(LifecycleEventKind::for_grant("role:abc", false), LifecycleEventKind::AssignmentRemoved);
        assert_eq!("membership_added".parse::<LifecycleEventKind>(), Ok(LifecycleEventKind::MembershipAdded));
    }
}

//! Attest's domain: the entitlement graph (principals → grants → entitlements → resources),
//! connectors, sync runs, lifecycle events and the audit chain, as plain types with their rules.
//!
//! No I/O, no async, no database types: everything here can be unit-tested in isolation and
//! shared by the store, the connectors and the web layer.

mod macros;

pub mod access;
pub mod audit;
pub mod change;
pub mod change_flow;
pub mod clock;
pub mod command;
pub mod connector;
pub mod csv;
pub mod entitlement;
pub mod grant;
pub mod ids;
pub mod inheritance;
pub mod lifecycle;
pub mod mail;
pub mod principal;
pub mod resource;
pub mod review;
pub mod roles;
pub mod setup;
pub mod sync;
pub mod time;

pub use audit::{Actor, AuditEvent, AuditEventDraft, BreakReason, ChainBreak, ChainVerifier};
pub use change::{
    ApplyResult, Change, ChangeAction, ChangeClass, ChangeKind, ChangeOrigin, ChangeState, NewChange, retry_delay,
    same_person,
};
pub use clock::{Clock, SharedClock, SystemClock, TestClock};
pub use connector::{Connector, ConnectorKind, ConnectorStatus, is_object_id};
pub use entitlement::{Entitlement, EntitlementData, EntitlementKey};
pub use grant::{Grant, GrantData, GrantSource};
pub use ids::{
    ChangeId, ConnectorId, EntitlementId, GrantId, LifecycleEventId, MailId, PrincipalId, ResourceId, SyncRunId,
};
pub use inheritance::{
    Effect, HeldWay, IneffectiveReason, Inheritance, MembershipPath, Reach, RevokeImpact, Support, revoke_impacts,
    supporting_memberships,
};
pub use lifecycle::{LifecycleEvent, LifecycleEventKind};
pub use mail::{Mail, MailState, NewMail, mail_retry_delay};
pub use principal::{Principal, PrincipalData, PrincipalKind, UserType, work_email};
pub use resource::{Resource, ResourceData, ResourceKind};
pub use sync::{KindCounts, SyncCounts, SyncMode, SyncRun, SyncStatus, SyncTrigger};

/// A string did not name any variant of one of the domain's enumerations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not a valid {what} (expected one of: {expected})")]
pub struct UnknownVariant {
    /// What was being parsed, e.g. "principal kind".
    pub what: &'static str,
    /// The text that did not match.
    pub value: String,
    /// The accepted spellings, comma separated.
    pub expected: &'static str,
}

//! Just-in-time access: what can be asked for (a policy per entitlement or per kind of
//! resource), for how long, who approves, and how a request moves. Pure rules; the store keeps
//! policies and requests, `attest-access` runs them.

pub mod policy;
pub mod request;
pub mod span;

pub use policy::{AccessPolicy, Approver, PolicyError, Requesters};
pub use request::{
    AccessRefusal, Asking, BadEntitlementRef, EntitlementRef, Notice, RequestState, Right, Tally, check_approvers,
    check_asking, expiry, expiry_notice, tally,
};
pub use span::{BadSpan, Length, Span};

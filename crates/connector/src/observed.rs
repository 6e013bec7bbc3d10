//! Observations as a connector makes them: keyed by the directory's ids, not the graph's.

use attest_domain::{EntitlementKey, ResourceKind};
use chrono::{DateTime, Utc};

/// An entitlement offered by a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedEntitlement {
    pub resource_kind: ResourceKind,
    pub resource_external_id: String,
    pub key: EntitlementKey,
    pub display_name: String,
    pub description: Option<String>,
}

/// A principal holding an entitlement, directly.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedGrant {
    pub resource_kind: ResourceKind,
    pub resource_external_id: String,
    pub key: EntitlementKey,
    pub principal_external_id: String,
    /// `/` or an administrative unit for directory roles; empty otherwise.
    pub scope: String,
    pub external_ref: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The directory keeps the end itself (a PIM schedule): `expires_at: None` is permanent.
    pub end_known: bool,
}

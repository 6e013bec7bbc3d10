//! Grants: a principal holding an entitlement.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ConnectorId, EntitlementId, GrantId, PrincipalId};
use crate::inheritance::IneffectiveReason;
use crate::macros::string_enum;

string_enum! {
    /// Why a principal holds an entitlement.
    pub enum GrantSource as "grant source" {
        /// Assigned directly in the directory.
        Direct => "direct",
        /// Held through membership of a group that holds it; derived, never provisioned.
        Inherited => "inherited",
        /// Provisioned by Attest for a limited time after an access request.
        Jit => "jit",
    }
}

/// A direct grant as observed in the directory (ids already resolved). Sync upserts these;
/// inherited grants are derived by the store, and `jit` is set by the access workflow.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GrantData {
    pub entitlement_id: EntitlementId,
    pub principal_id: PrincipalId,
    /// Where the grant applies: `/` or an administrative unit for directory roles, empty otherwise.
    pub scope: String,
    /// The directory's id for the assignment (appRoleAssignment id, roleAssignment id, ...).
    pub external_ref: Option<String>,
    /// When the grant ends by itself (PIM schedule end, just-in-time expiry).
    pub expires_at: Option<DateTime<Utc>>,
    /// The directory keeps this grant's end itself (a PIM schedule was read): `expires_at`
    /// is then its word, `None` meaning permanent there. Memberships and app roles have no end
    /// in the directory, so a sync says nothing of theirs.
    pub end_known: bool,
}

/// A grant as stored. Grants are never deleted: one that disappears gets `ended_at`, so the
/// history of who had what stays answerable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Grant {
    pub id: GrantId,
    pub connector_id: ConnectorId,
    pub entitlement_id: EntitlementId,
    pub principal_id: PrincipalId,
    pub source: GrantSource,
    /// For inherited grants: the group whose direct grant this one flows from.
    pub via_principal_id: Option<PrincipalId>,
    /// For an inherited grant Entra does not honour: why (see [`crate::inheritance`]). Such a
    /// row is listed, never counted as access.
    pub ineffective: Option<IneffectiveReason>,
    /// For an ineffective grant reached through a nested group: that group, the direct member
    /// of `via` the principal is listed through.
    pub through_principal_id: Option<PrincipalId>,
    pub scope: String,
    pub external_ref: Option<String>,
    pub first_seen_at: DateTime<Utc>,
    /// The last time a sync observed the grant: the connector's latest sync while the grant is
    /// current, the last sync that still saw it once it has ended.
    pub last_seen_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Grant {
    /// Whether the principal holds the entitlement at `now` (not ended, not expired).
    pub fn is_current(&self, now: DateTime<Utc>) -> bool {
        self.ended_at.is_none() && self.expires_at.is_none_or(|expiry| expiry > now)
    }

    /// Whether the grant is access Entra actually gives (see [`crate::inheritance`]).
    pub fn is_effective(&self) -> bool {
        self.ineffective.is_none()
    }
}

//! Entitlements: grantable rights on a resource.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::UnknownVariant;
use crate::ids::{ConnectorId, EntitlementId, ResourceId};
use crate::resource::ResourceKind;

/// Which right on a resource an entitlement is. Its spelling (`member`, `owner`,
/// `role:<appRoleId>`, `active`, `eligible`) is the entitlement's stable key within its resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntitlementKey {
    /// Group membership.
    Member,
    /// Ownership of a group or application.
    Owner,
    /// An application role, by its `appRoleId` (the all-zero id is "default access").
    AppRole(String),
    /// An active directory role assignment.
    Active,
    /// A PIM eligibility for a directory role.
    Eligible,
}

impl EntitlementKey {
    /// The application role id Entra uses for "default access" (an assignment without a role).
    pub const DEFAULT_ACCESS_ROLE_ID: &'static str = "00000000-0000-0000-0000-000000000000";

    /// Whether this entitlement can exist on a resource of `kind`.
    pub fn applies_to(&self, kind: ResourceKind) -> bool {
        matches!(
            (self, kind),
            (EntitlementKey::Member, ResourceKind::Group)
                | (EntitlementKey::Owner, ResourceKind::Group | ResourceKind::Application)
                | (EntitlementKey::AppRole(_), ResourceKind::Application)
                | (EntitlementKey::Active | EntitlementKey::Eligible, ResourceKind::DirectoryRole)
        )
    }

    /// A readable default name ("Member", "Owner", "Active assignment", ...).
    pub fn default_display_name(&self) -> String {
        match self {
            EntitlementKey::Member => "Member".into(),
            EntitlementKey::Owner => "Owner".into(),
            EntitlementKey::AppRole(id) if id == Self::DEFAULT_ACCESS_ROLE_ID => "Default access".into(),
            EntitlementKey::AppRole(id) => format!("App role {id}"),
            EntitlementKey::Active => "Active assignment".into(),
            EntitlementKey::Eligible => "Eligible assignment".into(),
        }
    }
}

impl fmt::Display for EntitlementKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntitlementKey::Member => f.write_str("member"),
            EntitlementKey::Owner => f.write_str("owner"),
            EntitlementKey::AppRole(id) => write!(f, "role:{id}"),
            EntitlementKey::Active => f.write_str("active"),
            EntitlementKey::Eligible => f.write_str("eligible"),
        }
    }
}

impl FromStr for EntitlementKey {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "member" => Ok(EntitlementKey::Member),
            "owner" => Ok(EntitlementKey::Owner),
            "active" => Ok(EntitlementKey::Active),
            "eligible" => Ok(EntitlementKey::Eligible),
            _ => match s.strip_prefix("role:") {
                Some(id) if !id.is_empty() => Ok(EntitlementKey::AppRole(id.to_owned())),
                _ => Err(UnknownVariant {
                    what: "entitlement key",
                    value: s.to_owned(),
                    expected: "member owner role:<appRoleId> active eligible",
                }),
            },
        }
    }
}

impl Serialize for EntitlementKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EntitlementKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An entitlement as observed in the directory: what sync may set. Policy flags
/// (requestable, sensitive, max duration) belong to Attest and are never overwritten by sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntitlementData {
    pub resource_id: ResourceId,
    pub key: EntitlementKey,
    pub display_name: String,
    pub description: Option<String>,
}

/// An entitlement as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entitlement {
    pub id: EntitlementId,
    pub connector_id: ConnectorId,
    #[serde(flatten)]
    pub data: EntitlementData,
    /// Employees may request it just in time.
    pub requestable: bool,
    /// Changes to it need a second person's approval.
    pub sensitive: bool,
    /// Longest just-in-time duration allowed, in seconds.
    pub max_duration_secs: Option<i64>,
    /// Set once the directory no longer offers it (e.g. an app role was removed).
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for text in ["member", "owner", "role:0f1e", "active", "eligible"] {
            assert_eq!(text.parse::<EntitlementKey>().map(|k| k.to_string()).as_deref(), Ok(text));
        }
        assert!("role:".parse::<EntitlementKey>().is_err());
        assert!("admin".parse::<EntitlementKey>().is_err());
    }

    #[test]
    fn keys_only_apply_to_their_resource_kinds() {
        assert!(EntitlementKey::Member.applies_to(ResourceKind::Group));
        assert!(!EntitlementKey::Member.applies_to(ResourceKind::Application));
        assert!(EntitlementKey::Owner.applies_to(ResourceKind::Application));
        assert!(!EntitlementKey::Owner.applies_to(ResourceKind::DirectoryRole));
        assert!(EntitlementKey::AppRole("x".into()).applies_to(ResourceKind::Application));
        assert!(EntitlementKey::Eligible.applies_to(ResourceKind::DirectoryRole));
        assert!(!EntitlementKey::Active.applies_to(ResourceKind::Group));
    }
}

//! Resources: what access is to.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ConnectorId, ResourceId};
use crate::macros::string_enum;

string_enum! {
    /// What kind of thing a resource is.
    pub enum ResourceKind as "resource kind" {
        /// A group: entitlements `member` and `owner`.
        Group => "group",
        /// An enterprise application (service principal): `owner` and one per app role.
        Application => "application",
        /// A directory role (role definition): `active` and `eligible`.
        DirectoryRole => "directory_role",
    }
}

/// A resource's attributes as observed in the directory, keyed by kind + `external_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceData {
    pub external_id: String,
    pub kind: ResourceKind,
    pub display_name: String,
    pub description: Option<String>,
    /// Kind-specific attributes as a JSON object: group type flags, app roles, role template id.
    pub attributes: serde_json::Value,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl ResourceData {
    /// A resource with no description and no extra attributes.
    pub fn new(external_id: impl Into<String>, kind: ResourceKind, display_name: impl Into<String>) -> Self {
        ResourceData {
            external_id: external_id.into(),
            kind,
            display_name: display_name.into(),
            description: None,
            attributes: serde_json::Value::Object(serde_json::Map::new()),
            deleted_at: None,
        }
    }
}

/// A resource as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resource {
    pub id: ResourceId,
    pub connector_id: ConnectorId,
    #[serde(flatten)]
    pub data: ResourceData,
    pub first_seen_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Why Microsoft Graph cannot change who holds `key` on a group with these synced attributes
/// (the flags `attest-entra` stores): `None` when it can. Distribution lists and mail-enabled
/// security groups are managed in Exchange Online (members and owners alike); a dynamic group's
/// members come from its rule; an on-premises group's members are changed on-premises. Graph
/// answers such writes with 403 `Authorization_RequestDenied`, so they are refused before they
/// are queued.
pub fn group_managed_elsewhere(attributes: &serde_json::Value, key: &crate::EntitlementKey) -> Option<&'static str> {
    let flag = |name: &str| attributes.get(name).and_then(serde_json::Value::as_bool).unwrap_or(false);
    let membership = *key == crate::EntitlementKey::Member;
    if flag("distribution") {
        Some("it is a distribution list, managed in Exchange Online, not through Microsoft Graph")
    } else if flag("mailEnabledSecurity") {
        Some("it is a mail-enabled security group, managed in Exchange Online, not through Microsoft Graph")
    } else if membership && flag("dynamic") {
        Some("its members come from its dynamic membership rule")
    } else if membership && flag("onPremisesSynced") {
        Some("it is synced from on-premises Active Directory; change its members there")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::group_managed_elsewhere;
    use crate::EntitlementKey::{Member, Owner};
    use serde_json::json;

    #[test]
    fn groups_graph_cannot_change_are_told_apart() {
        let security = json!({"security": true});
        assert_eq!(
            (group_managed_elsewhere(&security, &Member), group_managed_elsewhere(&security, &Owner)),
            (None, None)
        );
        let m365 = json!({"microsoft365": true, "mailEnabled": true});
        assert_eq!(
            group_managed_elsewhere(&m365, &Member),
            None,
            "Microsoft 365 groups are mail-enabled, and changeable"
        );
        for exchange in [json!({"distribution": true}), json!({"mailEnabledSecurity": true})] {
            assert!(group_managed_elsewhere(&exchange, &Member).unwrap().contains("Exchange"));
            assert!(group_managed_elsewhere(&exchange, &Owner).is_some());
        }
        let dynamic = json!({"dynamic": true, "security": true});
        assert!(group_managed_elsewhere(&dynamic, &Member).unwrap().contains("rule"));
        assert_eq!(group_managed_elsewhere(&dynamic, &Owner), None, "its owners are not ruled");
        let synced = json!({"onPremisesSynced": true});
        assert!(group_managed_elsewhere(&synced, &Member).unwrap().contains("on-premises"));
        assert_eq!(group_managed_elsewhere(&json!(null), &Member), None);
    }
}

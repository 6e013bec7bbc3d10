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

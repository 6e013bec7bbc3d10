//! The Entra connector's settings, stored as JSON on the connector row.

use serde::{Deserialize, Serialize};

/// Microsoft's own tenants: service principals they own are first-party applications
/// (graph-facts §4; a community convention, not a documented list).
pub const FIRST_PARTY_TENANTS: &[&str] = &[
    "f8cdef31-a31e-4b4a-93e4-5f571e91255a",
    "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "47df5bb7-e6bc-4256-afb0-dd8c8e3c1ce8",
];

/// Where the tenant is and what of it to sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EntraSettings {
    /// Microsoft Graph's base URL, without `/v1.0` (national clouds have their own).
    pub graph_url: String,
    /// The identity platform's base URL.
    pub login_url: String,
    pub scope: Scope,
    /// How often a delta sync also re-reads every application's role assignments, which Graph
    /// offers no delta for (one request per application): 0 re-reads them on every delta.
    pub app_assignments_refresh_minutes: u32,
    /// What the connector is used for, beyond read-only sync: it decides which permissions
    /// its owners are asked to grant and which the readiness check requires.
    pub features: Features,
}

/// The features a connector is set up for. Sync (read-only) is always on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Features {
    /// Changes in the tenant: revocations, granted requests, user actions.
    pub provisioning: bool,
    /// Each user's last sign-in (needs Entra ID P1 or P2).
    pub sign_in_activity: bool,
    /// Privileged Identity Management: eligible directory roles (needs Entra ID P2).
    pub pim: bool,
}

impl Default for Features {
    fn default() -> Self {
        Features { provisioning: true, sign_in_activity: true, pim: true }
    }
}

impl Features {
    /// The readiness check's names of the features enabled, sync first.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = vec!["sync"];
        for (on, name) in
            [(self.sign_in_activity, "sign-in activity"), (self.pim, "PIM"), (self.provisioning, "provisioning")]
        {
            if on {
                names.push(name);
            }
        }
        names
    }
}

impl Default for EntraSettings {
    fn default() -> Self {
        EntraSettings {
            graph_url: "https://graph.microsoft.com".into(),
            login_url: "https://login.microsoftonline.com".into(),
            scope: Scope::default(),
            app_assignments_refresh_minutes: 60,
            features: Features::default(),
        }
    }
}

/// What is in the graph. The defaults keep guests and disabled users, because reviews are
/// about exactly them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scope {
    pub include_guests: bool,
    pub include_disabled_users: bool,
    /// Groups synchronised from on-premises Active Directory (managed there, read-only here).
    pub include_on_premises_groups: bool,
    /// Applications owned by Microsoft's own tenants (Graph, Office 365 and the like).
    pub include_first_party_apps: bool,
    /// When not empty, only these groups (object ids) are resources; other groups are still
    /// principals, so they can hold access.
    pub groups: Vec<String>,
}

impl Default for Scope {
    fn default() -> Self {
        Scope {
            include_guests: true,
            include_disabled_users: true,
            include_on_premises_groups: true,
            include_first_party_apps: false,
            groups: Vec::new(),
        }
    }
}

impl EntraSettings {
    /// Reads settings stored on a connector; missing keys take their defaults.
    pub fn from_json(value: &serde_json::Value) -> Result<EntraSettings, String> {
        serde_json::from_value(value.clone()).map_err(|e| format!("invalid Entra connector settings: {e}"))
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

//! Principals: who can hold access.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ConnectorId, PrincipalId};
use crate::macros::string_enum;

string_enum! {
    /// What kind of directory object a principal is.
    pub enum PrincipalKind as "principal kind" {
        /// A person (member or guest).
        User => "user",
        /// An Azure managed identity (a service principal of type ManagedIdentity).
        ManagedIdentity => "managed_identity",
        /// Any other service principal (an application's identity).
        ServicePrincipal => "service_principal",
        /// A group: groups hold access too (nested membership, app roles, directory roles).
        Group => "group",
    }
}

string_enum! {
    /// Entra's `userType`.
    pub enum UserType as "user type" {
        Member => "member",
        Guest => "guest",
    }
}

/// A principal's attributes as observed in the directory, keyed by `external_id`.
/// This is what a connector produces and what the store upserts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrincipalData {
    /// The directory's object id (Graph `id`).
    pub external_id: String,
    pub kind: PrincipalKind,
    pub display_name: String,
    pub user_principal_name: Option<String>,
    /// Canonical work email, see [`work_email`].
    pub email: Option<String>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub office_location: Option<String>,
    pub usage_location: Option<String>,
    pub employee_id: Option<String>,
    /// The manager's external id; resolved by lookup, so the manager need not be synced first.
    pub manager_external_id: Option<String>,
    pub account_enabled: Option<bool>,
    pub user_type: Option<UserType>,
    /// When the object was created in the directory.
    pub created_in_source_at: Option<DateTime<Utc>>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    /// Set while the object is soft-deleted in the directory.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Kind-specific extras (e.g. `servicePrincipalType`, `appId`), as a JSON object.
    pub attributes: serde_json::Value,
}

impl PrincipalData {
    /// The attribute holding a user's business phone (Graph's first `businessPhones`).
    pub const PHONE: &'static str = "phone";
    /// The attribute holding a user's mobile phone (Graph's `mobilePhone`).
    pub const MOBILE_PHONE: &'static str = "mobilePhone";

    /// A text attribute (`PHONE`, `MOBILE_PHONE`, …), if set.
    pub fn text_attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(serde_json::Value::as_str)
    }

    /// A principal with only the required fields set; the rest default to unknown.
    pub fn new(external_id: impl Into<String>, kind: PrincipalKind, display_name: impl Into<String>) -> Self {
        PrincipalData {
            external_id: external_id.into(),
            kind,
            display_name: display_name.into(),
            user_principal_name: None,
            email: None,
            job_title: None,
            department: None,
            office_location: None,
            usage_location: None,
            employee_id: None,
            manager_external_id: None,
            account_enabled: None,
            user_type: None,
            created_in_source_at: None,
            last_sign_in_at: None,
            deleted_at: None,
            attributes: serde_json::Value::Object(serde_json::Map::new()),
        }
    }
}

/// A principal as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Principal {
    pub id: PrincipalId,
    pub connector_id: ConnectorId,
    #[serde(flatten)]
    pub data: PrincipalData,
    pub first_seen_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The canonical work email of a user: `mail` when set, else the user principal name,
/// lowercased and trimmed (Entra compares both case-insensitively). Empty values count as unset.
pub fn work_email(mail: Option<&str>, user_principal_name: Option<&str>) -> Option<String> {
    [mail, user_principal_name]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|value| !value.is_empty())
        .map(str::to_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_email_prefers_mail_then_upn() {
        assert_eq!(
            work_email(Some("Ada@Contoso.com"), Some("ada@contoso.onmicrosoft.com")).as_deref(),
            Some("ada@contoso.com")
        );
        assert_eq!(work_email(None, Some("Bob@Contoso.com")).as_deref(), Some("bob@contoso.com"));
        assert_eq!(work_email(Some("  "), Some("bob@contoso.com")).as_deref(), Some("bob@contoso.com"));
        assert_eq!(work_email(None, None), None);
    }

    #[test]
    fn kinds_round_trip_through_their_spelling() {
        for kind in PrincipalKind::ALL {
            assert_eq!(kind.as_str().parse::<PrincipalKind>(), Ok(*kind));
        }
        let err = "robot".parse::<PrincipalKind>().unwrap_err();
        assert!(err.to_string().contains("'robot' is not a valid principal kind"), "{err}");
    }
}

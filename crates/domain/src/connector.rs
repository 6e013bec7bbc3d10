//! A connected directory.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ids::ConnectorId;
use crate::macros::string_enum;

string_enum! {
    /// Which directory a connector talks to.
    pub enum ConnectorKind as "connector kind" {
        /// Microsoft Entra ID through Microsoft Graph.
        Entra => "entra",
    }
}

string_enum! {
    /// Where a connector stands in its lifecycle; drives what the setup pages ask for.
    ///
    /// `not_connected → awaiting_consent → connected`; from `connected`, trouble the sync or
    /// the provisioner meets leads to `needs_reauthorization` (an owner must act in Entra) or
    /// `error` (anything else), and a successful check leads back.
    pub enum ConnectorStatus as "connector status" {
        /// Created, no credentials yet.
        NotConnected => "not_connected",
        /// Waiting for an administrator to grant admin consent.
        AwaitingConsent => "awaiting_consent",
        /// Credentials work and the permissions needed are granted.
        Connected => "connected",
        /// Consent was revoked or permissions went missing; an owner must act.
        NeedsReauthorization => "needs_reauthorization",
        /// The last attempt to reach the directory failed for another reason.
        Error => "error",
    }
}

impl ConnectorStatus {
    /// An episode of trouble someone must fix: the owners are told once when it begins.
    pub fn needs_attention(self) -> bool {
        matches!(self, ConnectorStatus::NeedsReauthorization | ConnectorStatus::Error)
    }
}

/// One connected directory, as stored. Credentials are never part of this type: they are
/// read, decrypted and used only by the code that talks to the directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Connector {
    pub id: ConnectorId,
    /// Unique, human-chosen name (`contoso`), used by the CLI and URLs.
    pub name: String,
    pub kind: ConnectorKind,
    /// The directory's tenant id, once known.
    pub tenant_id: Option<String>,
    pub status: ConnectorStatus,
    /// Kind-specific settings (scope, base URLs) as JSON; typed by the connector that owns them.
    pub settings: serde_json::Value,
    /// Email addresses of the integration owners who are asked to finish setup: where their
    /// mail goes, never who they are.
    pub owners: Vec<String>,
    /// The directory object ids (in `tenant_id`) the owners resolved to: who they are. An owner
    /// named by email or UPN is resolved once, from the synced directory, and keeps that
    /// identity whatever later happens to the address.
    pub owner_ids: Vec<String>,
    /// Owners who sign in to Attest from another tenant than the connector's (the parent
    /// company's, for a subsidiary's tenant), as `tenant/objectId`: bound when they accepted
    /// their invitation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_owner_ids: Vec<String>,
    /// Why the connector is where it is, in words an owner acts on (`needs_reauthorization`:
    /// "the client secret has expired…"; a partial consent: the permissions missing).
    pub status_reason: Option<String>,
    /// When its permissions were first verified after an administrator's consent.
    pub connected_at: Option<DateTime<Utc>>,
    /// Whose consent connected it (who finished the setup).
    pub connected_by: Option<String>,
    pub last_full_sync_at: Option<DateTime<Utc>>,
    pub last_delta_sync_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Connector {
    /// Whether the person signed in as `object_id` of `tenant_id` is one of its owners.
    pub fn is_owned_by(&self, tenant_id: &str, object_id: &str) -> bool {
        let own_tenant = self.tenant_id.as_deref() == Some(tenant_id)
            && self.owner_ids.iter().any(|o| o.eq_ignore_ascii_case(object_id));
        own_tenant
            || self
                .foreign_owner_ids
                .iter()
                .any(|o| o.split_once('/').is_some_and(|(t, id)| t == tenant_id && id.eq_ignore_ascii_case(object_id)))
    }

    /// The last time the connector observed the directory, by either kind of sync.
    pub fn last_synced_at(&self) -> Option<DateTime<Utc>> {
        self.last_full_sync_at.max(self.last_delta_sync_at)
    }
}

/// Whether `text` is a directory object id (a GUID, `8-4-4-4-12` hex digits).
pub fn is_object_id(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

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
    /// Email addresses of the integration owners who are asked to finish setup.
    pub owners: Vec<String>,
    pub last_full_sync_at: Option<DateTime<Utc>>,
    pub last_delta_sync_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Connector {
    /// The last time the connector observed the directory, by either kind of sync.
    pub fn last_synced_at(&self) -> Option<DateTime<Utc>> {
        self.last_full_sync_at.max(self.last_delta_sync_at)
    }
}

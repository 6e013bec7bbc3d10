//! The dashboard and the audit log as the API answers them, and as their pages render them.

use attest_domain::AuditEvent;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiChange;

/// What the signed-in person sees first: the connectors they read and their syncs, totals,
/// the changes waiting for their approval, failures, and recent changes (their own requests,
/// for someone who reads no directory).
#[derive(Debug, Serialize, ToSchema)]
pub struct Dashboard {
    pub connectors: Vec<DashboardConnector>,
    /// Principals and current grants synced, over the connectors they read.
    pub principals: u64,
    pub grants: u64,
    /// Sensitive changes asked by others that this person may approve (the first twenty).
    pub awaiting_me: Vec<ApiChange>,
    /// Failed changes in the connectors they read (counted up to 500).
    pub failed: u64,
    /// The latest changes (ten).
    pub changes: Vec<ApiChange>,
    /// Whether they read any connector's directory.
    pub reads_directory: bool,
    /// The access reviews waiting for this person (running campaigns where they have items).
    pub reviews: Vec<super::InboxCampaign>,
    /// Access requests waiting for this person's approval.
    pub access_requests_awaiting: u64,
    /// Access this person holds for a time through a request (active).
    pub access_held: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardConnector {
    pub id: i64,
    pub name: String,
    /// `not_connected`, `awaiting_consent`, `connected`, `needs_reauthorization`, `error`.
    pub status: String,
    /// Why, in words an owner acts on (what is missing, what Entra refused).
    pub status_reason: Option<String>,
    pub last_full_sync_at: Option<DateTime<Utc>>,
    pub last_delta_sync_at: Option<DateTime<Utc>>,
    pub last_run: Option<LastRun>,
    /// A "Sync now" is waiting for the scheduler.
    pub sync_requested: bool,
    /// The viewer may ask for one.
    pub can_sync: bool,
}

/// How the latest sync run went.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastRun {
    /// `full` or `delta`.
    pub mode: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    pub error: Option<String>,
}

/// One page of the audit log, newest first, and whether its hash chain verifies.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    pub events: Vec<ApiAuditEvent>,
    pub chain: ChainStatus,
    /// Pass as `before` for the next (older) page; `null` on the last.
    pub next_before: Option<i64>,
}

/// An event of the audit log, with the hashes that chain it to the one before.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiAuditEvent {
    /// Its place in the chain: 1, 2, 3… without gaps.
    pub seq: i64,
    /// To the microsecond, as hashed.
    #[serde(serialize_with = "micros")]
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    /// `change.requested`, `change.applied`, `sync.finished`, `audit.exported`, …
    pub action: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    /// The details as hashed (a JSON object; text when it is not JSON).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

impl ApiAuditEvent {
    pub fn new(e: &AuditEvent) -> ApiAuditEvent {
        ApiAuditEvent {
            seq: e.seq,
            occurred_at: e.occurred_at,
            actor: e.actor.clone(),
            action: e.action.clone(),
            target_kind: e.target_kind.clone(),
            target_id: e.target_id.clone(),
            details: serde_json::from_str(&e.details).unwrap_or_else(|_| serde_json::Value::String(e.details.clone())),
            prev_hash: e.prev_hash.clone(),
            hash: e.hash.clone(),
        }
    }
}

/// A time to the microsecond (`2026-12-03T09:00:00.000000Z`), as the audit chain hashes it.
fn micros<S: serde::Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// The chain's verification, recomputed from every event.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChainStatus {
    pub intact: bool,
    /// Events verified (before the break, when broken).
    pub checked: u64,
    /// The last event's sequence number, as the chain head records it.
    pub head_seq: i64,
    /// Where and how it broke.
    pub broken: Option<String>,
}

//! The JSON API's own response types: RFC 3339 timestamps, ids and enumerations' codes. Its
//! OpenAPI schemas are generated from these types (utoipa), so the document cannot drift from
//! what is sent; `openapi.json` keeps the paths. The pages render the same types (a template
//! filter shows the times for people), so a page and its API answer cannot disagree either.

mod directory;
mod overview;
mod reviews;

pub use directory::*;
pub use overview::*;
pub use reviews::*;

use attest_domain::Change;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// A change in the provisioning queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiChange {
    pub id: i64,
    pub connector_id: i64,
    /// What it does: `add_group_member`, `remove_app_role_assignment`, `block_sign_in`, ...
    pub kind: String,
    /// In words, with the directory's names ("add member Ada Lovelace to group Finance").
    pub description: String,
    /// `pending`, `awaiting_approval`, `in_progress`, `applied`, `failed`, `cancelled`,
    /// `denied` or `outcome_unknown`.
    pub state: String,
    /// How applying it ended, once it has: `applied`, `already_in_state`, `target_not_found`,
    /// `failed`, `not_supported`.
    pub result: Option<String>,
    /// What asked for it: `manual`, `review_item`, `access_request`, `expiry`, `workflow`.
    pub origin: String,
    pub requested_by: String,
    /// Why it was asked for, in the requester's words.
    pub reason: Option<String>,
    pub approved_by: Option<String>,
    /// Who denied it (a `denied` change) and why.
    pub denied_by: Option<String>,
    pub denial_reason: Option<String>,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Whether reading it back showed it in effect (`null`: not checked).
    pub verified: Option<bool>,
    /// Graph's `request-id` of the request that settled it.
    pub graph_request_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl ApiChange {
    pub fn new(change: &Change, description: String) -> ApiChange {
        ApiChange {
            id: change.id.0,
            connector_id: change.connector_id.0,
            kind: change.kind.to_string(),
            description,
            state: change.state.to_string(),
            result: change.result.map(|r| r.to_string()),
            origin: change.origin.to_string(),
            requested_by: change.requested_by.clone(),
            reason: change.reason.clone(),
            approved_by: change.approved_by.clone(),
            denied_by: change.denied_by.clone(),
            denial_reason: change.denial_reason.clone(),
            attempts: change.attempts,
            last_error: change.last_error.clone(),
            verified: change.verified,
            graph_request_id: change.graph_request_id.clone(),
            created_at: change.created_at,
            next_attempt_at: change.next_attempt_at,
            finished_at: change.finished_at,
        }
    }
}

/// A page of the change queue, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeList {
    pub changes: Vec<ApiChange>,
    /// Pass as `before` for the next (older) page; `null` on the last.
    pub next_before: Option<i64>,
}

/// What the viewer may do with a change now.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangePermissions {
    pub approve: bool,
    /// Refuse it, saying why (whoever may approve it may deny it).
    pub deny: bool,
    /// The viewer asked for it and it awaits someone else's approval.
    pub own_awaiting: bool,
    pub retry: bool,
    pub cancel: bool,
}

/// One change, with its directory operation and what the viewer may do.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeDetail {
    pub change: ApiChange,
    /// The directory operation, as queued (`{"type": "add_group_member", ...}`).
    #[schema(value_type = Object)]
    pub action: serde_json::Value,
    pub idempotency_key: String,
    /// A password reset cut off mid-way: the temporary password was never shown.
    pub password_unknown: bool,
    pub can: ChangePermissions,
}

/// A change after a write (an action, approve, retry, cancel), and once, a secret it made.
#[derive(Debug, Serialize, ToSchema)]
pub struct Applied {
    pub change: ApiChange,
    /// A reset password's temporary password, shown this once (the response is `no-store`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temporary_password: Option<String>,
}

/// Every error: `code` is the kind, `reason` the rule that said no (for a conflict).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// `signed_out`, `forbidden`, `sign_in_failed`, `csrf`, `not_found`, `bad_request`,
    /// `conflict`, `unavailable`, `internal`.
    pub code: String,
    /// For a conflict: the rule (`change_own_approval`, `change_not_retryable`, ...).
    pub reason: Option<String>,
    pub message: String,
    /// The request's id, under which an internal failure's detail is logged.
    pub request_id: Option<String>,
}

/// Who is signed in (`GET /me`), and the CSRF token writes must carry.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub tenant_id: String,
    pub object_id: String,
    pub name: String,
    pub email: Option<String>,
    /// `admin`, `auditor`, `integration_owner`, `requester` (everyone).
    #[schema(value_type = Vec<String>)]
    pub roles: Vec<attest_domain::roles::Role>,
    pub csrf_token: String,
    pub session_expires_at: DateTime<Utc>,
}

/// Recent sync runs of the connectors the viewer reads (`GET /syncs`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncOverview {
    pub connectors: Vec<ConnectorSyncs>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorSyncs {
    pub name: String,
    /// `not_connected`, `awaiting_consent`, `connected`, `needs_reauthorization`, `error`.
    pub status: String,
    /// Whether the viewer may ask for a sync ("Sync now").
    pub can_sync: bool,
    /// A "Sync now" waiting for a scheduler, if any.
    pub requested: Option<SyncRequested>,
    /// Newest first.
    pub runs: Vec<ApiSyncRun>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncRequested {
    /// `delta` or `full`.
    pub mode: String,
    pub by: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiSyncRun {
    pub id: i64,
    /// `full` or `delta`.
    pub mode: String,
    /// `schedule`, `manual`, `cli`, `bench`.
    pub trigger: String,
    /// `running`, `succeeded`, `failed`.
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Rows added, changed or removed, over every kind.
    pub written: u64,
    /// Per kind (principals, resources, entitlements, grants, inherited grants): added,
    /// changed, removed, unchanged.
    #[schema(value_type = Object)]
    pub counts: attest_domain::SyncCounts,
    /// Graph requests made, and the resource units they cost.
    pub requests: u64,
    pub resource_units: u64,
    pub error: Option<String>,
    pub notes: Vec<String>,
}

impl ApiSyncRun {
    pub fn new(run: &attest_domain::SyncRun) -> ApiSyncRun {
        ApiSyncRun {
            id: run.id.0,
            mode: run.mode.to_string(),
            trigger: run.trigger.to_string(),
            status: run.status.to_string(),
            started_at: run.started_at,
            finished_at: run.finished_at,
            written: run.counts.written(),
            counts: run.counts,
            requests: run.requests,
            resource_units: run.resource_units,
            error: run.error.clone(),
            notes: run.notes.clone(),
        }
    }
}

/// A "Sync now" taken: the request waiting for the scheduler.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncAsked {
    pub requested: SyncRequested,
}

/// The generated schemas.
#[derive(utoipa::OpenApi)]
#[openapi(components(schemas(
    ApiChange,
    ChangeList,
    ChangePermissions,
    ChangeDetail,
    Applied,
    ErrorBody,
    ErrorDetail,
    Me,
    SyncOverview,
    ConnectorSyncs,
    SyncRequested,
    SyncAsked,
    ApiSyncRun,
    Ref,
    ApiPrincipal,
    PersonListed,
    PeopleList,
    ApiResource,
    HolderCount,
    ResourceListed,
    ResourceList,
    EntitlementRef,
    Why,
    Ineffective,
    GrantNamed,
    ResourceNamed,
    Revoke,
    ApiAccess,
    AccessResource,
    PrincipalDetail,
    MyAccess,
    ServicePrincipalList,
    ApiHolder,
    ApiEntitlement,
    ResourceDetail,
    Dashboard,
    DashboardConnector,
    LastRun,
    AuditList,
    ApiAuditEvent,
    ChainStatus,
    ApiReviewer,
    ReviewPrincipal,
    ReviewResource,
    ApiComment,
    ApiStageDecision,
    ReviewItem,
    ApiInstance,
    ApiProgress,
    CampaignSummary,
    CampaignList,
    ReviewerProgress,
    CampaignPermissions,
    DeciderCount,
    DayCount,
    CampaignDetail,
    InboxCampaign,
    ReviewInbox,
    ReviewDecided
)))]
struct Schemas;

/// The OpenAPI document: the paths (`openapi.json`, beside the code) with the schemas
/// generated from the response types merged in.
pub fn document() -> Result<serde_json::Value, String> {
    use utoipa::OpenApi as _;
    let mut doc: serde_json::Value =
        serde_json::from_str(include_str!("openapi.json")).map_err(|e| format!("openapi.json: {e}"))?;
    let generated = serde_json::to_value(Schemas::openapi()).map_err(|e| e.to_string())?;
    let (Some(schemas), Some(extra)) = (
        doc.pointer_mut("/components/schemas").and_then(|s| s.as_object_mut()),
        generated.pointer("/components/schemas").and_then(|s| s.as_object()),
    ) else {
        return Err("the document has no components.schemas".into());
    };
    for (name, schema) in extra {
        if schemas.insert(name.clone(), schema.clone()).is_some() {
            return Err(format!("schema {name} is both written by hand and generated"));
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    #[test]
    fn the_generated_schemas_are_strict_about_ids_times_and_what_is_optional() {
        let doc = super::document().unwrap();
        let change = &doc["components"]["schemas"]["ApiChange"];
        let required: Vec<&str> = change["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        for field in ["id", "description", "state", "created_at", "next_attempt_at"] {
            assert!(required.contains(&field), "{field} is required: {change}");
        }
        assert!(!required.contains(&"finished_at"), "optional fields are not required");
        assert_eq!(change["properties"]["created_at"]["format"], "date-time");
        assert_eq!(change["properties"]["id"]["type"], "integer");
        // The hand-written paths point at generated schemas that exist.
        assert!(doc["components"]["schemas"]["Error"]["properties"]["error"].is_object());
        let text = doc.to_string();
        for name in [
            "ChangeList",
            "ChangeDetail",
            "Applied",
            "Error",
            "Me",
            "SyncOverview",
            "SyncAsked",
            "Dashboard",
            "PeopleList",
            "ResourceList",
            "PrincipalDetail",
            "ResourceDetail",
            "AuditList",
        ] {
            assert!(text.contains(&format!("#/components/schemas/{name}")), "{name} is referenced");
        }
        // Every reference in the document points at something in it.
        for reference in text.split("\"$ref\":\"").skip(1).filter_map(|rest| rest.split('"').next()) {
            let pointer = reference.trim_start_matches('#');
            assert!(doc.pointer(pointer).is_some(), "{reference} points nowhere");
        }
    }
}

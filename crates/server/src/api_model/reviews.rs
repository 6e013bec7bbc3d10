//! Access reviews as the API answers them and the pages render them: a reviewer's inbox, a
//! campaign with its progress and reviewers, each item with its recommendation and evidence.

use attest_store::{Campaign, Instance, Item, Progress};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// Someone who reviews.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiReviewer {
    pub object_id: String,
    pub name: String,
    pub email: Option<String>,
}

/// Who an item is about.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReviewPrincipal {
    /// Attest's id (its page: `/principals/{id}`).
    pub id: i64,
    pub object_id: String,
    pub name: String,
    pub upn: Option<String>,
    /// `user`, `service_principal`, `managed_identity`.
    pub kind: String,
}

/// What an item's access is to.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReviewResource {
    /// Attest's id (its page: `/resources/{id}`).
    pub id: i64,
    pub object_id: String,
    pub name: String,
    /// `group`, `application`, `directory_role`.
    pub kind: String,
}

/// A comment on an item.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiComment {
    pub author: String,
    pub body: String,
    pub at: DateTime<Utc>,
}

/// One access to review, as snapshotted when the instance started.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReviewItem {
    pub id: i64,
    pub instance_id: i64,
    pub principal: ReviewPrincipal,
    pub resource: ReviewResource,
    /// The entitlement's name ("Member", an app role's name...).
    pub entitlement: String,
    /// `direct`, `jit` or `inherited`.
    pub held: String,
    /// For inherited access, the group it comes through.
    pub via: Option<String>,
    pub reviewers: Vec<ApiReviewer>,
    /// `approve`, `revoke` or `review` (look closely).
    pub recommendation: String,
    pub recommendation_reason: String,
    /// `pending`, `approve`, `revoke` or `not_sure` ("don't know": the access is kept).
    pub decision: String,
    pub justification: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// Why revoking it cannot be applied through Graph, when it cannot.
    pub revoke_blocked: Option<String>,
    /// The change that revokes it, once queued.
    pub change_id: Option<i64>,
    /// `queued`, `applied`, `already_removed`, `not_found` or `failed`.
    pub applied: Option<String>,
    pub apply_error: Option<String>,
    /// What reviewers and owners said about it, oldest first.
    pub comments: Vec<ApiComment>,
    /// The last stage it reached (1 in a single-stage review).
    pub stage: i32,
    /// What earlier stages decided about it, first stage first.
    pub earlier_stages: Vec<ApiStageDecision>,
}

/// What an earlier stage decided about an item, shown to the later stages' reviewers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiStageDecision {
    pub stage: i32,
    /// Who could decide it then, by name.
    pub reviewers: String,
    /// `pending` (nobody decided), `approve`, `revoke` or `not_sure`.
    pub decision: String,
    pub justification: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

impl ReviewItem {
    /// These items with their comments.
    pub async fn all(store: &attest_store::Store, items: &[Item]) -> Result<Vec<ReviewItem>, attest_store::StoreError> {
        // Only items past their first stage have earlier decisions.
        let later: Vec<i64> = items.iter().filter(|i| i.stage > 1).map(|i| i.id).collect();
        let mut stages: std::collections::HashMap<i64, Vec<ApiStageDecision>> = std::collections::HashMap::new();
        if !later.is_empty() {
            for d in store.reviews().stage_decisions_on(&later).await? {
                stages.entry(d.item_id).or_default().push(ApiStageDecision {
                    stage: d.stage,
                    reviewers: d.reviewers,
                    decision: d.decision.to_string(),
                    justification: d.justification,
                    decided_by: d.decided_by,
                    decided_at: d.decided_at,
                });
            }
        }
        Ok(items
            .iter()
            .map(|i| ReviewItem {
                comments: i.comments().into_iter().map(|(author, body, at)| ApiComment { author, body, at }).collect(),
                earlier_stages: stages.remove(&i.id).unwrap_or_default(),
                ..ReviewItem::new(i)
            })
            .collect())
    }

    pub fn new(i: &Item) -> ReviewItem {
        ReviewItem {
            id: i.id,
            instance_id: i.instance_id,
            principal: ReviewPrincipal {
                id: i.principal_id,
                object_id: i.principal_object.clone(),
                name: i.principal_name.clone(),
                upn: i.principal_upn.clone(),
                kind: i.principal_kind.clone(),
            },
            resource: ReviewResource {
                id: i.resource_id,
                object_id: i.resource_object.clone(),
                name: i.resource_name.clone(),
                kind: i.resource_kind.clone(),
            },
            entitlement: i.entitlement_name.clone(),
            held: i.held_as.clone(),
            via: i.via_name.clone(),
            reviewers: i
                .reviewers()
                .into_iter()
                .map(|r| ApiReviewer { object_id: r.object_id, name: r.name, email: r.email })
                .collect(),
            recommendation: i.recommendation.to_string(),
            recommendation_reason: i.recommendation_reason.clone(),
            decision: i.decision.to_string(),
            justification: i.justification.clone(),
            decided_by: i.decided_by.clone(),
            decided_at: i.decided_at,
            revoke_blocked: i.revoke_blocked.clone(),
            change_id: i.change_id,
            applied: i.outcome().map(|o| o.to_string()),
            apply_error: i.outcome_error().map(str::to_owned),
            comments: Vec::new(),
            stage: i.stage,
            earlier_stages: Vec::new(),
        }
    }
}

/// One run of a campaign.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiInstance {
    pub id: i64,
    pub number: i32,
    /// `running` or `closed`.
    pub state: String,
    pub started_by: String,
    pub started_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub closed_by: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Whether sign-in activity was synced when it started (recommendations used it).
    pub sign_ins_known: bool,
    /// The stage running now (or the last one run), of `stages`.
    pub stage: i32,
    pub stages: i32,
    /// When the stage running now ends (`due_at` in the last stage).
    pub stage_due_at: DateTime<Utc>,
}

impl ApiInstance {
    pub fn new(i: &Instance) -> ApiInstance {
        ApiInstance {
            id: i.id,
            number: i.number,
            state: i.state.to_string(),
            started_by: i.started_by.clone(),
            started_at: i.started_at,
            due_at: i.due_at,
            closed_by: i.closed_by.clone(),
            closed_at: i.closed_at,
            sign_ins_known: i.sign_ins_known,
            stage: i.stage,
            stages: i.stages,
            stage_due_at: i.stage_due(),
        }
    }
}

/// How many items stand where.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiProgress {
    pub items: u64,
    pub pending: u64,
    pub approved: u64,
    pub revoked: u64,
    /// Answered "not sure": the access is kept.
    pub not_sure: u64,
}

impl From<Progress> for ApiProgress {
    fn from(p: Progress) -> Self {
        ApiProgress {
            items: p.items,
            pending: p.pending,
            approved: p.approved,
            revoked: p.revoked,
            not_sure: p.not_sure,
        }
    }
}

/// A campaign, with its latest instance and how far it is.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignSummary {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub connector_id: i64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// When the next instance of a recurring campaign starts.
    pub next_start_at: Option<DateTime<Utc>>,
    /// `draft` (never started), `running` or `closed`.
    pub state: String,
    pub instance: Option<ApiInstance>,
    pub progress: Option<ApiProgress>,
}

impl CampaignSummary {
    pub fn new(c: &Campaign, progress: Option<Progress>) -> CampaignSummary {
        CampaignSummary {
            id: c.id,
            name: c.name.clone(),
            description: c.description.clone(),
            connector_id: c.connector_id.0,
            created_by: c.created_by.clone(),
            created_at: c.created_at,
            next_start_at: c.next_start_at,
            state: c.instance.as_ref().map_or("draft".to_owned(), |i| i.state.to_string()),
            instance: c.instance.as_ref().map(ApiInstance::new),
            progress: progress.map(ApiProgress::from),
        }
    }
}

/// The campaigns this person may see (administrators and auditors: all; others: those they own).
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignList {
    pub campaigns: Vec<CampaignSummary>,
}

/// A reviewer's pending count in an instance.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReviewerProgress {
    pub object_id: String,
    pub name: String,
    pub email: Option<String>,
    pub pending: i64,
}

/// What one person (or the default decision) decided.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeciderCount {
    pub decided_by: String,
    pub approved: i64,
    pub revoked: i64,
    pub not_sure: i64,
}

/// Decisions made on one day (UTC).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DayCount {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub decisions: i64,
}

/// What the viewer may do with a campaign now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignPermissions {
    pub start: bool,
    pub close: bool,
    pub apply: bool,
    pub export: bool,
}

/// A campaign: definition, latest instance, reviewers, a page of items.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignDetail {
    pub campaign: CampaignSummary,
    /// The definition, as created (the TOML file's fields).
    #[schema(value_type = Object)]
    pub definition: serde_json::Value,
    pub reviewers: Vec<ReviewerProgress>,
    /// Decisions by who made them.
    pub deciders: Vec<DeciderCount>,
    /// Decisions day by day: progress over time.
    pub timeline: Vec<DayCount>,
    /// Revoked items whose revocation is not queued yet.
    pub unapplied: u64,
    /// A page of the items (`?page=`, `?state=`).
    pub items: Vec<ReviewItem>,
    pub can: CampaignPermissions,
}

/// A campaign in a reviewer's inbox.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InboxCampaign {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub instance_id: i64,
    pub due_at: DateTime<Utc>,
    /// The reviewer's pending items in it.
    pub pending: u64,
    /// All the reviewer's items in it, decided or not.
    pub total: u64,
}

impl InboxCampaign {
    pub fn new(c: &attest_store::InboxCounts) -> InboxCampaign {
        InboxCampaign {
            id: c.campaign_id,
            name: c.name.clone(),
            description: c.description.clone(),
            instance_id: c.instance_id,
            due_at: c.due_at,
            pending: c.pending,
            total: c.total(),
        }
    }
}

/// A reviewer's items across running campaigns.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewInbox {
    pub campaigns: Vec<InboxCampaign>,
    pub items: Vec<ReviewItem>,
    /// Items matching the filter.
    pub total: u64,
    pub page: u64,
    pub pages: u64,
}

/// What a decision did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewDecided {
    pub decided: u64,
}

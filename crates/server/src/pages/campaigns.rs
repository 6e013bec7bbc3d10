//! `/campaigns`: access review campaigns for those who run and audit them. Administrators
//! create campaigns (from a definition, as `attest campaign create` does) and run any; a
//! campaign's owners run theirs (start, close, apply revocations); auditors read all. Others see
//! no campaign (a campaign they may not see answers 404, as if it did not exist); reviewers
//! work from `/reviews`.

use attest_domain::review::{CampaignDefinition, CampaignState, Decision, DefaultDecision, Recommendation};
use attest_review::ExportFormat;
use attest_store::{Campaign, ItemFilter};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::reviews::review_error;
use super::{PAGE_SIZE, fetch_page, page, with};
use crate::AppState;
use crate::api_model::{
    CampaignDetail, CampaignList, CampaignPermissions, CampaignSummary, DayCount, DeciderCount, ReviewItem,
    ReviewerProgress,
};
use crate::error::WebError;
use crate::extract::{Id, Query};
use crate::forms::Submitted;
use crate::roles::{Allowed, Role, Viewer, rule};

/// What the viewer is to a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Administrators and the campaign's owners: run it.
    Runs,
    /// Auditors: read it.
    Reads,
}

/// What `viewer` is to `campaign`, or `None` (they may not see it).
pub async fn standing(state: &AppState, viewer: &Viewer, campaign: &Campaign) -> Result<Option<Standing>, WebError> {
    if viewer.roles.has(Role::Admin) {
        return Ok(Some(Standing::Runs));
    }
    let definition = attest_review::definition_of(campaign).map_err(review_error)?;
    let connectors = state.caches.connectors(&state.store).await?;
    let same_tenant = connectors
        .iter()
        .find(|c| c.id == campaign.connector_id)
        .is_some_and(|c| c.tenant_id.as_deref() == Some(viewer.user().tenant_id.as_str()));
    if same_tenant && !definition.owners.is_empty() {
        let owners = state.store.reviews().people_named(campaign.connector_id, &definition.owners).await?;
        if owners.iter().any(|o| o.object_id.eq_ignore_ascii_case(&viewer.user().object_id)) {
            return Ok(Some(Standing::Runs));
        }
    }
    Ok(viewer.roles.has(Role::Auditor).then_some(Standing::Reads))
}

/// The campaign, if the viewer may see it (404 otherwise), and what they are to it.
async fn visible(state: &AppState, viewer: &Viewer, id: i64) -> Result<(Campaign, Standing), WebError> {
    let not_found = || WebError::NotFound(format!("campaign {id} not found"));
    let campaign = state.store.reviews().get_campaign(id).await.map_err(|_| not_found())?;
    let standing = standing(state, viewer, &campaign).await?.ok_or_else(not_found)?;
    Ok((campaign, standing))
}

/// A campaign the viewer runs (403 for everyone else, whether or not they may read it).
async fn run_by(state: &AppState, viewer: &Viewer, id: i64) -> Result<Campaign, WebError> {
    let refused = || WebError::Forbidden("only administrators and the campaign's owners run it".into());
    let campaign = state.store.reviews().get_campaign(id).await.map_err(|_| refused())?;
    match standing(state, viewer, &campaign).await? {
        Some(Standing::Runs) => Ok(campaign),
        _ => Err(refused()),
    }
}

async fn summary(state: &AppState, campaign: &Campaign) -> Result<CampaignSummary, WebError> {
    let progress = match &campaign.instance {
        Some(instance) => Some(state.store.reviews().progress(instance.id).await?),
        None => None,
    };
    Ok(CampaignSummary::new(campaign, progress))
}

/// The campaigns the viewer may see (the page and `GET /api/v1/campaigns`).
pub async fn campaigns_data(state: &AppState, viewer: &Viewer) -> Result<CampaignList, WebError> {
    let mut campaigns = Vec::new();
    for campaign in state.store.reviews().list_campaigns(None).await? {
        if standing(state, viewer, &campaign).await?.is_some() {
            campaigns.push(summary(state, &campaign).await?);
        }
    }
    Ok(CampaignList { campaigns })
}

/// An example definition for the create form.
const EXAMPLE: &str = r#"name = "Quarterly review: finance groups"
description = "Does each person still need this access?"
owners = ["you@example.com"]

[scope]
connector = "contoso"
resource_kinds = ["group"]
resources = []                    # object ids or exact names; empty: all
entitlements = ["member"]
principals = "all"

[reviewers]
mode = "manager"                  # manager | resource_owner | named | self
fallback = ["iam-team@example.com"]

[schedule]
duration = "14d"
recurrence = "quarterly"

[settings]
justification_required = "revoke"
default_decision = "none"
auto_apply = false
"#;

/// `GET /campaigns`
pub async fn campaigns(viewer: Allowed<rule::SignedIn>, State(state): State<AppState>) -> Result<Response, WebError> {
    campaigns_page(&state, &viewer, None, None).await
}

async fn campaigns_page(
    state: &AppState,
    viewer: &Viewer,
    typed: Option<&str>,
    error: Option<String>,
) -> Result<Response, WebError> {
    let data = campaigns_data(state, viewer).await?;
    let extra = json!({
        "can_create": viewer.roles.has(Role::Admin),
        "definition": typed.unwrap_or(EXAMPLE),
        "error": error,
    });
    let status = if extra["error"].is_null() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    Ok((status, page(viewer, "campaigns.html", with(&data, extra)?)?).into_response())
}

#[derive(Debug, Deserialize)]
pub struct CreateForm {
    /// The definition, as TOML.
    #[serde(default)]
    pub definition: String,
}

/// `POST /campaigns/new`: a campaign from a definition (administrators).
pub async fn create(
    viewer: Allowed<rule::Admin>,
    State(state): State<AppState>,
    Submitted(form): Submitted<CreateForm>,
) -> Result<Response, WebError> {
    let created = match attest_review::parse_definition(&form.definition) {
        Ok(definition) => create_now(&state, &viewer, &definition).await,
        Err(e) => Err(review_error(e)),
    };
    match created {
        Ok(campaign) => Ok(Redirect::to(&format!("/campaigns/{}", campaign.id)).into_response()),
        Err(WebError::BadRequest(message)) => {
            campaigns_page(&state, &viewer, Some(&form.definition), Some(message)).await
        }
        Err(e) => Err(e),
    }
}

/// Saves a checked definition as a campaign, as the viewer.
pub async fn create_now(
    state: &AppState,
    viewer: &Viewer,
    definition: &CampaignDefinition,
) -> Result<Campaign, WebError> {
    attest_review::create(&state.store, definition, &viewer.actor(), state.now()).await.map_err(review_error)
}

#[derive(Debug, Default, Deserialize)]
pub struct CampaignQuery {
    /// `pending`, `approve`, `revoke`, or all.
    #[serde(default)]
    pub state: String,
    pub page: Option<u64>,
}

/// One campaign (the page and `GET /api/v1/campaigns/{id}`).
pub async fn campaign_data(
    state: &AppState,
    viewer: &Viewer,
    id: i64,
    query: &CampaignQuery,
) -> Result<CampaignDetail, WebError> {
    let (campaign, standing) = visible(state, viewer, id).await?;
    let reviews = state.store.reviews();
    let runs = standing == Standing::Runs;
    let definition = attest_review::definition_of(&campaign).map_err(review_error)?;
    let (deciders, timeline) = match &campaign.instance {
        Some(instance) => (
            reviews
                .decisions_by_decider(instance.id)
                .await?
                .into_iter()
                .map(|(decided_by, approved, revoked, not_sure)| DeciderCount {
                    decided_by,
                    approved,
                    revoked,
                    not_sure,
                })
                .collect(),
            reviews
                .decisions_by_day(instance.id)
                .await?
                .into_iter()
                .map(|(day, decisions)| DayCount { day, decisions })
                .collect(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    let (reviewers, items, unapplied) = match &campaign.instance {
        Some(instance) => {
            let reviewers = reviews
                .pending_by_reviewer(instance.id)
                .await?
                .into_iter()
                .map(|(object_id, name, email, pending)| ReviewerProgress { object_id, name, email, pending })
                .collect();
            let decision = match query.state.as_str() {
                "" | "all" => None,
                other => Some(
                    other
                        .parse::<Decision>()
                        .map_err(|_| WebError::BadRequest(format!("state '{other}' is not offered")))?,
                ),
            };
            let filter = ItemFilter { instance: Some(instance.id), decision, limit: PAGE_SIZE, ..Default::default() };
            let total = reviews.count_items(&filter).await?;
            let paged = fetch_page(query.page, |offset| {
                let filter = ItemFilter { offset, ..filter.clone() };
                async move { Ok::<_, WebError>((reviews.list_items(&filter).await?, total)) }
            })
            .await?;
            let unapplied =
                if instance.state == CampaignState::Closed { reviews.count_unapplied(instance.id).await? } else { 0 };
            (reviewers, ReviewItem::all(&state.store, &paged.items).await?, unapplied)
        }
        None => (Vec::new(), Vec::new(), 0),
    };
    let running = campaign.instance.as_ref().is_some_and(|i| i.state == CampaignState::Running);
    let can = CampaignPermissions {
        start: runs && !running,
        close: runs && running,
        apply: runs && unapplied > 0,
        export: campaign.instance.is_some(),
    };
    Ok(CampaignDetail {
        campaign: summary(state, &campaign).await?,
        definition: serde_json::to_value(&definition).unwrap_or_default(),
        reviewers,
        deciders,
        timeline,
        unapplied,
        items,
        can,
    })
}

/// `GET /campaigns/{id}`
pub async fn campaign(
    viewer: Allowed<rule::SignedIn>,
    State(state): State<AppState>,
    Id(id): Id,
    Query(query): Query<CampaignQuery>,
) -> Result<Response, WebError> {
    let data = campaign_data(&state, &viewer, id, &query).await?;
    let (campaign, _) = visible(&state, &viewer, id).await?;
    let definition = attest_review::definition_of(&campaign).map_err(review_error)?;
    // What the deadline would remove if nobody decides, when it removes by itself.
    let at_risk = match (&campaign.instance, definition.could_mass_revoke()) {
        (Some(instance), true) if instance.state == CampaignState::Running => {
            let mut filter =
                ItemFilter { instance: Some(instance.id), decision: Some(Decision::Pending), ..Default::default() };
            if definition.settings.default_decision == DefaultDecision::Recommendation {
                filter.recommendation = Some(Recommendation::Revoke);
            }
            Some(state.store.reviews().count_items(&filter).await?)
        }
        _ => None,
    };
    // Before a start that could revoke by itself: how many items it would put under review.
    let start_at_risk = if data.can.start && definition.could_mass_revoke() {
        Some(attest_review::in_scope(&state.store, &campaign, &definition, state.now()).await.map_err(review_error)?)
    } else {
        None
    };
    let total = data.campaign.progress.as_ref().map_or(0, |p| match query.state.as_str() {
        "pending" => p.pending,
        "approve" => p.approved,
        "revoke" => p.revoked,
        "not_sure" => p.not_sure,
        _ => p.items,
    });
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let extra = json!({
        "at_risk": at_risk,
        "start_at_risk": start_at_risk,
        "query": {"state": query.state},
        "page": query.page.unwrap_or(1).clamp(1, pages),
        "pages": pages,
        "settings": definition.settings,
        "scope": definition.scope,
        "reviewer_mode": reviewer_modes(&definition),
        "owners": definition.owners,
        "schedule": definition.schedule,
    });
    Ok(page(&viewer, "campaign.html", with(&data, extra)?)?.into_response())
}

/// Who reviews: the mode, or each stage's in a multi-stage review.
fn reviewer_modes(definition: &attest_domain::review::CampaignDefinition) -> String {
    if definition.settings.stages <= 1 {
        return definition.reviewers.mode.to_string();
    }
    (1..=definition.settings.stages)
        .map(|s| format!("stage {s}: {}", definition.stage_reviewers(s).mode))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Starts the campaign's next instance, as the viewer.
pub async fn start_now(state: &AppState, viewer: &Viewer, id: i64) -> Result<CampaignSummary, WebError> {
    run_by(state, viewer, id).await?;
    attest_review::start(&state.store, id, &viewer.actor(), state.now()).await.map_err(review_error)?;
    summary(state, &state.store.reviews().get_campaign(id).await?).await
}

/// Closes the running instance's stage, as the viewer: the last stage closes the instance.
pub async fn close_now(state: &AppState, viewer: &Viewer, id: i64) -> Result<CampaignSummary, WebError> {
    let campaign = run_by(state, viewer, id).await?;
    let instance = campaign.instance.ok_or_else(|| WebError::Conflict("the campaign has not started".into()))?;
    attest_review::end_stage(&state.store, instance.id, &viewer.actor(), state.now()).await.map_err(review_error)?;
    summary(state, &state.store.reviews().get_campaign(id).await?).await
}

/// Queues the closed instance's revocations, as the viewer.
pub async fn apply_now(state: &AppState, viewer: &Viewer, id: i64) -> Result<CampaignSummary, WebError> {
    let campaign = run_by(state, viewer, id).await?;
    let instance = campaign.instance.ok_or_else(|| WebError::Conflict("the campaign has not started".into()))?;
    attest_review::apply_revocations(&state.store, instance.id, &viewer.actor(), state.now())
        .await
        .map_err(review_error)?;
    summary(state, &state.store.reviews().get_campaign(id).await?).await
}

/// `POST /campaigns/{id}/start`
pub async fn start(
    viewer: Allowed<rule::CampaignOwner>,
    State(state): State<AppState>,
    Id(id): Id,
    Submitted(_): Submitted<serde_json::Value>,
) -> Result<Response, WebError> {
    start_now(&state, &viewer, id).await?;
    Ok(Redirect::to(&format!("/campaigns/{id}")).into_response())
}

/// `POST /campaigns/{id}/close`
pub async fn close(
    viewer: Allowed<rule::CampaignOwner>,
    State(state): State<AppState>,
    Id(id): Id,
    Submitted(_): Submitted<serde_json::Value>,
) -> Result<Response, WebError> {
    close_now(&state, &viewer, id).await?;
    Ok(Redirect::to(&format!("/campaigns/{id}")).into_response())
}

/// `POST /campaigns/{id}/apply`
pub async fn apply(
    viewer: Allowed<rule::CampaignOwner>,
    State(state): State<AppState>,
    Id(id): Id,
    Submitted(_): Submitted<serde_json::Value>,
) -> Result<Response, WebError> {
    apply_now(&state, &viewer, id).await?;
    Ok(Redirect::to(&format!("/campaigns/{id}")).into_response())
}

async fn export(state: &AppState, viewer: &Viewer, id: i64, format: ExportFormat) -> Result<Response, WebError> {
    let (campaign, _) = visible(state, viewer, id).await?;
    let instance = campaign.instance.ok_or_else(|| WebError::NotFound("the campaign has not started".into()))?;
    let text = attest_review::export(&state.store, instance.id, format, &viewer.actor(), state.now())
        .await
        .map_err(review_error)?;
    let (kind, extension) = match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        ExportFormat::Json => ("application/json", "json"),
    };
    let name = format!("campaign-{id}-instance-{}.{extension}", instance.number);
    Ok(super::audit::download(text, kind, &name))
}

/// `GET /campaigns/{id}/export.csv`
pub async fn export_csv(
    viewer: Allowed<rule::SignedIn>,
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Response, WebError> {
    export(&state, &viewer, id, ExportFormat::Csv).await
}

/// `GET /campaigns/{id}/export.json`
pub async fn export_json(
    viewer: Allowed<rule::SignedIn>,
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Response, WebError> {
    export(&state, &viewer, id, ExportFormat::Json).await
}

//! The JSON API under `/api/v1`: the same data the pages show, for scripts and integrations.
//! It uses the browser session (cookie); writes carry the session's CSRF token in the
//! `x-csrf-token` header. Errors are `{"error": {"code", "reason", "message", "request_id"}}`.
//! The OpenAPI document at `/api/v1/openapi.json` describes every route (a test keeps it and the
//! route table in step). Every answer is typed (`api_model`: RFC 3339 times, ids, codes), its
//! schema generated from the type, and the e2e tests validate responses against the document.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::AppState;
use crate::api_model::{
    ApiSyncRun, Applied, AuditList, CampaignDetail, CampaignList, CampaignSummary, ChangeDetail, ChangeList,
    ConnectorSyncs, Dashboard, MyAccess, PeopleList, PrincipalDetail, ResourceDetail, ResourceList, ReviewDecided,
    ReviewInbox, ServicePrincipalList, SyncAsked, SyncOverview, SyncRequested,
};
use crate::error::ApiError;
use crate::error::WebError;
use crate::extract::{Id, Query};
use crate::forms::Submitted;
use crate::pages::actions::{self, ActionForm};
use crate::pages::audit::{AuditQuery, audit_data};
use crate::pages::campaigns::{
    CampaignQuery, apply_now, campaign_data, campaigns_data, close_now, create_now, start_now,
};
use crate::pages::changes::{
    ChangesQuery, DenyForm, approve_now, cancel_now, change_rows, deny_now, find_changes, password_unknown,
    permissions, readable_change, retry_now,
};
use crate::pages::dashboard::dashboard as dashboard_data;
use crate::pages::directory::{ListQuery, PageQuery, people_data, principal_data, resource_data, resources_data};
use crate::pages::reviews::{
    AcceptForm, ApiComment as ApiCommentForm, ApiDecide, ApiReassign, InboxQuery, accept_now, comment_now, decide_now,
    inbox_data, reassign_now,
};
use crate::pages::syncs::find_runs;
use crate::pages::syncs::{self, SyncForm};
use crate::roles::{Allowed, Anyone, rule};
use attest_domain::ResourceKind;

/// The OpenAPI 3.1 document, made once.
static OPENAPI: std::sync::LazyLock<Result<String, String>> =
    std::sync::LazyLock::new(|| crate::api_model::document().map(|doc| doc.to_string()));

/// A JSON answer of type `T`, or a JSON error.
type ApiResult<T> = Result<Json<T>, ApiError>;

/// `GET /api/v1/openapi.json`
pub async fn openapi(_: Anyone) -> Result<Response, ApiError> {
    let doc = OPENAPI.as_ref().map_err(|e| WebError::Internal(format!("the OpenAPI document is broken: {e}")))?;
    let mut response = doc.clone().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// `GET /api/v1/dashboard`
pub async fn dashboard(viewer: Allowed<rule::SignedIn>, State(state): State<AppState>) -> ApiResult<Dashboard> {
    Ok(Json(dashboard_data(&state, &viewer).await?))
}

/// `GET /api/v1/me/access`: the signed-in person's own access.
pub async fn my_access(viewer: Allowed<rule::SignedIn>, State(state): State<AppState>) -> ApiResult<MyAccess> {
    Ok(Json(crate::pages::me::my_access_data(&state, &viewer).await?))
}

/// `GET /api/v1/people`
pub async fn people(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> ApiResult<PeopleList> {
    Ok(Json(people_data(&state, &viewer, &query).await?))
}

/// `GET /api/v1/groups`
pub async fn groups(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> ApiResult<ResourceList> {
    Ok(Json(resources_data(&state, &viewer, ResourceKind::Group, &query).await?))
}

/// `GET /api/v1/applications`
pub async fn applications(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> ApiResult<ResourceList> {
    Ok(Json(resources_data(&state, &viewer, ResourceKind::Application, &query).await?))
}

/// `GET /api/v1/roles`
pub async fn roles(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> ApiResult<ResourceList> {
    Ok(Json(resources_data(&state, &viewer, ResourceKind::DirectoryRole, &query).await?))
}

/// `GET /api/v1/service-principals`
pub async fn service_principals(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> ApiResult<ServicePrincipalList> {
    Ok(Json(crate::pages::directory::service_principals_data(&state, &viewer, &query).await?))
}

/// `GET /api/v1/principals/{id}`
pub async fn principal(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
    Id(id): Id,
) -> ApiResult<PrincipalDetail> {
    Ok(Json(principal_data(&state, &viewer, id).await?))
}

/// `GET /api/v1/resources/{id}`
pub async fn resource(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
    Id(id): Id,
    Query(query): Query<PageQuery>,
) -> ApiResult<ResourceDetail> {
    Ok(Json(resource_data(&state, &viewer, id, query.page).await?))
}

/// `GET /api/v1/changes`
pub async fn changes(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
    Query(query): Query<ChangesQuery>,
) -> Result<Json<ChangeList>, ApiError> {
    let found = find_changes(&state, &viewer, &query).await?;
    Ok(Json(ChangeList { changes: change_rows(&state.store, &found.changes).await?, next_before: found.next_before }))
}

/// `GET /api/v1/changes/{id}`
pub async fn change(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Json<ChangeDetail>, ApiError> {
    let change = readable_change(&state, &viewer, id).await?;
    let api = change_rows(&state.store, std::slice::from_ref(&change)).await?.pop();
    let api = api.ok_or_else(|| WebError::Internal(format!("change {id} could not be described")))?;
    Ok(Json(ChangeDetail {
        action: serde_json::to_value(&change.action).map_err(|e| WebError::Internal(e.to_string()))?,
        idempotency_key: change.idempotency_key.clone(),
        password_unknown: password_unknown(&change),
        can: permissions(&viewer, &change),
        change: api,
    }))
}

/// `GET /api/v1/syncs`
pub async fn syncs(
    viewer: Allowed<rule::DirectoryReader>,
    State(state): State<AppState>,
) -> Result<Json<SyncOverview>, ApiError> {
    let connectors = find_runs(&state, &viewer)
        .await?
        .into_iter()
        .map(|c| ConnectorSyncs {
            name: c.connector.name.clone(),
            status: c.connector.status.to_string(),
            can_sync: viewer.can_operate(c.connector.id),
            requested: c.requested.map(|r| SyncRequested {
                mode: r.mode.to_string(),
                by: r.requested_by,
                at: r.requested_at,
            }),
            runs: c.runs.iter().map(ApiSyncRun::new).collect(),
        })
        .collect();
    Ok(Json(SyncOverview { connectors }))
}

/// `GET /api/v1/audit`
pub async fn audit(
    _viewer: Allowed<rule::AuditReader>,
    State(state): State<AppState>,
    Query(query): Query<AuditQuery>,
) -> ApiResult<AuditList> {
    Ok(Json(audit_data(&state, &query).await?))
}

/// A change as the API answers writes: its row, and once, a secret it made (a temporary
/// password), in a response that is never cached.
async fn applied(state: &AppState, done: attest_provisioner::InPerson) -> Result<Response, ApiError> {
    let change = change_rows(&state.store, std::slice::from_ref(&done.change)).await?.pop();
    let change =
        change.ok_or_else(|| WebError::Internal(format!("change {} could not be described", done.change.id.0)))?;
    let secret = done.secret.is_some();
    let body = Applied { change, temporary_password: done.secret.map(|s| s.expose().to_owned()) };
    let mut response = Json(body).into_response();
    if secret {
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response)
}

/// `POST /api/v1/principals/{id}/actions`: the side panel's actions.
pub async fn act(
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Id(id): Id,
    Submitted(form): Submitted<ActionForm>,
) -> Result<Response, ApiError> {
    let done = actions::act(&state, &viewer, id, &form).await?;
    applied(&state, done).await
}

/// `POST /api/v1/changes/{id}/approve`
pub async fn approve(
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Id(id): Id,
    Submitted(_): Submitted<Value>,
) -> Result<Response, ApiError> {
    let done = approve_now(&state, &viewer, id).await?;
    applied(&state, done).await
}

/// `POST /api/v1/changes/{id}/deny`: `{"reason": "..."}`.
pub async fn deny(
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Id(id): Id,
    Submitted(form): Submitted<DenyForm>,
) -> Result<Response, ApiError> {
    let change = deny_now(&state, &viewer, id, &form.reason).await?;
    applied(&state, attest_provisioner::InPerson { change, secret: None }).await
}

/// `POST /api/v1/changes/{id}/retry`
pub async fn retry(
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Id(id): Id,
    Submitted(_): Submitted<Value>,
) -> Result<Response, ApiError> {
    let change = retry_now(&state, &viewer, id).await?;
    applied(&state, attest_provisioner::InPerson { change, secret: None }).await
}

/// `POST /api/v1/changes/{id}/cancel`
pub async fn cancel(
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Id(id): Id,
    Submitted(_): Submitted<Value>,
) -> Result<Response, ApiError> {
    let change = cancel_now(&state, &viewer, id).await?;
    applied(&state, attest_provisioner::InPerson { change, secret: None }).await
}

/// `GET /api/v1/reviews`: the viewer's items to review, across running campaigns.
pub async fn reviews(
    viewer: Allowed<rule::Reviewer>,
    State(state): State<AppState>,
    Query(query): Query<InboxQuery>,
) -> ApiResult<ReviewInbox> {
    Ok(Json(inbox_data(&state, &viewer, &query).await?))
}

/// `POST /api/v1/reviews/decide`: `{"items": [..], "decision": "approve"|"revoke"|"not_sure",
/// "justification": ".."}`.
pub async fn decide(
    viewer: Allowed<rule::Reviewer>,
    State(state): State<AppState>,
    Submitted(form): Submitted<ApiDecide>,
) -> ApiResult<ReviewDecided> {
    let how = if form.items.len() > 1 { "bulk" } else { "reviewer" };
    let decided = decide_now(&state, &viewer, &form.items, &form.decision, &form.justification, how).await?;
    Ok(Json(ReviewDecided { decided }))
}

/// `POST /api/v1/reviews/reassign`: `{"items": [..], "to": "someone@contoso.com"}`.
pub async fn reassign(
    viewer: Allowed<rule::Reviewer>,
    State(state): State<AppState>,
    Submitted(form): Submitted<ApiReassign>,
) -> ApiResult<ReviewDecided> {
    Ok(Json(ReviewDecided { decided: reassign_now(&state, &viewer, &form.items, &form.to).await? }))
}

/// `POST /api/v1/reviews/comment`: `{"items": [..], "comment": "…"}`.
pub async fn comment(
    viewer: Allowed<rule::Reviewer>,
    State(state): State<AppState>,
    Submitted(form): Submitted<ApiCommentForm>,
) -> ApiResult<ReviewDecided> {
    Ok(Json(ReviewDecided { decided: comment_now(&state, &viewer, &form.items, &form.comment).await? }))
}

/// `POST /api/v1/reviews/accept`: `{"campaign": ID}`.
pub async fn accept(
    viewer: Allowed<rule::Reviewer>,
    State(state): State<AppState>,
    Submitted(form): Submitted<AcceptForm>,
) -> ApiResult<ReviewDecided> {
    Ok(Json(ReviewDecided { decided: accept_now(&state, &viewer, form.campaign).await? }))
}

/// `GET /api/v1/campaigns`
pub async fn campaigns(viewer: Allowed<rule::SignedIn>, State(state): State<AppState>) -> ApiResult<CampaignList> {
    Ok(Json(campaigns_data(&state, &viewer).await?))
}

/// `POST /api/v1/campaigns`: a definition, as JSON with the TOML file's fields.
pub async fn create_campaign(
    viewer: Allowed<rule::Admin>,
    State(state): State<AppState>,
    Submitted(definition): Submitted<Value>,
) -> ApiResult<CampaignSummary> {
    let definition: attest_domain::review::CampaignDefinition = serde_json::from_value(definition)
        .map_err(|e| WebError::BadRequest(format!("the definition is not valid: {e}")))?;
    let campaign = create_now(&state, &viewer, &definition).await?;
    Ok(Json(CampaignSummary::new(&campaign, None)))
}

/// `GET /api/v1/campaigns/{id}`
pub async fn campaign(
    viewer: Allowed<rule::SignedIn>,
    State(state): State<AppState>,
    Id(id): Id,
    Query(query): Query<CampaignQuery>,
) -> ApiResult<CampaignDetail> {
    Ok(Json(campaign_data(&state, &viewer, id, &query).await?))
}

/// `POST /api/v1/campaigns/{id}/start`
pub async fn start_campaign(
    viewer: Allowed<rule::CampaignOwner>,
    State(state): State<AppState>,
    Id(id): Id,
    Submitted(_): Submitted<Value>,
) -> ApiResult<CampaignSummary> {
    Ok(Json(start_now(&state, &viewer, id).await?))
}

/// `POST /api/v1/campaigns/{id}/close`
pub async fn close_campaign(
    viewer: Allowed<rule::CampaignOwner>,
    State(state): State<AppState>,
    Id(id): Id,
    Submitted(_): Submitted<Value>,
) -> ApiResult<CampaignSummary> {
    Ok(Json(close_now(&state, &viewer, id).await?))
}

/// `POST /api/v1/campaigns/{id}/apply`
pub async fn apply_campaign(
    viewer: Allowed<rule::CampaignOwner>,
    State(state): State<AppState>,
    Id(id): Id,
    Submitted(_): Submitted<Value>,
) -> ApiResult<CampaignSummary> {
    Ok(Json(apply_now(&state, &viewer, id).await?))
}

/// `POST /api/v1/connectors/{name}/sync`: "Sync now".
pub async fn sync_now(
    viewer: Allowed<rule::Operator>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Submitted(form): Submitted<SyncForm>,
) -> ApiResult<SyncAsked> {
    let r = syncs::request(&state, &viewer, &name, &form).await?;
    Ok(Json(SyncAsked {
        requested: SyncRequested { mode: r.mode.to_string(), by: r.requested_by, at: r.requested_at },
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeSet;

    #[test]
    fn the_openapi_document_describes_exactly_the_api_routes() {
        let doc = crate::api_model::document().unwrap();
        assert_eq!(doc["openapi"].as_str().unwrap().split('.').next(), Some("3"));
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.insert((method.to_uppercase(), format!("/api/v1{path}")));
            }
        }
        let routed: BTreeSet<(String, String)> = crate::routes::route_table()
            .into_iter()
            .filter(|r| r.surface == crate::error::Surface::Api)
            .map(|r| (r.method.to_owned(), r.path.to_owned()))
            .collect();
        assert_eq!(documented, routed);
    }
}

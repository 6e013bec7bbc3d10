//! The JSON API under `/api/v1`: the same data the pages show, for scripts and integrations.
//! It uses the browser session (cookie); writes carry the session's CSRF token in the
//! `x-csrf-token` header. Errors are `{"error": {"code", "message"}}`. The OpenAPI document at
//! `/api/v1/openapi.json` describes every route; a test keeps it and the route table in step.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::AppState;
use crate::error::ApiError;
use crate::forms::Submitted;
use crate::pages::actions::{self, ActionForm};
use crate::pages::audit::{AuditQuery, audit_data};
use crate::pages::changes::{ChangesQuery, approve_now, cancel_now, change_data, change_rows, changes_data, retry_now};
use crate::pages::dashboard::dashboard as dashboard_data;
use crate::pages::directory::{ListQuery, PageQuery, people_data, principal_data, resource_data, resources_data};
use crate::pages::syncs::syncs_data;
use crate::pages::syncs::{self, SyncForm};
use crate::roles::{Allowed, rule};
use attest_domain::ResourceKind;

/// The OpenAPI 3.1 document, kept beside the code it describes.
pub const OPENAPI: &str = include_str!("openapi.json");

type ApiResult = Result<Json<Value>, ApiError>;

/// `GET /api/v1/openapi.json`
pub async fn openapi() -> Response {
    let mut response = OPENAPI.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `GET /api/v1/dashboard`
pub async fn dashboard(State(state): State<AppState>, viewer: Allowed<rule::SignedIn>) -> ApiResult {
    Ok(Json(dashboard_data(&state, &viewer).await?))
}

/// `GET /api/v1/people`
pub async fn people(
    State(state): State<AppState>,
    viewer: Allowed<rule::DirectoryReader>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    Ok(Json(people_data(&state, &viewer, &query).await?))
}

/// `GET /api/v1/groups`
pub async fn groups(
    State(state): State<AppState>,
    viewer: Allowed<rule::DirectoryReader>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    Ok(Json(resources_data(&state, &viewer, ResourceKind::Group, &query).await?))
}

/// `GET /api/v1/applications`
pub async fn applications(
    State(state): State<AppState>,
    viewer: Allowed<rule::DirectoryReader>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    Ok(Json(resources_data(&state, &viewer, ResourceKind::Application, &query).await?))
}

/// `GET /api/v1/roles`
pub async fn roles(
    State(state): State<AppState>,
    viewer: Allowed<rule::DirectoryReader>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    Ok(Json(resources_data(&state, &viewer, ResourceKind::DirectoryRole, &query).await?))
}

/// `GET /api/v1/principals/{id}`
pub async fn principal(
    State(state): State<AppState>,
    viewer: Allowed<rule::DirectoryReader>,
    Path(id): Path<i64>,
) -> ApiResult {
    Ok(Json(principal_data(&state, &viewer, id).await?))
}

/// `GET /api/v1/resources/{id}`
pub async fn resource(
    State(state): State<AppState>,
    viewer: Allowed<rule::DirectoryReader>,
    Path(id): Path<i64>,
    Query(query): Query<PageQuery>,
) -> ApiResult {
    Ok(Json(resource_data(&state, &viewer, id, query.page).await?))
}

/// `GET /api/v1/changes`
pub async fn changes(
    State(state): State<AppState>,
    viewer: Allowed<rule::DirectoryReader>,
    Query(query): Query<ChangesQuery>,
) -> ApiResult {
    Ok(Json(changes_data(&state, &viewer, &query).await?))
}

/// `GET /api/v1/changes/{id}`
pub async fn change(
    State(state): State<AppState>,
    viewer: Allowed<rule::DirectoryReader>,
    Path(id): Path<i64>,
) -> ApiResult {
    Ok(Json(change_data(&state, &viewer, id).await?))
}

/// `GET /api/v1/syncs`
pub async fn syncs(State(state): State<AppState>, viewer: Allowed<rule::DirectoryReader>) -> ApiResult {
    Ok(Json(syncs_data(&state, &viewer).await?))
}

/// `GET /api/v1/audit`
pub async fn audit(
    State(state): State<AppState>,
    _viewer: Allowed<rule::AuditReader>,
    Query(query): Query<AuditQuery>,
) -> ApiResult {
    Ok(Json(audit_data(&state, &query).await?))
}

/// A change as the API answers writes: its row, and once, a secret it made (a temporary
/// password), in a response that is never cached.
async fn applied(state: &AppState, done: attest_provisioner::InPerson) -> Result<Response, ApiError> {
    let row = change_rows(&state.store, std::slice::from_ref(&done.change)).await?.pop().unwrap_or_default();
    let mut body = serde_json::json!({"change": row});
    let secret = done.secret.is_some();
    if let Some(secret) = done.secret {
        body["temporary_password"] = secret.expose().into();
    }
    let mut response = Json(body).into_response();
    if secret {
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response)
}

/// `POST /api/v1/principals/{id}/actions`: the side panel's actions.
pub async fn act(
    State(state): State<AppState>,
    viewer: Allowed<rule::Operator>,
    Path(id): Path<i64>,
    Submitted(form): Submitted<ActionForm>,
) -> Result<Response, ApiError> {
    let done = actions::act(&state, &viewer, id, &form).await?;
    applied(&state, done).await
}

/// `POST /api/v1/changes/{id}/approve`
pub async fn approve(
    State(state): State<AppState>,
    viewer: Allowed<rule::Operator>,
    Path(id): Path<i64>,
    Submitted(_): Submitted<Value>,
) -> Result<Response, ApiError> {
    let done = approve_now(&state, &viewer, id).await?;
    applied(&state, done).await
}

/// `POST /api/v1/changes/{id}/retry`
pub async fn retry(
    State(state): State<AppState>,
    viewer: Allowed<rule::Operator>,
    Path(id): Path<i64>,
    Submitted(_): Submitted<Value>,
) -> Result<Response, ApiError> {
    let change = retry_now(&state, &viewer, id).await?;
    applied(&state, attest_provisioner::InPerson { change, secret: None }).await
}

/// `POST /api/v1/changes/{id}/cancel`
pub async fn cancel(
    State(state): State<AppState>,
    viewer: Allowed<rule::Operator>,
    Path(id): Path<i64>,
    Submitted(_): Submitted<Value>,
) -> Result<Response, ApiError> {
    let change = cancel_now(&state, &viewer, id).await?;
    applied(&state, attest_provisioner::InPerson { change, secret: None }).await
}

/// `POST /api/v1/connectors/{name}/sync`: "Sync now".
pub async fn sync_now(
    State(state): State<AppState>,
    viewer: Allowed<rule::Operator>,
    Path(name): Path<String>,
    Submitted(form): Submitted<SyncForm>,
) -> ApiResult {
    let requested = syncs::request(&state, &viewer, &name, &form).await?;
    Ok(Json(serde_json::json!({"requested": requested})))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeSet;

    #[test]
    fn the_openapi_document_describes_exactly_the_api_routes() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        assert_eq!(doc["openapi"].as_str().unwrap().split('.').next(), Some("3"));
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.insert((method.to_uppercase(), format!("/api/v1{path}")));
            }
        }
        let routed: BTreeSet<(String, String)> = crate::routes::route_table()
            .into_iter()
            .filter(|r| r.path.starts_with("/api/v1/"))
            .map(|r| (r.method.to_owned(), r.path.to_owned()))
            .collect();
        assert_eq!(documented, routed);
    }
}

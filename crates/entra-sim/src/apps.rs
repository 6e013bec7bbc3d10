//! Graph v1.0: service principals (enterprise applications and managed identities), who is
//! assigned to them, their owners; a user's app role assignments and manager.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use serde_json::{Map, Value};

use crate::error::GraphError;
use crate::graph::{DIRECTORY_OBJECTS, USERS_READ, begin, entity, objects_page, page};
use crate::odata::Collection;
use crate::state::Sim;
use crate::tenant::{AppRoleAssignment, ServicePrincipal};

pub(crate) const APPLICATIONS_READ: &[&str] = &[
    "Application.Read.All",
    "Application.ReadWrite.OwnedBy",
    "Application.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
/// `GET /users/{id}/appRoleAssignments`, application permissions (user-list-approleassignments).
const USER_ASSIGNMENTS_READ: &[&str] =
    &["Directory.Read.All", "AppRoleAssignment.ReadWrite.All", "Directory.ReadWrite.All"];

const SERVICE_PRINCIPALS: Collection = Collection {
    entity: "servicePrincipal",
    context: "servicePrincipals",
    properties: ServicePrincipal::DEFAULT_PROPERTIES,
    default_select: ServicePrincipal::DEFAULT_PROPERTIES,
    // [UNVERIFIED] servicePrincipalType is not documented as filterable; accepted here, and the
    // connector filters client-side anyway (graph-facts §4).
    filterable: &[
        "id",
        "appId",
        "displayName",
        "accountEnabled",
        "appOwnerOrganizationId",
        "servicePrincipalType",
        "tags",
    ],
    default_page: 100,
    max_page: 999,
    single_entity_only: &[],
    typed_items: false,
};

const APP_ROLE_ASSIGNMENTS: Collection = Collection {
    entity: "appRoleAssignment",
    context: "appRoleAssignments",
    properties: &[
        "id",
        "appRoleId",
        "createdDateTime",
        "deletedDateTime",
        "principalDisplayName",
        "principalId",
        "principalType",
        "resourceDisplayName",
        "resourceId",
    ],
    default_select: &[
        "id",
        "appRoleId",
        "createdDateTime",
        "deletedDateTime",
        "principalDisplayName",
        "principalId",
        "principalType",
        "resourceDisplayName",
        "resourceId",
    ],
    filterable: &["principalId", "resourceId", "appRoleId"],
    default_page: 100,
    max_page: 999,
    single_entity_only: &[],
    typed_items: false,
};

/// `GET /v1.0/servicePrincipals`
pub(crate) async fn list_service_principals(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    let (_, query) = begin(&sim, &headers, raw.as_deref(), APPLICATIONS_READ, &SERVICE_PRINCIPALS)?;
    sim.read(|t| {
        let item =
            |i: usize| t.service_principals.get(i).filter(|s| s.deleted.is_none()).map(ServicePrincipal::to_json);
        let len = t.service_principals.len();
        page(&sim, &query, &SERVICE_PRINCIPALS, "/v1.0/servicePrincipals", len, item)
    })
}

/// `GET /v1.0/servicePrincipals/{id}`
pub(crate) async fn get_service_principal(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    let (_, query) = begin(&sim, &headers, raw.as_deref(), APPLICATIONS_READ, &SERVICE_PRINCIPALS)?;
    let object = sim
        .read(|t| t.service_principal(&id).map(ServicePrincipal::to_json).ok_or_else(|| GraphError::not_found(&id)))?;
    Ok(entity(&sim, &query, &SERVICE_PRINCIPALS, object))
}

/// `GET /v1.0/servicePrincipals/{id}/appRoleAssignedTo`: who is assigned to this application.
pub(crate) async fn list_app_role_assigned_to(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    let (_, query) = begin(&sim, &headers, raw.as_deref(), APPLICATIONS_READ, &APP_ROLE_ASSIGNMENTS)?;
    let path = format!("/v1.0/servicePrincipals/{id}/appRoleAssignedTo");
    sim.read(|t| {
        t.service_principal(&id).ok_or_else(|| GraphError::not_found(&id))?;
        let assignments: Vec<&AppRoleAssignment> =
            t.app_role_assignments.iter().filter(|a| a.resource_id == id && t.is_live(&a.principal_id)).collect();
        let item = |i: usize| assignments.get(i).map(|a| a.to_json());
        page(&sim, &query, &APP_ROLE_ASSIGNMENTS, &path, assignments.len(), item)
    })
}

/// `GET /v1.0/servicePrincipals/{id}/owners`
pub(crate) async fn list_service_principal_owners(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    let (_, query) = begin(&sim, &headers, raw.as_deref(), APPLICATIONS_READ, &DIRECTORY_OBJECTS)?;
    let path = format!("/v1.0/servicePrincipals/{id}/owners");
    sim.read(|t| {
        let owners = &t.service_principal(&id).ok_or_else(|| GraphError::not_found(&id))?.owners;
        objects_page(&sim, t, &query, &path, owners)
    })
}

/// `GET /v1.0/users/{id}/appRoleAssignments`
pub(crate) async fn list_user_app_role_assignments(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    let (_, query) = begin(&sim, &headers, raw.as_deref(), USER_ASSIGNMENTS_READ, &APP_ROLE_ASSIGNMENTS)?;
    let path = format!("/v1.0/users/{id}/appRoleAssignments");
    sim.read(|t| {
        let user_id = t.live_user(&id).ok_or_else(|| GraphError::not_found(&id))?.id.clone();
        let assignments: Vec<&AppRoleAssignment> =
            t.app_role_assignments.iter().filter(|a| a.principal_id == user_id).collect();
        let item = |i: usize| assignments.get(i).map(|a| a.to_json());
        page(&sim, &query, &APP_ROLE_ASSIGNMENTS, &path, assignments.len(), item)
    })
}

/// `GET /v1.0/users/{id}/manager`: the manager, or Graph's 404 for a user without one.
pub(crate) async fn get_manager(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    let (_, query) = begin(&sim, &headers, raw.as_deref(), USERS_READ, &DIRECTORY_OBJECTS)?;
    let manager: Map<String, Value> = sim.read(|t| {
        let user = t.live_user(&id).ok_or_else(|| GraphError::not_found(&id))?;
        // [OBS] the documented "no manager" answer (graph-facts §1).
        let none = || {
            GraphError::new(
                axum::http::StatusCode::NOT_FOUND,
                "Request_ResourceNotFound",
                "Resource 'manager' does not exist or one of its queried reference-property objects are not present.",
            )
        };
        let manager = user.manager.as_deref().ok_or_else(none)?;
        t.directory_object(manager).map(|(_, o)| o).ok_or_else(none)
    })?;
    Ok(entity(&sim, &query, &DIRECTORY_OBJECTS, manager))
}

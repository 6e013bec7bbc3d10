//! Graph v1.0: service principals (enterprise applications and managed identities), who is
//! assigned to them, their owners; a user's app role assignments and manager.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use serde_json::{Map, Value};

use crate::error::GraphError;
use crate::graph::{DIRECTORY_OBJECTS, USERS_READ, entity, eventual, page, type_defaults};
use crate::identity::authorize;
use crate::odata::{Collection, ListQuery};
use crate::server::Sim;
use crate::tenant::{AppRoleAssignment, Kind, ServicePrincipal, User};

const APPLICATIONS_READ: &[&str] = &[
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
};

/// `GET /v1.0/servicePrincipals`
pub(crate) async fn list_service_principals(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    authorize(&sim, &headers, APPLICATIONS_READ)?;
    let query = ListQuery::parse(raw.as_deref(), eventual(&headers), &SERVICE_PRINCIPALS)?;
    sim.read(|t| {
        let item = |i: usize| t.service_principals.get(i).map(ServicePrincipal::to_json);
        let len = t.service_principals.len();
        page(&sim, &query, &SERVICE_PRINCIPALS, "/v1.0/servicePrincipals", len, item, |_| {
            ServicePrincipal::DEFAULT_PROPERTIES
        })
    })
}

fn find_service_principal<'t>(t: &'t crate::Tenant, id: &str) -> Result<&'t ServicePrincipal, GraphError> {
    match t.locate(id) {
        Some((Kind::ServicePrincipal, i)) => t.service_principals.get(i).ok_or_else(|| GraphError::not_found(id)),
        _ => Err(GraphError::not_found(id)),
    }
}

/// `GET /v1.0/servicePrincipals/{id}`
pub(crate) async fn get_service_principal(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    authorize(&sim, &headers, APPLICATIONS_READ)?;
    let query = ListQuery::parse(raw.as_deref(), eventual(&headers), &SERVICE_PRINCIPALS)?;
    let object = sim.read(|t| find_service_principal(t, &id).map(ServicePrincipal::to_json))?;
    Ok(entity(&sim, &query, &SERVICE_PRINCIPALS, object))
}

/// `GET /v1.0/servicePrincipals/{id}/appRoleAssignedTo`: who is assigned to this application.
pub(crate) async fn list_app_role_assigned_to(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    authorize(&sim, &headers, APPLICATIONS_READ)?;
    let query = ListQuery::parse(raw.as_deref(), eventual(&headers), &APP_ROLE_ASSIGNMENTS)?;
    let path = format!("/v1.0/servicePrincipals/{id}/appRoleAssignedTo");
    sim.read(|t| {
        find_service_principal(t, &id)?;
        let assignments: Vec<&AppRoleAssignment> = t
            .app_role_assignments
            .iter()
            .filter(|a| a.resource_id == id && t.directory_object(&a.principal_id).is_some())
            .collect();
        let item = |i: usize| assignments.get(i).map(|a| a.to_json());
        page(&sim, &query, &APP_ROLE_ASSIGNMENTS, &path, assignments.len(), item, |_| {
            APP_ROLE_ASSIGNMENTS.default_select
        })
    })
}

/// `GET /v1.0/servicePrincipals/{id}/owners`
pub(crate) async fn list_service_principal_owners(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    authorize(&sim, &headers, APPLICATIONS_READ)?;
    let query = ListQuery::parse(raw.as_deref(), eventual(&headers), &DIRECTORY_OBJECTS)?;
    let path = format!("/v1.0/servicePrincipals/{id}/owners");
    sim.read(|t| {
        let owners = &find_service_principal(t, &id)?.owners;
        let item = |i: usize| owners.get(i).and_then(|o| t.directory_object(o)).map(|(_, o)| o);
        page(&sim, &query, &DIRECTORY_OBJECTS, &path, owners.len(), item, type_defaults)
    })
}

fn find_user<'t>(t: &'t crate::Tenant, id: &str) -> Result<&'t User, GraphError> {
    t.live_users()
        .find(|u| u.id.eq_ignore_ascii_case(id) || u.user_principal_name.eq_ignore_ascii_case(id))
        .ok_or_else(|| GraphError::not_found(id))
}

/// `GET /v1.0/users/{id}/appRoleAssignments`
pub(crate) async fn list_user_app_role_assignments(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    authorize(&sim, &headers, USER_ASSIGNMENTS_READ)?;
    let query = ListQuery::parse(raw.as_deref(), eventual(&headers), &APP_ROLE_ASSIGNMENTS)?;
    let path = format!("/v1.0/users/{id}/appRoleAssignments");
    sim.read(|t| {
        let user_id = find_user(t, &id)?.id.clone();
        let assignments: Vec<&AppRoleAssignment> =
            t.app_role_assignments.iter().filter(|a| a.principal_id == user_id).collect();
        let item = |i: usize| assignments.get(i).map(|a| a.to_json());
        page(&sim, &query, &APP_ROLE_ASSIGNMENTS, &path, assignments.len(), item, |_| {
            APP_ROLE_ASSIGNMENTS.default_select
        })
    })
}

/// `GET /v1.0/users/{id}/manager`: the manager, or Graph's 404 for a user without one.
pub(crate) async fn get_manager(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    authorize(&sim, &headers, USERS_READ)?;
    let query = ListQuery::parse(raw.as_deref(), eventual(&headers), &DIRECTORY_OBJECTS)?;
    let manager: Map<String, Value> = sim.read(|t| {
        let user = find_user(t, &id)?;
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
    let with_defaults = Collection { default_select: type_defaults(&manager), ..DIRECTORY_OBJECTS };
    let mut object = query.project(&with_defaults, manager);
    object.insert("@odata.context".into(), format!("{}/v1.0/$metadata#directoryObjects/$entity", sim.graph_url).into());
    Ok(Json(Value::Object(object)))
}

//! The rest of the directory the connector reads: transitive group members, the legacy
//! `directoryRoles` (activated roles and their members), `organization`, and the `$count`
//! segment.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::GraphError;
use crate::graph::{DIRECTORY_OBJECTS, GROUPS_READ, USERS_READ, begin, eventual, objects_page};
use crate::identity::authorize;
use crate::state::Sim;
use crate::tenant::{Kind, Tenant};

const DIRECTORY_ROLES_READ: &[&str] = &[
    "RoleManagement.Read.Directory",
    "Directory.Read.All",
    "RoleManagement.ReadWrite.Directory",
    "Directory.ReadWrite.All",
];

/// organization-list.md: application access needs Directory.Read.All.
const ORGANIZATION_READ: &[&str] = &["Directory.Read.All", "Directory.ReadWrite.All"];

/// `GET /v1.0/groups/{id}/transitiveMembers`: members of nested groups too (the nested groups
/// themselves included), each once, cycles followed only once.
pub(crate) async fn list_transitive_members(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    let (_, query) = begin(&sim, &headers, raw.as_deref(), GROUPS_READ, &DIRECTORY_OBJECTS)?;
    let path = format!("/v1.0/groups/{id}/transitiveMembers");
    sim.read(|t| {
        t.group(&id).ok_or_else(|| GraphError::not_found(&id))?;
        objects_page(&sim, t, &query, &path, &transitive_members(t, &id))
    })
}

/// Breadth first from `group`, members in listing order.
fn transitive_members(t: &Tenant, group: &str) -> Vec<String> {
    let mut seen: HashSet<&str> = HashSet::from([group]);
    let mut out = Vec::new();
    let mut queue = VecDeque::from([group]);
    while let Some(current) = queue.pop_front() {
        let Some(g) = t.group(current) else { continue };
        for member in &g.members {
            if !seen.insert(member) {
                continue;
            }
            out.push(member.clone());
            if matches!(t.index.get(member.as_str()), Some((Kind::Group, _))) {
                queue.push_back(member);
            }
        }
    }
    out
}

/// A directory role's object id: its own id, not the template's (directoryrole.md), stable
/// for a tenant.
fn directory_role_id(tenant: &str, template: &str) -> String {
    let digest = Sha256::digest(format!("{tenant}/directoryRole/{template}"));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

/// Roles activated in the tenant: those ever assigned (a role is activated when first
/// assigned, and stays so).
fn activated(t: &Tenant) -> Vec<&crate::tenant::RoleDefinition> {
    t.role_definitions
        .iter()
        .filter(|d| {
            t.activated_roles.contains(&d.id) || t.role_assignments.iter().any(|a| a.role_definition_id == d.id)
        })
        .collect()
}

/// `GET /v1.0/directoryRoles`: no paging and no query options (directoryrole-list.md); options
/// sent anyway are ignored [INFER].
pub(crate) async fn list_directory_roles(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
) -> Result<Json<Value>, GraphError> {
    authorize(&sim, &headers, DIRECTORY_ROLES_READ)?;
    let value: Vec<Value> = sim.read(|t| {
        activated(t)
            .into_iter()
            .map(|d| {
                json!({
                    "id": directory_role_id(&t.id, &d.template_id),
                    "deletedDateTime": null,
                    "description": d.description,
                    "displayName": d.display_name,
                    "roleTemplateId": d.template_id,
                })
            })
            .collect()
    });
    Ok(Json(json!({
        "@odata.context": format!("{}/v1.0/$metadata#directoryRoles", sim.graph_url),
        "value": value,
    })))
}

/// `GET /v1.0/directoryRoles/{id}/members` and `/directoryRoles/roleTemplateId={id}/members`:
/// principals with an active tenant-wide assignment of the role, in one unpaged response.
pub(crate) async fn list_directory_role_members(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, GraphError> {
    authorize(&sim, &headers, DIRECTORY_ROLES_READ)?;
    sim.read(|t| {
        let role = activated(t)
            .into_iter()
            .find(|d| match id.strip_prefix("roleTemplateId=") {
                Some(template) => d.template_id.eq_ignore_ascii_case(template.trim_matches('\'')),
                None => directory_role_id(&t.id, &d.template_id) == id,
            })
            .ok_or_else(|| GraphError::not_found(&id))?;
        let mut seen = HashSet::new();
        let value: Vec<Value> = t
            .role_assignments
            .iter()
            .filter(|a| a.role_definition_id == role.id && a.directory_scope_id == "/")
            .filter(|a| seen.insert(a.principal_id.as_str()))
            .filter_map(|a| t.directory_object(&a.principal_id))
            .map(|(_, object)| Value::Object(object))
            .collect();
        Ok(Json(json!({
            "@odata.context": format!("{}/v1.0/$metadata#directoryObjects", sim.graph_url),
            "value": value,
        })))
    })
}

/// `GET /v1.0/organization`: the tenant, as organization-list.md shows it.
pub(crate) async fn list_organization(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
) -> Result<Json<Value>, GraphError> {
    authorize(&sim, &headers, ORGANIZATION_READ)?;
    let organization = sim.read(|t| {
        // Entra ID P1 and P2 service plans; a tenant without them cannot use signInActivity
        // or PIM. [INFER] plan ids as Microsoft's licensing service-plan reference lists them.
        let plans: Vec<Value> = if t.non_premium {
            Vec::new()
        } else {
            ["41781fb2-bc02-4b7c-bd55-b576c07bb09d", "eec0eb4f-6444-4f95-aba0-50c24d67f998"]
                .iter()
                .map(|plan| {
                    json!({"assignedDateTime": "2024-01-01T00:00:00Z", "capabilityStatus": "Enabled",
                           "service": "AADPremiumService", "servicePlanId": plan})
                })
                .collect()
        };
        json!({
            "id": t.id,
            "deletedDateTime": null,
            "displayName": t.display_name,
            "countryLetterCode": "US",
            "createdDateTime": "2019-03-01T09:00:00Z",
            "tenantType": "AAD",
            "onPremisesSyncEnabled": t.groups.iter().any(|g| g.on_premises_sync_enabled == Some(true)).then_some(true),
            "assignedPlans": plans,
            "verifiedDomains": [{
                "capabilities": "Email, OfficeCommunicationsOnline",
                "isDefault": true,
                "isInitial": true,
                "name": t.domain,
                "type": "Managed",
            }],
        })
    });
    Ok(Json(json!({
        "@odata.context": format!("{}/v1.0/$metadata#organization", sim.graph_url),
        "value": [organization],
    })))
}

/// `GET /v1.0/users/$count` and `/groups/$count`: a bare integer as text/plain, only with
/// `ConsistencyLevel: eventual` (graph-facts §1).
async fn count(sim: &Sim, headers: &HeaderMap, accepted: &[&str], kind: Kind) -> Response {
    if let Err(e) = authorize(sim, headers, accepted) {
        return e.into_response();
    }
    if !eventual(headers) {
        // [INFER] Graph's wording for a count segment without the advanced-query header.
        return GraphError::bad_request("Count is not currently supported.").into_response();
    }
    let n = sim.read(|t| match kind {
        Kind::User => t.live_users().count(),
        Kind::Group => t.live_groups().count(),
        Kind::ServicePrincipal => t.live_service_principals().count(),
    });
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], n.to_string()).into_response()
}

pub(crate) async fn count_users(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
    count(&sim, &headers, USERS_READ, Kind::User).await
}

pub(crate) async fn count_groups(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
    count(&sim, &headers, GROUPS_READ, Kind::Group).await
}

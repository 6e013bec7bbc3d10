//! Graph v1.0 role management for Entra: role definitions, active role assignments and PIM
//! eligibility schedules.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};

use crate::error::GraphError;
use crate::graph::{begin, page};
use crate::odata::Collection;
use crate::state::Sim;

const ROLES_READ: &[&str] = &[
    "RoleManagement.Read.Directory",
    "RoleManagement.Read.All",
    "Directory.Read.All",
    "RoleManagement.ReadWrite.Directory",
    "Directory.ReadWrite.All",
];
const ELIGIBILITY_READ: &[&str] = &[
    "RoleEligibilitySchedule.Read.Directory",
    "RoleManagement.Read.Directory",
    "RoleManagement.Read.All",
    "RoleEligibilitySchedule.ReadWrite.Directory",
    "RoleManagement.ReadWrite.Directory",
];

const DEFINITION_PROPERTIES: &[&str] = &[
    "id",
    "description",
    "displayName",
    "isBuiltIn",
    "isEnabled",
    "resourceScopes",
    "templateId",
    "version",
    "rolePermissions",
    "inheritsPermissionsFrom",
];
const DEFINITIONS: Collection = Collection {
    entity: "unifiedRoleDefinition",
    context: "roleManagement/directory/roleDefinitions",
    properties: DEFINITION_PROPERTIES,
    default_select: DEFINITION_PROPERTIES,
    filterable: &["id", "displayName", "isBuiltIn", "templateId"],
    default_page: 100,
    max_page: 999,
    single_entity_only: &[],
    typed_items: false,
};

const ASSIGNMENT_PROPERTIES: &[&str] =
    &["id", "roleDefinitionId", "principalId", "directoryScopeId", "appScopeId", "condition"];
const ASSIGNMENTS: Collection = Collection {
    entity: "unifiedRoleAssignment",
    context: "roleManagement/directory/roleAssignments",
    properties: ASSIGNMENT_PROPERTIES,
    default_select: ASSIGNMENT_PROPERTIES,
    filterable: &["id", "roleDefinitionId", "principalId", "directoryScopeId"],
    default_page: 100,
    max_page: 999,
    single_entity_only: &[],
    typed_items: false,
};

const ELIGIBILITY_PROPERTIES: &[&str] = &[
    "id",
    "principalId",
    "roleDefinitionId",
    "directoryScopeId",
    "appScopeId",
    "createdUsing",
    "createdDateTime",
    "modifiedDateTime",
    "status",
    "memberType",
    "scheduleInfo",
];
const ELIGIBILITIES: Collection = Collection {
    entity: "unifiedRoleEligibilitySchedule",
    context: "roleManagement/directory/roleEligibilitySchedules",
    properties: ELIGIBILITY_PROPERTIES,
    default_select: ELIGIBILITY_PROPERTIES,
    filterable: &["id", "roleDefinitionId", "principalId", "directoryScopeId"],
    default_page: 100,
    max_page: 999,
    single_entity_only: &[],
    typed_items: false,
};

const ASSIGNMENT_SCHEDULE_READ: &[&str] = &[
    "RoleAssignmentSchedule.Read.Directory",
    "RoleManagement.Read.Directory",
    "RoleManagement.Read.All",
    "RoleAssignmentSchedule.ReadWrite.Directory",
    "RoleManagement.ReadWrite.Directory",
];
const ASSIGNMENT_SCHEDULE_PROPERTIES: &[&str] = &[
    "id",
    "principalId",
    "roleDefinitionId",
    "directoryScopeId",
    "appScopeId",
    "createdUsing",
    "createdDateTime",
    "modifiedDateTime",
    "status",
    "memberType",
    "assignmentType",
    "scheduleInfo",
];
const ASSIGNMENT_SCHEDULES: Collection = Collection {
    entity: "unifiedRoleAssignmentSchedule",
    context: "roleManagement/directory/roleAssignmentSchedules",
    properties: ASSIGNMENT_SCHEDULE_PROPERTIES,
    default_select: ASSIGNMENT_SCHEDULE_PROPERTIES,
    filterable: &["id", "roleDefinitionId", "principalId", "directoryScopeId"],
    default_page: 100,
    max_page: 999,
    single_entity_only: &[],
    typed_items: false,
};

/// `GET /v1.0/roleManagement/directory/roleDefinitions`
pub(crate) async fn list_role_definitions(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    let (_, query) = begin(&sim, &headers, raw.as_deref(), ROLES_READ, &DEFINITIONS)?;
    sim.read(|t| {
        let item = |i: usize| t.role_definitions.get(i).map(|r| r.to_json());
        let path = "/v1.0/roleManagement/directory/roleDefinitions";
        page(&sim, &query, &DEFINITIONS, path, t.role_definitions.len(), item)
    })
}

/// `GET /v1.0/roleManagement/directory/roleAssignments` (active, non-PIM assignments)
pub(crate) async fn list_role_assignments(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    let (_, query) = begin(&sim, &headers, raw.as_deref(), ROLES_READ, &ASSIGNMENTS)?;
    sim.read(|t| {
        let item = |i: usize| t.role_assignments.get(i).map(|r| r.to_json());
        let path = "/v1.0/roleManagement/directory/roleAssignments";
        page(&sim, &query, &ASSIGNMENTS, path, t.role_assignments.len(), item)
    })
}

/// `GET /v1.0/roleManagement/directory/roleEligibilitySchedules` (PIM: Entra ID P2)
pub(crate) async fn list_role_eligibility_schedules(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    list_schedules(&sim, &headers, raw.as_deref(), ELIGIBILITY_READ, &ELIGIBILITIES, |t| {
        t.role_eligibilities.iter().map(|r| r.to_json()).collect()
    })
}

/// `GET /v1.0/roleManagement/directory/roleAssignmentSchedules` (PIM: Entra ID P2): every
/// active assignment as a schedule, with its end. [INFER] the permission list by analogy with
/// roleEligibilitySchedules, whose include file lists the same family.
pub(crate) async fn list_role_assignment_schedules(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    list_schedules(&sim, &headers, raw.as_deref(), ASSIGNMENT_SCHEDULE_READ, &ASSIGNMENT_SCHEDULES, |t| {
        t.role_assignments.iter().map(|r| r.schedule_json()).collect()
    })
}

/// A PIM schedule collection (`schedules` of the tenant): P2 required, then paged.
fn list_schedules(
    sim: &Sim,
    headers: &HeaderMap,
    raw: Option<&str>,
    accepted: &[&str],
    collection: &Collection,
    schedules: impl Fn(&crate::Tenant) -> Vec<Map<String, Value>>,
) -> Result<Json<Value>, GraphError> {
    let (_, query) = begin(sim, headers, raw, accepted, collection)?;
    if sim.read(|t| t.non_premium) {
        return Err(pim_unlicensed());
    }
    let all = sim.read(|t| schedules(t));
    let path = format!("/v1.0/{}", collection.context);
    page(sim, &query, collection, &path, all.len(), |i| all.get(i).cloned())
}

/// PIM needs Entra ID P2.
pub(crate) fn pim_unlicensed() -> GraphError {
    // [INFER] the exact refusal for an unlicensed tenant is not in the sources, so this uses
    // the documented 403 class with a descriptive code.
    GraphError::new(
        StatusCode::FORBIDDEN,
        "AadPremiumLicenseRequired",
        "The tenant needs a Microsoft Entra ID P2 or Microsoft Entra ID Governance license to use Privileged Identity Management.",
    )
}

const SCHEDULE_REQUEST_PROPERTIES: &[&str] = &[
    "id",
    "status",
    "createdDateTime",
    "completedDateTime",
    "approvalId",
    "customData",
    "action",
    "principalId",
    "roleDefinitionId",
    "directoryScopeId",
    "appScopeId",
    "isValidationOnly",
    "targetScheduleId",
    "justification",
    "createdBy",
    "scheduleInfo",
    "ticketInfo",
];
const SCHEDULE_REQUESTS: Collection = Collection {
    entity: "unifiedRoleAssignmentScheduleRequest",
    context: "roleManagement/directory/roleAssignmentScheduleRequests",
    properties: SCHEDULE_REQUEST_PROPERTIES,
    default_select: SCHEDULE_REQUEST_PROPERTIES,
    filterable: &["id", "principalId", "roleDefinitionId", "action", "status"],
    default_page: 100,
    max_page: 999,
    single_entity_only: &[],
    typed_items: false,
};

/// `GET /v1.0/roleManagement/directory/roleAssignmentScheduleRequests`
pub(crate) async fn list_role_assignment_schedule_requests(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    let accepted = &[
        "RoleAssignmentSchedule.Read.Directory",
        "RoleAssignmentSchedule.ReadWrite.Directory",
        "RoleManagement.Read.Directory",
        "RoleManagement.ReadWrite.Directory",
    ];
    let (_, query) = begin(&sim, &headers, raw.as_deref(), accepted, &SCHEDULE_REQUESTS)?;
    sim.read(|t| {
        let item = |i: usize| t.role_assignment_schedule_requests.get(i).cloned();
        let path = "/v1.0/roleManagement/directory/roleAssignmentScheduleRequests";
        page(&sim, &query, &SCHEDULE_REQUESTS, path, t.role_assignment_schedule_requests.len(), item)
    })
}

//! Graph v1.0 writes: group and application `$ref` links, app role assignments, directory
//! role assignments and PIM schedule requests, user updates, session revocation, deletion and
//! restore (graph-facts §3–§6). The rules live in [`crate::changes`]; this is the HTTP side:
//! permissions, bodies, status codes.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::error::GraphError;
use crate::identity::{SignedInUser, authorize};
use crate::journal::Relation;
use crate::state::Sim;
use crate::tenant::{Kind, RoleEligibility, User};

const GROUP_MEMBERS_WRITE: &[&str] = &["GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"];
const GROUP_OWNERS_WRITE: &[&str] = &["Group.ReadWrite.All", "Directory.ReadWrite.All"];
const APP_OWNERS_WRITE: &[&str] =
    &["Application.ReadWrite.All", "Application.ReadWrite.OwnedBy", "Directory.ReadWrite.All"];
const APP_ROLE_ASSIGNMENTS_WRITE: &[&str] = &["AppRoleAssignment.ReadWrite.All"];
const ROLES_WRITE: &[&str] = &["RoleManagement.ReadWrite.Directory"];
const ROLE_SCHEDULES_WRITE: &[&str] =
    &["RoleAssignmentSchedule.ReadWrite.Directory", "RoleManagement.ReadWrite.Directory"];
const ROLE_ELIGIBILITY_WRITE: &[&str] =
    &["RoleEligibilitySchedule.ReadWrite.Directory", "RoleManagement.ReadWrite.Directory"];
const USERS_WRITE: &[&str] = &["User.ReadWrite.All", "Directory.ReadWrite.All"];
const USERS_ENABLE: &[&str] = &["User.EnableDisableAccount.All", "User.ReadWrite.All", "Directory.ReadWrite.All"];
const USERS_PASSWORD: &[&str] =
    &["User-PasswordProfile.ReadWrite.All", "User.ReadWrite.All", "Directory.ReadWrite.All"];
const USERS_REVOKE: &[&str] = &["User.RevokeSessions.All", "User.ReadWrite.All", "Directory.ReadWrite.All"];
/// Role-assignable groups also need this to change membership (graph-facts §3).
const ROLE_ASSIGNABLE_WRITE: &[&str] = &["RoleManagement.ReadWrite.Directory"];

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// A JSON object body, or Graph's 400.
fn body_object(body: &Bytes) -> Result<Map<String, Value>, GraphError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        // [INFER] wording for an unreadable body; the 400 class is Graph's.
        _ => Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )),
    }
}

fn string_field<'a>(body: &'a Map<String, Value>, name: &str) -> Result<&'a str, GraphError> {
    body.get(name).and_then(Value::as_str).ok_or_else(|| {
        // [INFER] wording for a missing required property.
        GraphError::bad_request(format!("The request is missing the required property '{name}'."))
    })
}

/// The object id in a `$ref` body: `{"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/{id}"}`
/// (any entity-set URL whose last segment is the id).
fn reference(body: &Bytes) -> Result<String, GraphError> {
    let body = body_object(body)?;
    let url = string_field(&body, "@odata.id")?;
    let id = url.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_lowercase();
    if uuid::Uuid::parse_str(&id).is_err() {
        // [INFER] wording for a reference that names no object id.
        return Err(GraphError::bad_request(format!("Invalid object identifier '{id}'.")));
    }
    Ok(id)
}

/// Role-assignable groups need `RoleManagement.ReadWrite.Directory` on top of the group permission.
fn check_role_assignable(sim: &Sim, headers: &HeaderMap, group_id: &str) -> Result<(), GraphError> {
    if sim.read(|t| t.group(group_id).is_some_and(|g| g.is_assignable_to_role == Some(true))) {
        authorize(sim, headers, ROLE_ASSIGNABLE_WRITE)?;
    }
    Ok(())
}

fn group_permissions(relation: Relation) -> &'static [&'static str] {
    if relation == Relation::Owners { GROUP_OWNERS_WRITE } else { GROUP_MEMBERS_WRITE }
}

fn relation_of(segment: &str) -> Result<Relation, GraphError> {
    match segment {
        "members" => Ok(Relation::Members),
        "owners" => Ok(Relation::Owners),
        other => Err(GraphError::bad_request(format!("Resource not found for the segment '{other}'."))),
    }
}

/// `POST /v1.0/groups/{id}/members/$ref` and `.../owners/$ref`
pub(crate) async fn add_group_link(
    State(sim): State<Arc<Sim>>,
    Path((group, segment)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GraphError> {
    let relation = relation_of(&segment)?;
    authorize(&sim, &headers, group_permissions(relation))?;
    check_role_assignable(&sim, &headers, &group)?;
    let target = reference(&body)?;
    sim.write(|t| t.add_group_link(&group.to_lowercase(), relation, &target))?;
    Ok(no_content())
}

/// `DELETE /v1.0/groups/{id}/members/{member}/$ref` and `.../owners/{owner}/$ref`
pub(crate) async fn remove_group_link(
    State(sim): State<Arc<Sim>>,
    Path((group, segment, target)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    let relation = relation_of(&segment)?;
    authorize(&sim, &headers, group_permissions(relation))?;
    check_role_assignable(&sim, &headers, &group)?;
    sim.write(|t| t.remove_group_link(&group.to_lowercase(), relation, &target.to_lowercase()))?;
    Ok(no_content())
}

/// `DELETE /v1.0/groups/{id}/members/{member}` without `/$ref`: Graph deletes the member
/// object itself when the caller may, and refuses otherwise (graph-facts §3). Kept faithful
/// so a client that forgets `/$ref` is caught by its tests.
pub(crate) async fn delete_member_object(
    State(sim): State<Arc<Sim>>,
    Path((group, segment, target)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    relation_of(&segment)?;
    let target = target.to_lowercase();
    let kind = sim.read(|t| {
        t.group(&group.to_lowercase()).ok_or_else(|| GraphError::not_found(&group))?;
        t.locate(&target).filter(|_| t.is_live(&target)).map(|(k, _)| k).ok_or_else(|| GraphError::not_found(&target))
    })?;
    if kind != Kind::User {
        return Err(GraphError::denied());
    }
    authorize(&sim, &headers, USERS_WRITE)?;
    let now = sim.now();
    sim.write(|t| t.delete_user(&target, now))?;
    Ok(no_content())
}

/// `POST /v1.0/servicePrincipals/{id}/owners/$ref`
pub(crate) async fn add_app_owner(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GraphError> {
    authorize(&sim, &headers, APP_OWNERS_WRITE)?;
    let target = reference(&body)?;
    sim.write(|t| t.add_app_owner(&id.to_lowercase(), &target))?;
    Ok(no_content())
}

/// `DELETE /v1.0/servicePrincipals/{id}/owners/{owner}/$ref`
pub(crate) async fn remove_app_owner(
    State(sim): State<Arc<Sim>>,
    Path((id, target)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    authorize(&sim, &headers, APP_OWNERS_WRITE)?;
    sim.write(|t| t.remove_app_owner(&id.to_lowercase(), &target.to_lowercase()))?;
    Ok(no_content())
}

/// `POST /v1.0/servicePrincipals/{id}/appRoleAssignedTo` → 201 with the assignment.
pub(crate) async fn assign_app_role(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GraphError> {
    authorize(&sim, &headers, APP_ROLE_ASSIGNMENTS_WRITE)?;
    let body = body_object(&body)?;
    let principal = string_field(&body, "principalId")?.to_lowercase();
    let role = string_field(&body, "appRoleId")?.to_lowercase();
    let id = id.to_lowercase();
    if let Some(resource) = body.get("resourceId").and_then(Value::as_str)
        && !resource.eq_ignore_ascii_case(&id)
    {
        // [INFER] wording; the body's resourceId must name the service principal in the path.
        return Err(GraphError::bad_request(
            "The resourceId in the body does not match the service principal in the URL.",
        ));
    }
    let (assignment_id, now) = (sim.new_assignment_id(), sim.now());
    let assignment = sim.write(|t| t.assign_app_role(&id, &principal, &role, assignment_id, now))?;
    let mut object = assignment.to_json();
    object.insert(
        "@odata.context".into(),
        format!("{}/v1.0/$metadata#servicePrincipals('{id}')/appRoleAssignedTo/$entity", sim.graph_url).into(),
    );
    Ok((StatusCode::CREATED, Json(Value::Object(object))).into_response())
}

/// `DELETE /v1.0/servicePrincipals/{id}/appRoleAssignedTo/{assignment}`
pub(crate) async fn remove_app_role_assignment(
    State(sim): State<Arc<Sim>>,
    Path((id, assignment)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    authorize(&sim, &headers, APP_ROLE_ASSIGNMENTS_WRITE)?;
    sim.write(|t| t.remove_app_role_assignment(&id.to_lowercase(), &assignment))?;
    Ok(no_content())
}

/// `POST /v1.0/roleManagement/directory/roleAssignments` → 201.
pub(crate) async fn add_role_assignment(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GraphError> {
    authorize(&sim, &headers, ROLES_WRITE)?;
    let body = body_object(&body)?;
    let role = string_field(&body, "roleDefinitionId")?.to_lowercase();
    let principal = string_field(&body, "principalId")?.to_lowercase();
    let scope = scope_of(&body)?;
    let id = role_assignment_id(&sim);
    let assignment = sim.write(|t| t.add_role_assignment((&role, &principal, &scope), None, id))?;
    let mut object = assignment.to_json();
    object.insert(
        "@odata.context".into(),
        format!("{}/v1.0/$metadata#roleManagement/directory/roleAssignments/$entity", sim.graph_url).into(),
    );
    Ok((StatusCode::CREATED, Json(Value::Object(object))).into_response())
}

/// `DELETE /v1.0/roleManagement/directory/roleAssignments/{id}`
pub(crate) async fn remove_role_assignment(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    authorize(&sim, &headers, ROLES_WRITE)?;
    sim.write(|t| t.remove_role_assignment(&id))?;
    Ok(no_content())
}

fn role_assignment_id(sim: &Sim) -> String {
    format!("{}-1", sim.new_assignment_id())
}

/// `directoryScopeId` (or `appScopeId`, which this simulator does not model): one is required.
fn scope_of(body: &Map<String, Value>) -> Result<String, GraphError> {
    match (body.get("directoryScopeId").and_then(Value::as_str), body.get("appScopeId").and_then(Value::as_str)) {
        (Some(scope), _) => Ok(scope.to_owned()),
        // [INFER] wording; the docs require one of the two.
        (None, Some(_)) => {
            Err(GraphError::bad_request("appScopeId is not supported by this simulator; use directoryScopeId."))
        }
        (None, None) => Err(GraphError::bad_request("Either directoryScopeId or appScopeId must be specified.")),
    }
}

/// An ISO-8601 duration as PIM takes it (`PT5H`, `P1D`, `PT30M`, `P1DT2H`).
fn parse_duration(text: &str) -> Option<Duration> {
    let rest = text.strip_prefix('P')?;
    let (days, time) = rest.split_once('T').unwrap_or((rest, ""));
    let mut total = Duration::zero();
    let mut add = |part: &str, units: &[(char, i64)]| -> Option<()> {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                number.push(c);
            } else {
                let seconds = units.iter().find(|(u, _)| *u == c.to_ascii_uppercase())?.1;
                total += Duration::seconds(number.parse::<i64>().ok()? * seconds);
                number.clear();
            }
        }
        number.is_empty().then_some(())
    };
    add(days, &[('D', 86_400), ('W', 604_800)])?;
    add(time, &[('H', 3_600), ('M', 60), ('S', 1)])?;
    (total > Duration::zero()).then_some(total)
}

/// The schedule a PIM request asks for: start and optional end.
fn schedule_of(
    body: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, Option<DateTime<Utc>>), GraphError> {
    let info = body.get("scheduleInfo").and_then(Value::as_object);
    let start = info
        .and_then(|i| i.get("startDateTime"))
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|s| s.with_timezone(&Utc))
        .unwrap_or(now);
    let expiration = info.and_then(|i| i.get("expiration")).and_then(Value::as_object);
    let kind = expiration.and_then(|e| e.get("type")).and_then(Value::as_str).unwrap_or("noExpiration");
    // Requests are case-tolerant (the docs send "AfterDuration").
    let end = match kind.to_ascii_lowercase().as_str() {
        "noexpiration" | "notspecified" => None,
        "afterdatetime" => Some(
            expiration
                .and_then(|e| e.get("endDateTime"))
                .and_then(Value::as_str)
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|s| s.with_timezone(&Utc))
                .ok_or_else(|| GraphError::bad_request("expiration.endDateTime is required for afterDateTime."))?,
        ),
        "afterduration" => Some(
            start
                + expiration
                    .and_then(|e| e.get("duration"))
                    .and_then(Value::as_str)
                    .and_then(parse_duration)
                    .ok_or_else(|| GraphError::bad_request("expiration.duration must be an ISO 8601 duration."))?,
        ),
        other => return Err(GraphError::bad_request(format!("Unknown expiration type '{other}'."))),
    };
    if end.is_some_and(|e| e <= start) {
        return Err(GraphError::bad_request("The schedule ends before it starts."));
    }
    Ok((start, end))
}

fn ts(at: DateTime<Utc>) -> Value {
    at.to_rfc3339_opts(SecondsFormat::Secs, true).into()
}

/// Which PIM request collection a request goes to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Schedule {
    Assignment,
    Eligibility,
}

async fn schedule_request(
    sim: Arc<Sim>,
    headers: HeaderMap,
    body: Bytes,
    schedule: Schedule,
) -> Result<Response, GraphError> {
    let accepted = if schedule == Schedule::Assignment { ROLE_SCHEDULES_WRITE } else { ROLE_ELIGIBILITY_WRITE };
    let body = body_object(&body);
    // The self-service actions act as the signed-in user (a delegated token); the admin ones
    // as the application.
    let self_service = schedule == Schedule::Assignment
        && body
            .as_ref()
            .ok()
            .and_then(|b| b.get("action"))
            .and_then(Value::as_str)
            .is_some_and(|a| a.starts_with("self"));
    let user = if self_service {
        Some(crate::identity::authorize_user(&sim, &headers, accepted)?)
    } else {
        authorize(&sim, &headers, accepted)?;
        None
    };
    if sim.read(|t| t.non_premium) {
        return Err(crate::roles::pim_unlicensed());
    }
    let body = body?;
    let action = string_field(&body, "action")?.to_owned();
    let role = string_field(&body, "roleDefinitionId")?.to_lowercase();
    let principal = string_field(&body, "principalId")?.to_lowercase();
    let scope = scope_of(&body)?;
    let now = sim.now();
    let (start, end) = schedule_of(&body, now)?;
    let request_id = sim.new_id();
    let status = match (action.as_str(), schedule, &user) {
        ("selfActivate", Schedule::Assignment, Some(user)) => {
            let justification = body.get("justification").and_then(Value::as_str).unwrap_or_default();
            let (id, end) = (role_assignment_id(&sim), self_activation(user, &principal, justification, start, end)?);
            sim.write(|t| {
                // Only a role the user is eligible for, now, at this scope.
                let eligible = t.role_eligibilities.iter().any(|e| {
                    e.key() == (role.as_str(), principal.as_str(), scope.as_str())
                        && e.start <= now
                        && e.end.is_none_or(|e| e > now)
                });
                if !eligible {
                    return Err(policy_rules_failed("EligibilityRule"));
                }
                t.add_role_assignment((&role, &principal, &scope), Some(end), id)
            })?;
            "Granted"
        }
        // [INFER] a user deactivates only an activation (an assignment with an end), never a
        // permanent assignment an administrator gave.
        ("selfDeactivate", Schedule::Assignment, Some(user)) => {
            if principal != user.id {
                return Err(not_yours());
            }
            let activated = sim.read(|t| {
                t.role_assignments.iter().any(|a| {
                    a.role_definition_id == role
                        && a.principal_id == principal
                        && a.directory_scope_id == scope
                        && a.end.is_some()
                })
            });
            if !activated {
                return Err(GraphError::new(
                    StatusCode::BAD_REQUEST,
                    "RoleAssignmentDoesNotExist",
                    "The principal has no active (activated) assignment of this role to deactivate.",
                ));
            }
            sim.write(|t| t.remove_role_assignment_for((&role, &principal, &scope)))?;
            "Revoked"
        }
        ("adminAssign", Schedule::Assignment, None) => {
            let id = role_assignment_id(&sim);
            sim.write(|t| t.add_role_assignment((&role, &principal, &scope), end, id))?;
            "Provisioned"
        }
        ("adminAssign", Schedule::Eligibility, None) => {
            let eligibility = RoleEligibility {
                id: request_id.clone(),
                role_definition_id: role.clone(),
                principal_id: principal.clone(),
                directory_scope_id: scope.clone(),
                start,
                end,
            };
            sim.write(|t| t.add_role_eligibility(eligibility))?;
            "Provisioned"
        }
        ("adminRemove", Schedule::Assignment, None) => {
            sim.write(|t| t.remove_role_assignment_for((&role, &principal, &scope)))?;
            "Revoked"
        }
        ("adminRemove", Schedule::Eligibility, None) => {
            sim.write(|t| t.remove_role_eligibility((&role, &principal, &scope)))?;
            "Revoked"
        }
        (other, _, _) => {
            // [INFER] this simulator models the admin actions an application takes, and a
            // user's own activation and deactivation of an active assignment.
            return Err(GraphError::bad_request(format!(
                "The action '{other}' is not supported by this simulator; use adminAssign, adminRemove, \
                 selfActivate or selfDeactivate."
            )));
        }
    };
    // The request's own expiration, echoed in camelCase (graph-facts §5): a duration stays one.
    let asked = body.get("scheduleInfo").and_then(|i| i.get("expiration"));
    let duration = asked.and_then(|e| e.get("duration")).and_then(Value::as_str);
    let expiration = match (end, duration) {
        (Some(_), Some(duration))
            if asked
                .and_then(|e| e.get("type"))
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("afterDuration")) =>
        {
            json!({"type": "afterDuration", "endDateTime": null, "duration": duration})
        }
        (Some(end), _) => json!({"type": "afterDateTime", "endDateTime": ts(end), "duration": null}),
        (None, _) => json!({"type": "noExpiration", "endDateTime": null, "duration": null}),
    };
    let collection = if schedule == Schedule::Assignment {
        "roleAssignmentScheduleRequests"
    } else {
        "roleEligibilityScheduleRequests"
    };
    let request = json!({
        "@odata.context": format!("{}/v1.0/$metadata#roleManagement/directory/{collection}/$entity", sim.graph_url),
        "id": request_id,
        "status": status,
        "createdDateTime": ts(now),
        "completedDateTime": ts(now),
        "approvalId": null,
        "customData": null,
        "action": action,
        "principalId": principal,
        "roleDefinitionId": role,
        "directoryScopeId": scope,
        "appScopeId": null,
        "isValidationOnly": false,
        "targetScheduleId": request_id,
        "justification": body.get("justification").cloned().unwrap_or(Value::Null),
        "createdBy": match &user {
            Some(user) => json!({"application": null, "user": {"id": user.id}}),
            None => json!({"application": {"id": sim.client().client_id, "displayName": sim.client().display_name}, "user": null}),
        },
        "scheduleInfo": {"startDateTime": ts(start), "recurrence": null, "expiration": expiration},
        "ticketInfo": body.get("ticketInfo").cloned().unwrap_or(json!({"ticketNumber": null, "ticketSystem": null})),
    });
    if let (Value::Object(map), Schedule::Assignment) = (&request, schedule) {
        let mut stored = map.clone();
        stored.remove("@odata.context");
        sim.write(|t| t.role_assignment_schedule_requests.push(stored));
    }
    Ok((StatusCode::CREATED, Json(request)).into_response())
}

/// [INFER] code and wording: a user activates or deactivates only their own assignment.
fn not_yours() -> GraphError {
    GraphError::new(
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        "A user can only activate or deactivate their own role assignments.",
    )
}

/// PIM's checks on a self-activation (graph-facts §5), under the role settings every role has
/// by default: the user's own assignment, a sign-in that passed MFA, a justification, and an
/// end at most 8 hours after the start. The end it is given.
fn self_activation(
    user: &SignedInUser,
    principal: &str,
    justification: &str,
    start: DateTime<Utc>,
    end: Option<DateTime<Utc>>,
) -> Result<DateTime<Utc>, GraphError> {
    if principal != user.id {
        return Err(not_yours());
    }
    if !user.mfa {
        // graph-facts §5: selfActivate requires the user's session to have passed MFA. [INFER]
        // the rule's name.
        return Err(policy_rules_failed("MfaRule"));
    }
    if justification.trim().is_empty() {
        return Err(policy_rules_failed("JustificationRule"));
    }
    match end {
        // PIM's default maximum activation is 8 hours.
        Some(end) if end > start && end - start <= Duration::hours(MAX_ACTIVATION_HOURS) => Ok(end),
        _ => Err(policy_rules_failed("ExpirationRule")),
    }
}

/// PIM's refusal of a request its role settings do not allow, naming the rule: 400
/// `RoleAssignmentRequestPolicyValidationFailed`, "The following policy rules failed:
/// [\"ExpirationRule\"]" [OBS: as third-party PIM clients report it for `ExpirationRule` and
/// `EligibilityRule`].
fn policy_rules_failed(rule: &str) -> GraphError {
    GraphError::new(
        StatusCode::BAD_REQUEST,
        "RoleAssignmentRequestPolicyValidationFailed",
        format!("The following policy rules failed: [\"{rule}\"]"),
    )
}

/// PIM's default "activation maximum duration" for a directory role.
const MAX_ACTIVATION_HOURS: i64 = 8;

/// `POST /v1.0/roleManagement/directory/roleAssignmentScheduleRequests`
pub(crate) async fn role_assignment_schedule_request(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GraphError> {
    schedule_request(sim, headers, body, Schedule::Assignment).await
}

/// `POST /v1.0/roleManagement/directory/roleEligibilityScheduleRequests`
pub(crate) async fn role_eligibility_schedule_request(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GraphError> {
    schedule_request(sim, headers, body, Schedule::Eligibility).await
}

/// The user properties `PATCH /users/{id}` may set here, and their setters.
fn patch_string(user: &mut User, name: &str, value: Option<String>) -> Option<&'static str> {
    let (field, property) = match name {
        "displayName" => {
            let value = value.unwrap_or_default();
            let changed = user.display_name != value;
            user.display_name = value;
            return changed.then_some("displayName");
        }
        "givenName" => (&mut user.given_name, "givenName"),
        "surname" => (&mut user.surname, "surname"),
        "jobTitle" => (&mut user.job_title, "jobTitle"),
        "department" => (&mut user.department, "department"),
        "officeLocation" => (&mut user.office_location, "officeLocation"),
        "usageLocation" => (&mut user.usage_location, "usageLocation"),
        "employeeId" => (&mut user.employee_id, "employeeId"),
        "mail" => (&mut user.mail, "mail"),
        "mobilePhone" => (&mut user.mobile_phone, "mobilePhone"),
        _ => return None,
    };
    let changed = *field != value;
    *field = value;
    changed.then_some(property)
}

const PATCHABLE: &[&str] = &[
    "accountEnabled",
    "passwordProfile",
    "displayName",
    "givenName",
    "surname",
    "jobTitle",
    "department",
    "officeLocation",
    "usageLocation",
    "employeeId",
    "mail",
    "mobilePhone",
    "businessPhones",
];

/// Entra's password complexity: at least 8 characters and 3 of lower, upper, digit, symbol.
fn complex_enough(password: &str) -> bool {
    let classes = [
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_ascii_alphanumeric()),
    ];
    password.chars().count() >= 8 && password.chars().count() <= 256 && classes.iter().filter(|c| **c).count() >= 3
}

/// `PATCH /v1.0/users/{id}` → 204: block or unblock sign-in, reset the password, profile fields.
pub(crate) async fn patch_user(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GraphError> {
    let body = body_object(&body)?;
    for key in body.keys() {
        if !PATCHABLE.contains(&key.as_str()) {
            // [OBS] Graph's answer for an unknown property.
            return Err(GraphError::bad_request(format!(
                "Property '{key}' does not exist as a declared property or extension property."
            )));
        }
        let accepted = match key.as_str() {
            "accountEnabled" => USERS_ENABLE,
            "passwordProfile" => USERS_PASSWORD,
            _ => USERS_WRITE,
        };
        authorize(&sim, &headers, accepted)?;
    }
    let enabled = match body.get("accountEnabled") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(GraphError::bad_request("Property 'accountEnabled' must be a boolean.")),
    };
    let password = match body.get("passwordProfile") {
        None => None,
        Some(Value::Object(profile)) => {
            let force = profile.get("forceChangePasswordNextSignIn").and_then(Value::as_bool).unwrap_or(true);
            match profile.get("password").and_then(Value::as_str) {
                Some(p) if complex_enough(p) => Some(force),
                // [OBS] Graph's wording for a weak password.
                Some(_) => {
                    return Err(GraphError::bad_request(
                        "The specified password does not comply with password complexity requirements. Please provide a different password.",
                    ));
                }
                None => return Err(GraphError::bad_request("passwordProfile.password is required.")),
            }
        }
        Some(_) => return Err(GraphError::bad_request("Property 'passwordProfile' must be an object.")),
    };
    // A string collection of which Graph lets one number be set (user resource: "Only one
    // number can be set for this property"). [INFER] the wording of the refusal.
    let business_phones = match body.get("businessPhones") {
        None => None,
        Some(Value::Array(numbers)) if numbers.len() <= 1 => {
            Some(
                numbers.iter().map(|n| n.as_str().map(str::to_owned)).collect::<Option<Vec<String>>>().ok_or_else(
                    || GraphError::bad_request("Property 'businessPhones' must be a collection of strings."),
                )?,
            )
        }
        Some(Value::Array(_)) => {
            return Err(GraphError::bad_request("Only one number can be set for the property 'businessPhones'."));
        }
        Some(_) => return Err(GraphError::bad_request("Property 'businessPhones' must be a collection of strings.")),
    };
    let mut strings = Vec::new();
    for (key, value) in &body {
        if key == "accountEnabled" || key == "passwordProfile" || key == "businessPhones" {
            continue;
        }
        match value {
            Value::String(s) => strings.push((key.clone(), Some(s.clone()))),
            Value::Null if key != "displayName" => strings.push((key.clone(), None)),
            _ => return Err(GraphError::bad_request(format!("Property '{key}' must be a string."))),
        }
    }
    let now = sim.now();
    sim.write(|t| {
        t.update_user(&id, |user| {
            let mut changed = Vec::new();
            if let Some(enabled) = enabled
                && user.account_enabled != enabled
            {
                user.account_enabled = enabled;
                changed.push("accountEnabled");
            }
            if let Some(force) = password {
                // The password itself is never kept: only that it changed.
                user.password_changed = Some(now);
                user.force_change_password_next_sign_in = force;
            }
            if let Some(numbers) = business_phones
                && user.business_phones != numbers
            {
                user.business_phones = numbers;
                changed.push("businessPhones");
            }
            for (key, value) in strings {
                changed.extend(patch_string(user, &key, value));
            }
            changed
        })
    })?;
    Ok(no_content())
}

/// `POST /v1.0/users/{id}/revokeSignInSessions` → 200 `{"value": true}` (graph-facts §6: the
/// docs say 204 should come one day; today it is 200 with a boolean).
pub(crate) async fn revoke_sign_in_sessions(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    authorize(&sim, &headers, USERS_REVOKE)?;
    let now = sim.now();
    sim.write(|t| {
        t.update_user(&id, |user| {
            user.sign_in_sessions_valid_from = Some(now);
            Vec::new()
        })
    })?;
    let body = json!({"@odata.context": format!("{}/v1.0/$metadata#Edm.Boolean", sim.graph_url), "value": true});
    Ok(Json(body).into_response())
}

/// `DELETE /v1.0/users/{id}` → 204, into deleted items.
pub(crate) async fn delete_user(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    authorize(&sim, &headers, USERS_WRITE)?;
    let now = sim.now();
    sim.write(|t| t.delete_user(&id, now))?;
    Ok(no_content())
}

/// `GET /v1.0/directory/deletedItems/microsoft.graph.user`: the cast is required.
pub(crate) async fn list_deleted_users(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, GraphError> {
    let (_, query) =
        crate::graph::begin(&sim, &headers, raw.as_deref(), crate::graph::USERS_READ, &crate::graph::USERS)?;
    sim.read(|t| {
        let item = |i: usize| {
            t.users.get(i).filter(|u| u.deleted.is_some() && !u.purged).map(|u| {
                let mut object = u.to_json();
                object.insert("deletedDateTime".into(), u.deleted.map(ts).unwrap_or(Value::Null));
                object
            })
        };
        let path = "/v1.0/directory/deletedItems/microsoft.graph.user";
        crate::graph::page(&sim, &query, &crate::graph::USERS, path, t.users.len(), item)
    })
}

/// `POST /v1.0/directory/deletedItems/{id}/restore` → 200 with the restored object.
pub(crate) async fn restore(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    let id = id.to_lowercase();
    let kind = sim.read(|t| t.locate(&id).map(|(k, _)| k)).ok_or_else(|| GraphError::not_found(&id))?;
    let accepted: &[&str] = match kind {
        Kind::User => USERS_WRITE,
        Kind::Group => &["Group.ReadWrite.All", "Directory.ReadWrite.All"],
        Kind::ServicePrincipal => &["Application.ReadWrite.All", "Directory.ReadWrite.All"],
    };
    authorize(&sim, &headers, accepted)?;
    sim.write(|t| t.restore(&id))?;
    let mut object = sim.read(|t| t.directory_object(&id).map(|(_, o)| o)).ok_or_else(|| GraphError::not_found(&id))?;
    object.insert("@odata.context".into(), format!("{}/v1.0/$metadata#directoryObjects/$entity", sim.graph_url).into());
    Ok(Json(Value::Object(object)).into_response())
}

/// `DELETE /v1.0/directory/deletedItems/{id}`: purging users takes a delegated permission,
/// which an application token never carries (graph-facts §6).
pub(crate) async fn purge(
    State(sim): State<Arc<Sim>>,
    Path(_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    authorize(&sim, &headers, USERS_WRITE)?;
    Err(GraphError::denied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_durations() {
        assert_eq!(parse_duration("PT5H"), Some(Duration::hours(5)));
        assert_eq!(parse_duration("P1DT2H30M"), Some(Duration::minutes(26 * 60 + 30)));
        assert_eq!(parse_duration("PT90S"), Some(Duration::seconds(90)));
        assert_eq!(parse_duration("P2W"), Some(Duration::days(14)));
        assert_eq!(parse_duration("5H"), None);
        assert_eq!(parse_duration("PT"), None);
        assert_eq!(parse_duration("PT5X"), None);
    }

    #[test]
    fn password_complexity() {
        assert!(complex_enough("Sup3r-secret"));
        assert!(!complex_enough("short1A"));
        assert!(!complex_enough("alllowercaseletters"));
    }
}

//! The simulated tenant: directory objects as Microsoft Graph describes them.
//!
//! Objects keep Graph's property names when rendered ([`User::to_json`] and friends), so
//! `$select` and the default property sets work on exactly the names a client sends.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

/// `appOwnerOrganizationId` of Microsoft's own first-party applications.
pub const MICROSOFT_SERVICES_TENANT: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";

/// Microsoft Graph's own application id (the resource of `https://graph.microsoft.com/.default`).
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

#[derive(Debug, Clone, PartialEq)]
pub struct SignInActivity {
    pub last_sign_in: DateTime<Utc>,
    pub last_non_interactive_sign_in: DateTime<Utc>,
    pub last_successful_sign_in: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    pub display_name: String,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub user_principal_name: String,
    pub mail: Option<String>,
    /// Graph's `businessPhones`: a collection, of which Graph lets only one number be set.
    pub business_phones: Vec<String>,
    pub mobile_phone: Option<String>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub office_location: Option<String>,
    pub usage_location: Option<String>,
    pub employee_id: Option<String>,
    pub account_enabled: bool,
    /// `Member` or `Guest`.
    pub user_type: String,
    pub created: DateTime<Utc>,
    pub manager: Option<String>,
    pub sign_in_activity: Option<SignInActivity>,
    /// When the password was last reset (the password itself is never kept).
    pub password_changed: Option<DateTime<Utc>>,
    pub force_change_password_next_sign_in: bool,
    /// When `revokeSignInSessions` last ran (Graph's `signInSessionsValidFromDateTime`). Only
    /// recorded: the simulator issues no user sessions yet for it to cut off.
    pub sign_in_sessions_valid_from: Option<DateTime<Utc>>,
    /// Set while the user sits in `directory/deletedItems`, and kept once purged.
    pub deleted: Option<DateTime<Utc>>,
    /// Permanently deleted: gone from every read, kept only so positions in the vector hold.
    pub purged: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub id: String,
    pub display_name: String,
    pub description: Option<String>,
    /// `["Unified"]` for Microsoft 365, `["DynamicMembership"]` for dynamic, `[]` otherwise.
    pub group_types: Vec<String>,
    pub mail_enabled: bool,
    pub security_enabled: bool,
    pub is_assignable_to_role: Option<bool>,
    pub membership_rule: Option<String>,
    pub on_premises_sync_enabled: Option<bool>,
    pub mail: Option<String>,
    pub mail_nickname: String,
    pub created: DateTime<Utc>,
    /// Object ids of direct members (users, groups, service principals).
    pub members: Vec<String>,
    pub owners: Vec<String>,
    /// Set while a Microsoft 365 group sits in `directory/deletedItems`, and kept once purged
    /// (security groups are purged at once).
    pub deleted: Option<DateTime<Utc>>,
    pub purged: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AppRole {
    pub id: String,
    pub display_name: String,
    pub value: Option<String>,
    pub description: String,
    pub allowed_member_types: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServicePrincipal {
    pub id: String,
    pub app_id: String,
    pub display_name: String,
    /// `Application` or `ManagedIdentity`.
    pub service_principal_type: String,
    pub app_owner_organization_id: Option<String>,
    pub account_enabled: bool,
    pub app_role_assignment_required: bool,
    pub tags: Vec<String>,
    pub app_roles: Vec<AppRole>,
    pub owners: Vec<String>,
    pub created: DateTime<Utc>,
    pub deleted: Option<DateTime<Utc>>,
    pub purged: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AppRoleAssignment {
    pub id: String,
    pub app_role_id: String,
    pub principal_id: String,
    /// `User`, `Group` or `ServicePrincipal`.
    pub principal_type: String,
    pub principal_display_name: String,
    pub resource_id: String,
    pub resource_display_name: String,
    pub created: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoleDefinition {
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub is_built_in: bool,
    pub template_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoleAssignment {
    pub id: String,
    pub role_definition_id: String,
    pub principal_id: String,
    pub directory_scope_id: String,
    /// Time-bound assignments made through PIM schedule requests end here.
    pub end: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoleEligibility {
    pub id: String,
    pub role_definition_id: String,
    pub principal_id: String,
    pub directory_scope_id: String,
    pub start: DateTime<Utc>,
    /// `None`: no expiration.
    pub end: Option<DateTime<Utc>>,
}

/// A directory object's kind, for `@odata.type` and lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    User,
    Group,
    ServicePrincipal,
}

impl Kind {
    pub fn odata_type(self) -> &'static str {
        match self {
            Kind::User => "#microsoft.graph.user",
            Kind::Group => "#microsoft.graph.group",
            Kind::ServicePrincipal => "#microsoft.graph.servicePrincipal",
        }
    }
}

/// The whole simulated tenant.
#[derive(Debug, Clone, Default)]
pub struct Tenant {
    pub id: String,
    /// The initial domain, e.g. `contoso.onmicrosoft.com`.
    pub domain: String,
    pub display_name: String,
    /// A tenant without Entra ID P1/P2: `signInActivity` is refused with 403.
    pub non_premium: bool,
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    pub service_principals: Vec<ServicePrincipal>,
    pub app_role_assignments: Vec<AppRoleAssignment>,
    pub role_definitions: Vec<RoleDefinition>,
    pub role_assignments: Vec<RoleAssignment>,
    pub role_eligibilities: Vec<RoleEligibility>,
    /// Object id → (kind, index in its vector).
    pub(crate) index: HashMap<String, (Kind, usize)>,
    /// Every change since generation, for delta queries.
    pub(crate) journal: crate::journal::Journal,
    /// Directory roles activated by a past assignment (they stay listed in `directoryRoles`).
    pub(crate) activated_roles: std::collections::BTreeSet<String>,
    /// PIM role assignment schedule requests made so far, as Graph returned them.
    pub(crate) role_assignment_schedule_requests: Vec<Map<String, Value>>,
}

impl Tenant {
    /// The role assignment schedule requests made so far (PIM), oldest first, as Graph lists them.
    pub fn role_assignment_schedule_requests(&self) -> &[Map<String, Value>] {
        &self.role_assignment_schedule_requests
    }

    /// Rebuilds the id index; call after changing the object vectors.
    pub fn reindex(&mut self) {
        let mut index = HashMap::with_capacity(self.users.len() + self.groups.len() + self.service_principals.len());
        index.extend(self.users.iter().enumerate().map(|(i, o)| (o.id.clone(), (Kind::User, i))));
        index.extend(self.groups.iter().enumerate().map(|(i, o)| (o.id.clone(), (Kind::Group, i))));
        index.extend(
            self.service_principals.iter().enumerate().map(|(i, o)| (o.id.clone(), (Kind::ServicePrincipal, i))),
        );
        self.index = index;
    }

    /// Where the object with this id lives.
    pub fn locate(&self, id: &str) -> Option<(Kind, usize)> {
        self.index.get(id).copied()
    }

    /// A live (not deleted) group.
    pub fn group(&self, id: &str) -> Option<&Group> {
        match self.locate(id) {
            Some((Kind::Group, i)) => self.groups.get(i).filter(|g| g.deleted.is_none()),
            _ => None,
        }
    }

    /// A live (not soft-deleted) user by object id or user principal name.
    pub fn live_user(&self, id_or_upn: &str) -> Option<&User> {
        if let Some((Kind::User, i)) = self.locate(&id_or_upn.to_ascii_lowercase()) {
            return self.users.get(i).filter(|u| u.deleted.is_none());
        }
        self.live_users().find(|u| u.user_principal_name.eq_ignore_ascii_case(id_or_upn))
    }

    /// Whether `user` holds a role that may grant tenant-wide consent to Microsoft Graph
    /// application permissions: Global Administrator or Privileged Role Administrator.
    pub fn can_grant_consent(&self, user: &str) -> bool {
        const ROLES: &[&str] = &["62e90394-69f5-4237-9190-012177145e10", "e8611ab8-c189-46e8-94e1-60213ab1f814"];
        self.role_assignments.iter().any(|a| a.principal_id == user && ROLES.contains(&a.role_definition_id.as_str()))
    }

    /// A live (not deleted) service principal.
    pub fn service_principal(&self, id: &str) -> Option<&ServicePrincipal> {
        match self.locate(id) {
            Some((Kind::ServicePrincipal, i)) => self.service_principals.get(i).filter(|s| s.deleted.is_none()),
            _ => None,
        }
    }

    /// Whether a live directory object has this id.
    pub fn is_live(&self, id: &str) -> bool {
        self.live_kind(id).is_some()
    }

    /// The kind of a live (not soft-deleted) object, as [`Tenant::directory_object`] finds it.
    pub fn live_kind(&self, id: &str) -> Option<Kind> {
        let (kind, i) = self.locate(id)?;
        let live = match kind {
            Kind::User => self.users.get(i).is_some_and(|u| u.deleted.is_none()),
            Kind::Group => self.groups.get(i).is_some_and(|g| g.deleted.is_none()),
            Kind::ServicePrincipal => self.service_principals.get(i).is_some_and(|s| s.deleted.is_none()),
        };
        live.then_some(kind)
    }

    /// Any directory object by id, rendered with its `@odata.type` (what relationship
    /// collections such as `members` return). Soft-deleted users are not returned.
    pub fn directory_object(&self, id: &str) -> Option<(Kind, Map<String, Value>)> {
        let (kind, i) = self.locate(id)?;
        let mut object = match kind {
            Kind::User => {
                let user = self.users.get(i).filter(|u| u.deleted.is_none())?;
                user.to_json()
            }
            Kind::Group => self.groups.get(i).filter(|g| g.deleted.is_none())?.to_json(),
            Kind::ServicePrincipal => self.service_principals.get(i).filter(|s| s.deleted.is_none())?.to_json(),
        };
        object.insert("@odata.type".into(), kind.odata_type().into());
        Some((kind, object))
    }

    /// Live (not soft-deleted) users.
    pub fn live_users(&self) -> impl Iterator<Item = &User> {
        self.users.iter().filter(|u| u.deleted.is_none())
    }

    pub fn live_groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.iter().filter(|g| g.deleted.is_none())
    }

    pub fn live_service_principals(&self) -> impl Iterator<Item = &ServicePrincipal> {
        self.service_principals.iter().filter(|s| s.deleted.is_none())
    }
}

/// The default properties of a rendered directory object, by its `@odata.type`.
pub fn default_properties(object: &Map<String, Value>) -> &'static [&'static str] {
    match object.get("@odata.type").and_then(Value::as_str) {
        Some(t) if t == Kind::Group.odata_type() => Group::DEFAULT_PROPERTIES,
        Some(t) if t == Kind::ServicePrincipal.odata_type() => ServicePrincipal::DEFAULT_PROPERTIES,
        _ => User::DEFAULT_PROPERTIES,
    }
}

fn ts(at: DateTime<Utc>) -> Value {
    at.to_rfc3339_opts(SecondsFormat::Secs, true).into()
}

fn opt_ts(at: Option<DateTime<Utc>>) -> Value {
    at.map(ts).unwrap_or(Value::Null)
}

impl User {
    /// Properties returned by `GET /users` without `$select` (user-list.md).
    pub const DEFAULT_PROPERTIES: &'static [&'static str] = &[
        "businessPhones",
        "displayName",
        "givenName",
        "id",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
    ];

    /// Every property [`User::to_json`] renders: what `$select` may name on users and on
    /// users/delta. (`manager` is a relationship: `/users/{id}/manager`, or `manager@delta`.)
    pub const PROPERTIES: &'static [&'static str] = &[
        "id",
        "businessPhones",
        "displayName",
        "givenName",
        "surname",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "userPrincipalName",
        "accountEnabled",
        "userType",
        "createdDateTime",
        "department",
        "usageLocation",
        "employeeId",
        "onPremisesSyncEnabled",
        "signInActivity",
    ];

    /// Properties that only a single-user GET returns; selecting them on the collection is 501.
    pub const SINGLE_ENTITY_ONLY: &'static [&'static str] = &[
        "aboutMe",
        "birthday",
        "hireDate",
        "interests",
        "mySite",
        "pastProjects",
        "preferredName",
        "responsibilities",
        "schools",
        "skills",
        "mailboxSettings",
    ];

    /// Every property this simulator knows, with its value.
    pub fn to_json(&self) -> Map<String, Value> {
        let sign_in = self.sign_in_activity.as_ref().map(|s| {
            json!({
                "lastSignInDateTime": ts(s.last_sign_in),
                "lastSignInRequestId": request_id_for(&self.id, 1),
                "lastNonInteractiveSignInDateTime": ts(s.last_non_interactive_sign_in),
                "lastNonInteractiveSignInRequestId": request_id_for(&self.id, 2),
                "lastSuccessfulSignInDateTime": ts(s.last_successful_sign_in),
                "lastSuccessfulSignInRequestId": request_id_for(&self.id, 3),
            })
        });
        let value = json!({
            "id": self.id,
            "businessPhones": self.business_phones,
            "displayName": self.display_name,
            "givenName": self.given_name,
            "surname": self.surname,
            "jobTitle": self.job_title,
            "mail": self.mail,
            "mobilePhone": self.mobile_phone,
            "officeLocation": self.office_location,
            "preferredLanguage": null,
            "userPrincipalName": self.user_principal_name,
            "accountEnabled": self.account_enabled,
            "userType": self.user_type,
            "createdDateTime": ts(self.created),
            "department": self.department,
            "usageLocation": self.usage_location,
            "employeeId": self.employee_id,
            "onPremisesSyncEnabled": null,
            "signInActivity": sign_in,
        });
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }
}

impl Group {
    /// Graph returns every (non-expensive) group property by default.
    pub const DEFAULT_PROPERTIES: &'static [&'static str] = &[
        "id",
        "createdDateTime",
        "description",
        "displayName",
        "groupTypes",
        "isAssignableToRole",
        "mail",
        "mailEnabled",
        "mailNickname",
        "membershipRule",
        "membershipRuleProcessingState",
        "onPremisesSyncEnabled",
        "securityEnabled",
        "visibility",
    ];

    pub fn is_dynamic(&self) -> bool {
        self.group_types.iter().any(|t| t == "DynamicMembership")
    }

    /// Whether Graph's groups API may change its members and owners (graph-facts §3): not
    /// dynamic, not a distribution list or mail-enabled security group (Exchange owns those),
    /// not synchronised from on-premises.
    pub fn accepts_membership_writes(&self) -> bool {
        let unified = self.group_types.iter().any(|t| t == "Unified");
        !self.is_dynamic() && (unified || !self.mail_enabled) && self.on_premises_sync_enabled != Some(true)
    }

    pub fn to_json(&self) -> Map<String, Value> {
        let value = json!({
            "id": self.id,
            "createdDateTime": ts(self.created),
            "description": self.description,
            "displayName": self.display_name,
            "groupTypes": self.group_types,
            "isAssignableToRole": self.is_assignable_to_role,
            "mail": self.mail,
            "mailEnabled": self.mail_enabled,
            "mailNickname": self.mail_nickname,
            "membershipRule": self.membership_rule,
            "membershipRuleProcessingState": if self.is_dynamic() { Value::from("On") } else { Value::Null },
            "onPremisesSyncEnabled": self.on_premises_sync_enabled,
            "securityEnabled": self.security_enabled,
            "visibility": if self.group_types.iter().any(|t| t == "Unified") { Value::from("Private") } else { Value::Null },
        });
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }
}

impl ServicePrincipal {
    pub const DEFAULT_PROPERTIES: &'static [&'static str] = &[
        "id",
        "accountEnabled",
        "appDisplayName",
        "appId",
        "appOwnerOrganizationId",
        "appRoleAssignmentRequired",
        "appRoles",
        "createdDateTime",
        "displayName",
        "servicePrincipalType",
        "tags",
    ];

    pub fn to_json(&self) -> Map<String, Value> {
        let roles: Vec<Value> = self
            .app_roles
            .iter()
            .map(|r| {
                json!({
                    "allowedMemberTypes": r.allowed_member_types,
                    "description": r.description,
                    "displayName": r.display_name,
                    "id": r.id,
                    "isEnabled": true,
                    "origin": "Application",
                    "value": r.value,
                })
            })
            .collect();
        let value = json!({
            "id": self.id,
            "accountEnabled": self.account_enabled,
            "appDisplayName": self.display_name,
            "appId": self.app_id,
            "appOwnerOrganizationId": self.app_owner_organization_id,
            "appRoleAssignmentRequired": self.app_role_assignment_required,
            "appRoles": roles,
            "createdDateTime": ts(self.created),
            "displayName": self.display_name,
            "servicePrincipalType": self.service_principal_type,
            "tags": self.tags,
        });
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }
}

impl AppRoleAssignment {
    pub fn to_json(&self) -> Map<String, Value> {
        let value = json!({
            "id": self.id,
            "appRoleId": self.app_role_id,
            "createdDateTime": ts(self.created),
            "deletedDateTime": opt_ts(None),
            "principalDisplayName": self.principal_display_name,
            "principalId": self.principal_id,
            "principalType": self.principal_type,
            "resourceDisplayName": self.resource_display_name,
            "resourceId": self.resource_id,
        });
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }
}

impl RoleDefinition {
    pub fn to_json(&self) -> Map<String, Value> {
        object(json!({
            "id": self.id,
            "description": self.description,
            "displayName": self.display_name,
            "isBuiltIn": self.is_built_in,
            "isEnabled": true,
            "resourceScopes": ["/"],
            "templateId": self.template_id,
            "version": "1",
            "rolePermissions": [{"allowedResourceActions": [format!("microsoft.directory/{}/allProperties/read", self.template_id)], "condition": null}],
            "inheritsPermissionsFrom": [],
        }))
    }
}

/// Role, principal and scope: what PIM identifies an assignment or an eligibility by.
pub type RoleKey<'a> = (&'a str, &'a str, &'a str);

impl RoleAssignment {
    pub fn key(&self) -> RoleKey<'_> {
        (&self.role_definition_id, &self.principal_id, &self.directory_scope_id)
    }

    pub fn to_json(&self) -> Map<String, Value> {
        object(json!({
            "id": self.id,
            "roleDefinitionId": self.role_definition_id,
            "principalId": self.principal_id,
            "directoryScopeId": self.directory_scope_id,
            "appScopeId": null,
            "condition": null,
        }))
    }

    /// As a `unifiedRoleAssignmentSchedule` (PIM's view of every active assignment, with its
    /// end): `assignmentType` `Assigned`, permanent ones `noExpiration`. The simulator keeps no
    /// start for active assignments, so `startDateTime` is null.
    pub fn schedule_json(&self) -> Map<String, Value> {
        let mut schedule = schedule_json(self.key(), &self.id, None, self.end);
        schedule.insert("assignmentType".into(), "Assigned".into());
        schedule
    }
}

/// A PIM schedule (`unifiedRoleEligibilitySchedule` or `unifiedRoleAssignmentSchedule`): the
/// role, principal and scope of `key`, from `start` (unknown: null) until `end` (none:
/// `noExpiration`).
fn schedule_json(
    (role, principal, scope): RoleKey<'_>,
    id: &str,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
) -> Map<String, Value> {
    let expiration = match end {
        Some(end) => json!({"type": "afterDateTime", "endDateTime": ts(end), "duration": null}),
        None => json!({"type": "noExpiration", "endDateTime": null, "duration": null}),
    };
    let start = opt_ts(start);
    object(json!({
        "id": id,
        "principalId": principal,
        "roleDefinitionId": role,
        "directoryScopeId": scope,
        "appScopeId": null,
        "createdUsing": id,
        "createdDateTime": start,
        "modifiedDateTime": null,
        "status": "Provisioned",
        "memberType": "Direct",
        "scheduleInfo": {"startDateTime": start, "recurrence": null, "expiration": expiration},
    }))
}

impl RoleEligibility {
    pub fn key(&self) -> RoleKey<'_> {
        (&self.role_definition_id, &self.principal_id, &self.directory_scope_id)
    }

    pub fn to_json(&self) -> Map<String, Value> {
        schedule_json(self.key(), &self.id, Some(self.start), self.end)
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A stable, GUID-shaped request id derived from an object id (for sign-in request ids).
fn request_id_for(id: &str, n: u8) -> String {
    let mut bytes = [0u8; 16];
    for (i, b) in id.bytes().enumerate() {
        bytes[i % 16] ^= b.wrapping_add(n);
    }
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

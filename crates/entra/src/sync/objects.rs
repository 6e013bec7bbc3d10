//! Graph objects as the graph stores them: users, groups and service principals become
//! principals; groups, applications and directory roles become resources with entitlements.
//! Pure functions over Graph's JSON, so they are tested without a network.

use attest_connector::ObservedEntitlement;
use attest_domain::{EntitlementKey, PrincipalData, PrincipalKind, ResourceData, ResourceKind, UserType, work_email};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::settings::{FIRST_PARTY_TENANTS, Scope};

/// User properties read (`manager` is tracked as a relationship by users/delta).
pub const USER_SELECT: &str = "id,displayName,userPrincipalName,mail,jobTitle,department,officeLocation,usageLocation,\
accountEnabled,userType,createdDateTime,employeeId,onPremisesSyncEnabled,businessPhones,mobilePhone,manager";

/// Group properties read, with both relationships tracked by groups/delta.
pub const GROUP_SELECT: &str = "id,displayName,description,groupTypes,mailEnabled,securityEnabled,isAssignableToRole,\
membershipRule,onPremisesSyncEnabled,mail,members,owners";

/// Service principal properties read, with owners tracked by servicePrincipals/delta.
pub const SERVICE_PRINCIPAL_SELECT: &str = "id,appId,displayName,servicePrincipalType,appOwnerOrganizationId,\
accountEnabled,appRoleAssignmentRequired,appRoles,tags,owners";

pub fn text(object: &Value, name: &str) -> Option<String> {
    object.get(name).and_then(Value::as_str).map(str::to_owned).filter(|s| !s.is_empty())
}

fn flag(object: &Value, name: &str) -> Option<bool> {
    object.get(name).and_then(Value::as_bool)
}

pub fn timestamp(value: Option<&Value>) -> Option<DateTime<Utc>> {
    value.and_then(Value::as_str).and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&Utc))
}

/// `{"@removed": {"reason": ...}}` on a delta item: the object left the collection.
pub fn is_removed(object: &Value) -> bool {
    object.get("@removed").is_some()
}

/// A relationship's delta entries (`members@delta`...): (target id, added?).
pub fn links(object: &Value, relation: &str) -> Vec<(String, bool)> {
    object
        .get(format!("{relation}@delta"))
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| Some((e.get("id")?.as_str()?.to_owned(), e.get("@removed").is_none())))
                .collect()
        })
        .unwrap_or_default()
}

/// What a users/delta item says about the manager: `None` when it says nothing (keep what is
/// stored), `Some(None)` when the manager was removed.
pub fn manager(user: &Value) -> Option<Option<String>> {
    let entries = links(user, "manager");
    let last = entries.last()?;
    Some(last.1.then(|| last.0.clone()))
}

/// A user as a principal (the manager is merged in by the caller, who knows what is stored),
/// or `None` when the scope leaves it out.
pub fn user(user: &Value, scope: &Scope) -> Option<PrincipalData> {
    let id = text(user, "id")?;
    let user_type = match text(user, "userType").as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("guest") => Some(UserType::Guest),
        Some("member") => Some(UserType::Member),
        _ => None,
    };
    let enabled = flag(user, "accountEnabled");
    if (!scope.include_guests && user_type == Some(UserType::Guest))
        || (!scope.include_disabled_users && enabled == Some(false))
    {
        return None;
    }
    let upn = text(user, "userPrincipalName");
    let mail = text(user, "mail");
    let display_name = text(user, "displayName").or_else(|| upn.clone()).unwrap_or_else(|| id.clone());
    let mut data = PrincipalData::new(id, PrincipalKind::User, display_name);
    data.email = work_email(mail.as_deref(), upn.as_deref());
    data.user_principal_name = upn;
    data.job_title = text(user, "jobTitle");
    data.department = text(user, "department");
    data.office_location = text(user, "officeLocation");
    data.usage_location = text(user, "usageLocation");
    data.employee_id = text(user, "employeeId");
    data.account_enabled = enabled;
    data.user_type = user_type;
    data.created_in_source_at = timestamp(user.get("createdDateTime"));
    let mut attributes = Map::new();
    if let Some(mail) = mail {
        attributes.insert("mail".into(), mail.into());
    }
    if flag(user, "onPremisesSyncEnabled") == Some(true) {
        attributes.insert("onPremisesSyncEnabled".into(), true.into());
    }
    // Graph lets one business number be set; the first is the one Entra calls telephoneNumber.
    let business_phone = user.pointer("/businessPhones/0").and_then(Value::as_str).filter(|s| !s.is_empty());
    if let Some(phone) = business_phone {
        attributes.insert(PrincipalData::PHONE.into(), phone.into());
    }
    if let Some(mobile) = text(user, "mobilePhone") {
        attributes.insert(PrincipalData::MOBILE_PHONE.into(), mobile.into());
    }
    data.attributes = Value::Object(attributes);
    Some(data)
}

/// The latest sign-in of any kind (interactive or not) in a `signInActivity`.
pub fn last_sign_in(user: &Value) -> Option<DateTime<Utc>> {
    let activity = user.get("signInActivity")?;
    ["lastSignInDateTime", "lastNonInteractiveSignInDateTime", "lastSuccessfulSignInDateTime"]
        .iter()
        .filter_map(|name| timestamp(activity.get(*name)))
        .max()
}

/// A group's type flags, as stored in the resource's attributes and used by the provisioner
/// (Graph cannot change the membership of dynamic, distribution or mail-enabled security
/// groups, and on-premises groups are managed on-premises).
pub fn group_flags(group: &Value) -> Map<String, Value> {
    let types: Vec<String> = group
        .get("groupTypes")
        .and_then(Value::as_array)
        .map(|t| t.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let unified = types.iter().any(|t| t.eq_ignore_ascii_case("Unified"));
    let dynamic = types.iter().any(|t| t.eq_ignore_ascii_case("DynamicMembership"));
    let mail_enabled = flag(group, "mailEnabled").unwrap_or(false);
    let security_enabled = flag(group, "securityEnabled").unwrap_or(false);
    let flags = json!({
        "groupTypes": types,
        "microsoft365": unified,
        "security": security_enabled && !unified,
        "mailEnabled": mail_enabled,
        "mailEnabledSecurity": mail_enabled && security_enabled && !unified,
        "distribution": mail_enabled && !security_enabled && !unified,
        "dynamic": dynamic,
        "roleAssignable": flag(group, "isAssignableToRole").unwrap_or(false),
        "onPremisesSynced": flag(group, "onPremisesSyncEnabled").unwrap_or(false),
        "membershipRule": group.get("membershipRule").cloned().unwrap_or(Value::Null),
        "mail": group.get("mail").cloned().unwrap_or(Value::Null),
    });
    match flags {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// How the scope treats a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupScope {
    /// Principal and resource.
    Resource,
    /// Principal only: it can hold access, but its own members are not synced.
    PrincipalOnly,
    Excluded,
}

pub fn group_scope(group: &Value, scope: &Scope) -> GroupScope {
    let id = text(group, "id").unwrap_or_default();
    if !scope.include_on_premises_groups && flag(group, "onPremisesSyncEnabled") == Some(true) {
        GroupScope::Excluded
    } else if !scope.groups.is_empty() && !scope.groups.iter().any(|g| g.eq_ignore_ascii_case(&id)) {
        GroupScope::PrincipalOnly
    } else {
        GroupScope::Resource
    }
}

/// A group as a principal and as a resource.
pub fn group(group: &Value) -> Option<(PrincipalData, ResourceData)> {
    let id = text(group, "id")?;
    let name = text(group, "displayName").unwrap_or_else(|| id.clone());
    let flags = group_flags(group);
    let mut principal = PrincipalData::new(id.clone(), PrincipalKind::Group, name.clone());
    principal.email = text(group, "mail").map(|m| m.to_lowercase());
    principal.attributes = Value::Object(flags.clone());
    let mut resource = ResourceData::new(id, ResourceKind::Group, name);
    resource.description = text(group, "description");
    resource.attributes = Value::Object(flags);
    Some((principal, resource))
}

/// A group's two entitlements.
pub fn group_entitlements(id: &str) -> Vec<ObservedEntitlement> {
    [EntitlementKey::Member, EntitlementKey::Owner]
        .into_iter()
        .map(|key| ObservedEntitlement {
            resource_kind: ResourceKind::Group,
            resource_external_id: id.to_owned(),
            display_name: key.default_display_name(),
            key,
            description: None,
        })
        .collect()
}

/// Whether a service principal belongs to one of Microsoft's own tenants.
pub fn is_first_party(sp: &Value) -> bool {
    text(sp, "appOwnerOrganizationId")
        .is_some_and(|owner| FIRST_PARTY_TENANTS.iter().any(|t| t.eq_ignore_ascii_case(&owner)))
}

/// A resource and the entitlements it offers.
pub type Offering = (ResourceData, Vec<ObservedEntitlement>);

/// A service principal as a principal (typed by `servicePrincipalType`), plus, for an
/// enterprise application in scope, the resource and its entitlements: `owner`, default
/// access, and one per app role.
pub fn service_principal(sp: &Value, scope: &Scope) -> Option<(PrincipalData, Option<Offering>)> {
    let id = text(sp, "id")?;
    let name = text(sp, "displayName").unwrap_or_else(|| id.clone());
    let sp_type = text(sp, "servicePrincipalType").unwrap_or_else(|| "Application".into());
    let kind = if sp_type.eq_ignore_ascii_case("ManagedIdentity") {
        PrincipalKind::ManagedIdentity
    } else {
        PrincipalKind::ServicePrincipal
    };
    let first_party = is_first_party(sp);
    let mut principal = PrincipalData::new(id.clone(), kind, name.clone());
    principal.account_enabled = flag(sp, "accountEnabled");
    principal.attributes = json!({
        "appId": sp.get("appId").cloned().unwrap_or(Value::Null),
        "servicePrincipalType": sp_type,
        "appOwnerOrganizationId": sp.get("appOwnerOrganizationId").cloned().unwrap_or(Value::Null),
        "firstParty": first_party,
    });
    let is_app = sp_type.eq_ignore_ascii_case("Application");
    if !is_app || (first_party && !scope.include_first_party_apps) {
        return Some((principal, None));
    }
    let roles: Vec<&Value> =
        sp.get("appRoles").and_then(Value::as_array).map(|r| r.iter().collect()).unwrap_or_default();
    let mut resource = ResourceData::new(id.clone(), ResourceKind::Application, name);
    resource.attributes = json!({
        "appId": sp.get("appId").cloned().unwrap_or(Value::Null),
        "accountEnabled": flag(sp, "accountEnabled"),
        "appRoleAssignmentRequired": flag(sp, "appRoleAssignmentRequired"),
        "appOwnerOrganizationId": sp.get("appOwnerOrganizationId").cloned().unwrap_or(Value::Null),
        "firstParty": first_party,
        "appRoles": roles.iter().map(|r| json!({
            "id": r.get("id"), "displayName": r.get("displayName"), "value": r.get("value"),
            "allowedMemberTypes": r.get("allowedMemberTypes"), "isEnabled": r.get("isEnabled"),
        })).collect::<Vec<_>>(),
    });
    let entitlement = |key: EntitlementKey, name: Option<String>, description: Option<String>| ObservedEntitlement {
        resource_kind: ResourceKind::Application,
        resource_external_id: id.clone(),
        display_name: name.unwrap_or_else(|| key.default_display_name()),
        key,
        description,
    };
    let mut entitlements = vec![
        entitlement(EntitlementKey::Owner, None, None),
        entitlement(EntitlementKey::AppRole(EntitlementKey::DEFAULT_ACCESS_ROLE_ID.into()), None, None),
    ];
    for role in roles {
        if let Some(role_id) = text(role, "id") {
            entitlements.push(entitlement(
                EntitlementKey::AppRole(role_id),
                text(role, "displayName").or_else(|| text(role, "value")),
                text(role, "description"),
            ));
        }
    }
    Some((principal, Some((resource, entitlements))))
}

/// A role definition as a resource, with `active` and `eligible` entitlements.
pub fn role_definition(role: &Value) -> Option<Offering> {
    let id = text(role, "id")?;
    let name = text(role, "displayName").unwrap_or_else(|| id.clone());
    let mut resource = ResourceData::new(id.clone(), ResourceKind::DirectoryRole, name);
    resource.description = text(role, "description");
    resource.attributes = json!({
        "templateId": role.get("templateId").cloned().unwrap_or(Value::Null),
        "isBuiltIn": role.get("isBuiltIn").cloned().unwrap_or(Value::Null),
    });
    let entitlements = [EntitlementKey::Active, EntitlementKey::Eligible]
        .into_iter()
        .map(|key| ObservedEntitlement {
            resource_kind: ResourceKind::DirectoryRole,
            resource_external_id: id.clone(),
            display_name: key.default_display_name(),
            key,
            description: None,
        })
        .collect();
    Some((resource, entitlements))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn users_map_their_properties_and_scope() {
        let u = json!({"id": "u1", "displayName": "Ada", "userPrincipalName": "Ada@Contoso.com", "mail": null,
            "userType": "Guest", "accountEnabled": false, "createdDateTime": "2024-01-02T03:04:05Z",
            "manager@delta": [{"@odata.type": "#microsoft.graph.user", "id": "m1"}]});
        let p = user(&u, &Scope::default()).unwrap();
        assert_eq!(p.email.as_deref(), Some("ada@contoso.com"), "work email falls back to the UPN");
        assert_eq!((p.user_type, p.account_enabled), (Some(UserType::Guest), Some(false)));
        assert_eq!(manager(&u), Some(Some("m1".into())));
        assert!(user(&u, &Scope { include_guests: false, ..Scope::default() }).is_none());
        assert!(user(&u, &Scope { include_disabled_users: false, ..Scope::default() }).is_none());
        let removed = json!({"id": "u1", "manager@delta": [{"id": "m1", "@removed": {"reason": "deleted"}}]});
        assert_eq!(manager(&removed), Some(None), "a removed manager is cleared");
        assert_eq!(manager(&json!({"id": "u1"})), None, "no manager@delta: unchanged");
    }

    #[test]
    fn users_keep_their_phones() {
        let u = json!({"id": "u1", "businessPhones": ["+1 425 555 0100"], "mobilePhone": "+1 206 555 0142"});
        let p = user(&u, &Scope::default()).unwrap();
        assert_eq!(p.text_attribute(PrincipalData::PHONE), Some("+1 425 555 0100"));
        assert_eq!(p.text_attribute(PrincipalData::MOBILE_PHONE), Some("+1 206 555 0142"));
        let none = user(&json!({"id": "u2", "businessPhones": [], "mobilePhone": null}), &Scope::default()).unwrap();
        assert_eq!(
            (none.text_attribute(PrincipalData::PHONE), none.text_attribute(PrincipalData::MOBILE_PHONE)),
            (None, None)
        );
    }

    #[test]
    fn group_types_are_told_apart() {
        let flags = |g: Value| group_flags(&g);
        let m365 = flags(json!({"groupTypes": ["Unified"], "mailEnabled": true, "securityEnabled": false}));
        assert_eq!((m365["microsoft365"].as_bool(), m365["security"].as_bool()), (Some(true), Some(false)));
        let dist = flags(json!({"groupTypes": [], "mailEnabled": true, "securityEnabled": false}));
        assert_eq!(dist["distribution"].as_bool(), Some(true));
        let mes = flags(json!({"groupTypes": [], "mailEnabled": true, "securityEnabled": true}));
        assert_eq!(mes["mailEnabledSecurity"].as_bool(), Some(true));
        let dynamic = flags(json!({"groupTypes": ["DynamicMembership"], "securityEnabled": true}));
        assert_eq!(dynamic["dynamic"].as_bool(), Some(true));
    }

    #[test]
    fn first_party_apps_are_principals_but_not_resources_by_default() {
        let graph = json!({"id": "s1", "displayName": "Microsoft Graph", "servicePrincipalType": "Application",
            "appOwnerOrganizationId": "f8cdef31-a31e-4b4a-93e4-5f571e91255a", "appRoles": []});
        let (p, r) = service_principal(&graph, &Scope::default()).unwrap();
        assert_eq!((p.kind, r.is_none()), (PrincipalKind::ServicePrincipal, true));
        let scope = Scope { include_first_party_apps: true, ..Scope::default() };
        let (_, r) = service_principal(&graph, &scope).unwrap();
        assert_eq!(r.unwrap().1.len(), 2, "owner and default access");
        let mi = json!({"id": "s2", "servicePrincipalType": "ManagedIdentity"});
        let (p, r) = service_principal(&mi, &Scope::default()).unwrap();
        assert_eq!((p.kind, r.is_none()), (PrincipalKind::ManagedIdentity, true));
        let app = json!({"id": "s3", "servicePrincipalType": "Application", "appOwnerOrganizationId": "t",
            "appRoles": [{"id": "r1", "displayName": "Reader", "description": "Reads"}]});
        let (_, r) = service_principal(&app, &Scope::default()).unwrap();
        let keys: Vec<String> = r.unwrap().1.iter().map(|e| e.key.to_string()).collect();
        assert_eq!(keys, ["owner", "role:00000000-0000-0000-0000-000000000000", "role:r1"]);
    }
}

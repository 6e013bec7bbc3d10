//! PATCH on a user: each path resolves to a [`Target`], then the operation is applied to a copy
//! that replaces the user only when every operation succeeded and the result is still valid.

use serde_json::Value;

use super::{PatchOpKind, PatchOperation, PatchRequest, at_operation, targets};
use crate::json::{boolean, string};
use crate::path::AttrPath;
use crate::user::{check_multi_values, complex, manager, multi_value, multi_values};
use crate::{ENTERPRISE_USER_SCHEMA, MultiValue, Name, ScimError, USER_SCHEMA, User};

/// Core User attributes (RFC 7643 §4.1) Attest does not keep. Entra's default mapping sends
/// some (`addresses[type eq "work"].formatted`, `preferredLanguage`), so PATCHing them succeeds
/// and changes nothing, as `User::from_json` ignores them on create.
const IGNORED: [&str; 13] = [
    "nickname",
    "profileurl",
    "usertype",
    "preferredlanguage",
    "locale",
    "timezone",
    "password",
    "addresses",
    "ims",
    "photos",
    "roles",
    "entitlements",
    "x509certificates",
];

/// Sub-attributes of `name` and enterprise attributes that are likewise accepted and ignored.
const IGNORED_NAME_PARTS: [&str; 3] = ["middlename", "honorificprefix", "honorificsuffix"];
const IGNORED_ENTERPRISE: [&str; 3] = ["costcenter", "organization", "division"];

/// Applies `patch` to `user`, all or nothing: on error `user` is unchanged.
pub fn apply_user_patch(user: &mut User, patch: &PatchRequest) -> Result<(), ScimError> {
    let mut next = user.clone();
    for (index, operation) in patch.operations.iter().enumerate() {
        apply_operation(&mut next, operation).map_err(|error| at_operation(index, error))?;
    }
    next.validate()?;
    *user = next;
    Ok(())
}

fn apply_operation(user: &mut User, operation: &PatchOperation) -> Result<(), ScimError> {
    for (path, value) in targets(operation)? {
        let target = resolve(&path)?;
        apply(user, target, operation.op, value, &path)?;
    }
    Ok(())
}

/// What a path designates on a user.
enum Target {
    UserName,
    ExternalId,
    DisplayName,
    Title,
    Active,
    Name,
    NamePart(NamePart),
    /// All of `emails` or `phoneNumbers`.
    Multi(Multi),
    /// `emails[type eq "<kind>"]`.
    Entry(Multi, String),
    /// `emails[type eq "<kind>"].value`.
    EntryValue(Multi, String),
    /// The enterprise extension as a whole.
    Enterprise,
    Department,
    EmployeeNumber,
    Manager,
    /// A known attribute Attest does not keep.
    Ignored,
    /// `id`, `meta`, `groups`.
    ReadOnly,
}

#[derive(Clone, Copy)]
enum NamePart {
    Formatted,
    Given,
    Family,
}

#[derive(Clone, Copy)]
enum Multi {
    Emails,
    PhoneNumbers,
}

impl Multi {
    fn name(self) -> &'static str {
        match self {
            Self::Emails => "emails",
            Self::PhoneNumbers => "phoneNumbers",
        }
    }

    fn values(self, user: &mut User) -> &mut Vec<MultiValue> {
        match self {
            Self::Emails => &mut user.emails,
            Self::PhoneNumbers => &mut user.phone_numbers,
        }
    }
}

fn resolve(path: &AttrPath) -> Result<Target, ScimError> {
    let unknown = || ScimError::invalid_path(format!("'{path}' is not a User attribute Attest supports"));
    let lower = path.attr.as_deref().map(str::to_ascii_lowercase);
    let lower = lower.as_deref();
    let plain = path.filter.is_none() && path.sub.is_none();
    let unqualified_enterprise =
        path.schema.is_none() && matches!(lower, Some("department" | "employeenumber" | "manager"));
    if path.schema_is(ENTERPRISE_USER_SCHEMA) || unqualified_enterprise {
        return match lower {
            None => Ok(Target::Enterprise),
            Some("department") if plain => Ok(Target::Department),
            Some("employeenumber") if plain => Ok(Target::EmployeeNumber),
            Some("manager") if path.filter.is_none() && (path.sub.is_none() || path.sub_is("value")) => {
                Ok(Target::Manager)
            }
            Some(attr) if plain && IGNORED_ENTERPRISE.contains(&attr) => Ok(Target::Ignored),
            _ => Err(unknown()),
        };
    }
    let Some(attr) = lower.filter(|_| path.in_schema(USER_SCHEMA)) else { return Err(unknown()) };
    let multi = match attr {
        "emails" => Some(Multi::Emails),
        "phonenumbers" => Some(Multi::PhoneNumbers),
        _ => None,
    };
    if let Some(multi) = multi {
        let Some(filter) = &path.filter else {
            return if path.sub.is_none() { Ok(Target::Multi(multi)) } else { Err(unknown()) };
        };
        let Some(kind) = filter.eq_on("type") else {
            return Err(ScimError::invalid_path(format!(
                "'{path}': only [type eq \"…\"] selects values of '{}'",
                multi.name()
            )));
        };
        return match &path.sub {
            None => Ok(Target::Entry(multi, kind.text().to_owned())),
            Some(_) if path.sub_is("value") => Ok(Target::EntryValue(multi, kind.text().to_owned())),
            Some(_) => Err(unknown()),
        };
    }
    if IGNORED.contains(&attr) {
        return Ok(Target::Ignored);
    }
    if matches!(attr, "id" | "meta" | "groups") {
        return Ok(Target::ReadOnly);
    }
    if path.filter.is_some() {
        return Err(unknown());
    }
    let sub = path.sub.as_deref().map(str::to_ascii_lowercase);
    match (attr, sub.as_deref()) {
        ("username", None) => Ok(Target::UserName),
        ("externalid", None) => Ok(Target::ExternalId),
        ("displayname", None) => Ok(Target::DisplayName),
        ("title", None) => Ok(Target::Title),
        ("active", None) => Ok(Target::Active),
        ("name", None) => Ok(Target::Name),
        ("name", Some("formatted")) => Ok(Target::NamePart(NamePart::Formatted)),
        ("name", Some("givenname")) => Ok(Target::NamePart(NamePart::Given)),
        ("name", Some("familyname")) => Ok(Target::NamePart(NamePart::Family)),
        ("name", Some(part)) if IGNORED_NAME_PARTS.contains(&part) => Ok(Target::Ignored),
        _ => Err(unknown()),
    }
}

/// Applies one (target, value) pair. `value` is `None` for `remove` and for a `null` inside a
/// path-less value (RFC 7643 §2.5: null is unassigned). A `remove`'s value matters only for
/// `emails`/`phoneNumbers`, where it names the values to remove.
fn apply(
    user: &mut User,
    target: Target,
    op: PatchOpKind,
    value: Option<&Value>,
    path: &AttrPath,
) -> Result<(), ScimError> {
    let what = path.to_string();
    let set = if op == PatchOpKind::Remove { None } else { value };
    let text = |value: Option<&Value>| value.map(|value| string(value, &what)).transpose();
    match target {
        Target::UserName => match set {
            Some(value) => user.user_name = string(value, "userName")?,
            None => return Err(ScimError::mutability("'userName' is required and cannot be removed")),
        },
        Target::Active => match set {
            Some(value) => user.active = boolean(value, "active")?,
            None => return Err(ScimError::mutability("'active' cannot be removed; replace it with true or false")),
        },
        Target::ExternalId => user.external_id = text(set)?,
        Target::DisplayName => user.display_name = text(set)?,
        Target::Title => user.title = text(set)?,
        Target::Name => match set {
            Some(value) => user.name.merge(complex(value, "name")?)?,
            None => user.name = Name::default(),
        },
        Target::NamePart(part) => {
            let slot = match part {
                NamePart::Formatted => &mut user.name.formatted,
                NamePart::Given => &mut user.name.given_name,
                NamePart::Family => &mut user.name.family_name,
            };
            *slot = text(set)?;
        }
        Target::Multi(multi) => {
            let name = multi.name();
            let values = multi.values(user);
            match (op, value) {
                (PatchOpKind::Remove, Some(value)) => {
                    let gone = multi_values(value, name)?;
                    values.retain(|entry| !gone.iter().any(|other| other.value == entry.value));
                }
                (PatchOpKind::Replace, Some(value)) => *values = multi_values(value, name)?,
                (PatchOpKind::Add, Some(value)) => {
                    let added = multi_values(value, name)?;
                    check_multi_values(&added, name)?;
                    for entry in added {
                        merge_entry(values, entry);
                    }
                }
                (_, None) => values.clear(),
            }
        }
        Target::Entry(multi, kind) => {
            let name = multi.name();
            let values = multi.values(user);
            match set {
                None => values.retain(|entry| !entry.is_kind(&kind)),
                Some(value) => {
                    let entry = multi_value(value, name)?;
                    if entry.kind.as_deref().is_some_and(|given| !given.eq_ignore_ascii_case(&kind)) {
                        return Err(ScimError::invalid_value(format!("'{what}' cannot hold a value of another type")));
                    }
                    let primary = entry.primary;
                    set_kind(values, &kind, entry.value, Some(primary));
                }
            }
        }
        Target::EntryValue(multi, kind) => {
            let values = multi.values(user);
            match set {
                None => values.retain(|entry| !entry.is_kind(&kind)),
                Some(value) => set_kind(values, &kind, string(value, &what)?, None),
            }
        }
        Target::Enterprise => match set {
            Some(value) => user.merge_enterprise(complex(value, ENTERPRISE_USER_SCHEMA)?)?,
            None => (user.department, user.employee_number, user.manager) = (None, None, None),
        },
        Target::Department => user.department = text(set)?,
        Target::EmployeeNumber => user.employee_number = text(set)?,
        Target::Manager => user.manager = set.map(manager).transpose()?.flatten(),
        Target::Ignored => {}
        Target::ReadOnly => return Err(ScimError::mutability(format!("'{what}' is read-only"))),
    }
    Ok(())
}

/// Sets the value of the entry of type `kind`, creating it when missing (RFC 7644 §3.5.2.1:
/// add/replace through a filter that matches nothing adds the value).
fn set_kind(values: &mut Vec<MultiValue>, kind: &str, value: String, primary: Option<bool>) {
    match values.iter_mut().find(|entry| entry.is_kind(kind)) {
        Some(entry) => {
            entry.value = value;
            if let Some(primary) = primary {
                entry.primary = primary;
            }
        }
        None => values.push(MultiValue { value, kind: Some(kind.to_owned()), primary: primary.unwrap_or(false) }),
    }
    if primary == Some(true) {
        keep_one_primary(values, |entry| entry.is_kind(kind));
    }
}

/// `add` of one value: replaces the value of the same type (types are unique), or the same
/// untyped value; otherwise appends.
fn merge_entry(values: &mut Vec<MultiValue>, entry: MultiValue) {
    let same = |existing: &MultiValue| match &entry.kind {
        Some(kind) => existing.is_kind(kind),
        None => existing.kind.is_none() && existing.value == entry.value,
    };
    let primary = entry.primary;
    let kind = entry.kind.clone();
    let value = entry.value.clone();
    match values.iter_mut().find(|existing| same(existing)) {
        Some(existing) => *existing = entry,
        None => values.push(entry),
    }
    if primary {
        keep_one_primary(values, |candidate| match &kind {
            Some(kind) => candidate.is_kind(kind),
            None => candidate.kind.is_none() && candidate.value == value,
        });
    }
}

/// RFC 7644 §3.5.2: setting one value primary makes the others not primary.
fn keep_one_primary(values: &mut [MultiValue], is_new_primary: impl Fn(&MultiValue) -> bool) {
    for entry in values.iter_mut().filter(|entry| !is_new_primary(entry)) {
        entry.primary = false;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::{ScimType, parse_patch};

    fn ann() -> User {
        User::from_json(&json!({
            "userName": "ann@contoso.com",
            "externalId": "ann",
            "displayName": "Ann Lee",
            "name": {"formatted": "Ann Lee", "givenName": "Ann", "familyName": "Lee"},
            "emails": [{"primary": true, "type": "work", "value": "ann@contoso.com"}],
            "phoneNumbers": [{"type": "work", "value": "+1 425 555 0100"}],
            "title": "Engineer",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Ops", "employeeNumber": "17"}
        }))
        .unwrap()
    }

    fn patched(body: Value) -> User {
        let mut user = ann();
        apply_user_patch(&mut user, &parse_patch(&body).unwrap()).unwrap();
        user
    }

    fn refused(operations: Value) -> ScimError {
        let mut user = ann();
        let error = apply_user_patch(&mut user, &parse_patch(&json!({"Operations": operations})).unwrap()).unwrap_err();
        assert_eq!(user, ann(), "a failed PATCH changed the user");
        error
    }

    fn work(value: &str) -> MultiValue {
        MultiValue { value: value.to_owned(), kind: Some("work".to_owned()), primary: false }
    }

    #[test]
    fn entra_default_update() {
        let user = patched(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
                {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}
            ]
        }));
        assert_eq!(user.emails, vec![MultiValue { primary: true, ..work("updatedEmail@microsoft.com") }]);
        assert_eq!(user.name.family_name.as_deref(), Some("updatedFamilyName"));
        assert_eq!(user.name.given_name.as_deref(), Some("Ann"));
        assert_eq!(User { emails: ann().emails, name: ann().name, ..user }, ann());
    }

    #[test]
    fn entra_disable_in_both_modes() {
        let default = patched(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "active", "value": "False"}]
        }));
        assert!(!default.active);
        let compliant = patched(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": false}]
        }));
        assert!(!compliant.active);
        let restored = patched(json!({"Operations": [{"op": "Replace", "path": "active", "value": "True"}]}));
        assert!(restored.active);
    }

    #[test]
    fn entra_manager_example() {
        let user = patched(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Add", "path": "manager", "value": [{"$ref": "http://example.com/scim/Users/mgr-1", "value": "mgr-1"}]}]
        }));
        assert_eq!(user.manager.as_deref(), Some("mgr-1"));
        let qualified = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager";
        assert_eq!(
            patched(json!({"Operations": [{"op": "add", "path": qualified, "value": "mgr-2"}]})).manager.as_deref(),
            Some("mgr-2")
        );
        assert_eq!(
            patched(json!({"Operations": [{"op": "replace", "path": qualified, "value": {"value": "mgr-3"}}]}))
                .manager
                .as_deref(),
            Some("mgr-3")
        );
        let mut user = patched(json!({"Operations": [{"op": "add", "path": "manager", "value": "mgr-4"}]}));
        let remove = json!({"Operations": [{"op": "Remove", "path": qualified, "value": [{"value": "mgr-4"}]}]});
        apply_user_patch(&mut user, &parse_patch(&remove).unwrap()).unwrap();
        assert_eq!(user.manager, None);
    }

    #[test]
    fn entra_compliant_pathless_replace() {
        let user = patched(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "replace", "value": {
                    "displayName": "Ann Smith",
                    "name.givenName": "Annie",
                    "name.familyName": "Smith",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "42",
                    "active": false
                }},
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "ann.smith@contoso.com"}
            ]
        }));
        assert_eq!(user.display_name.as_deref(), Some("Ann Smith"));
        assert_eq!((user.name.given_name.as_deref(), user.name.family_name.as_deref()), (Some("Annie"), Some("Smith")));
        assert_eq!(user.name.formatted.as_deref(), Some("Ann Lee"));
        assert_eq!(user.employee_number.as_deref(), Some("42"));
        assert_eq!(user.department.as_deref(), Some("Ops"));
        assert!(!user.active);
        assert_eq!(user.work_email(), Some("ann.smith@contoso.com"));
    }

    #[test]
    fn entra_compliant_lowercase_add() {
        let user = patched(json!({"Operations": [{"op": "add", "path": "title", "value": "Manager"}]}));
        assert_eq!(user.title.as_deref(), Some("Manager"));
    }

    #[test]
    fn pathless_nested_objects_and_nulls() {
        let user = patched(json!({"Operations": [{"op": "Replace", "value": {
            "schemas": ["ignored"],
            "name": {"givenName": "Anna", "formatted": null},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales", "manager": {"value": "m9"}},
            "title": null
        }}]}));
        assert_eq!(
            user.name,
            Name { formatted: None, given_name: Some("Anna".to_owned()), family_name: Some("Lee".to_owned()) }
        );
        assert_eq!((user.department.as_deref(), user.manager.as_deref()), (Some("Sales"), Some("m9")));
        assert_eq!(user.employee_number.as_deref(), Some("17"));
        assert_eq!(user.title, None);
    }

    #[test]
    fn phone_numbers_by_type() {
        let user = patched(json!({"Operations": [
            {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 425 555 0199"},
            {"op": "Replace", "path": "phoneNumbers[type eq \"work\"].value", "value": "+1 425 555 0111"}
        ]}));
        assert_eq!(
            user.phone_numbers,
            vec![
                work("+1 425 555 0111"),
                MultiValue { value: "+1 425 555 0199".to_owned(), kind: Some("mobile".to_owned()), primary: false }
            ]
        );
        let user = patched(json!({"Operations": [{"op": "Remove", "path": "phoneNumbers[type eq \"work\"].value"}]}));
        assert!(user.phone_numbers.is_empty());
        let user = patched(json!({"Operations": [{"op": "Remove", "path": "phoneNumbers[type eq \"fax\"].value"}]}));
        assert_eq!(user.phone_numbers, ann().phone_numbers);
    }

    #[test]
    fn emails_as_a_whole_and_by_entry() {
        let user = patched(json!({"Operations": [{"op": "Remove", "path": "emails[type eq \"work\"]"}]}));
        assert!(user.emails.is_empty());
        let user = patched(json!({"Operations": [{"op": "Add", "path": "emails", "value": [
            {"value": "home@x", "type": "home", "primary": true},
            {"value": "ann2@contoso.com", "type": "WORK"}
        ]}]}));
        assert_eq!(
            user.emails,
            vec![
                MultiValue { value: "ann2@contoso.com".to_owned(), kind: Some("WORK".to_owned()), primary: false },
                MultiValue { value: "home@x".to_owned(), kind: Some("home".to_owned()), primary: true },
            ]
        );
        let user = patched(
            json!({"Operations": [{"op": "Replace", "path": "emails", "value": [{"value": "only@x", "type": "other"}]}]}),
        );
        assert_eq!(
            user.emails,
            vec![MultiValue { value: "only@x".to_owned(), kind: Some("other".to_owned()), primary: false }]
        );
        let user = patched(json!({"Operations": [{"op": "Remove", "path": "emails"}]}));
        assert!(user.emails.is_empty());
        let user = patched(
            json!({"Operations": [{"op": "Add", "path": "emails[type eq \"home\"]", "value": {"value": "h@x", "primary": true}}]}),
        );
        assert_eq!(
            user.emails[1],
            MultiValue { value: "h@x".to_owned(), kind: Some("home".to_owned()), primary: true }
        );
        assert!(!user.emails[0].primary, "a new primary demotes the old one");
        let user = patched(
            json!({"Operations": [{"op": "Remove", "path": "emails", "value": [{"value": "ann@contoso.com"}]}]}),
        );
        assert!(user.emails.is_empty());
    }

    #[test]
    fn enterprise_attributes_fully_qualified() {
        let urn = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        let user = patched(json!({"Operations": [
            {"op": "Replace", "path": format!("{urn}:department"), "value": "Finance"},
            {"op": "Remove", "path": format!("{urn}:employeeNumber")},
            {"op": "Add", "path": format!("{urn}:manager.value"), "value": "m1"},
            {"op": "Replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:displayName", "value": "Q"}
        ]}));
        assert_eq!((user.department.as_deref(), user.employee_number.as_deref()), (Some("Finance"), None));
        assert_eq!((user.manager.as_deref(), user.display_name.as_deref()), (Some("m1"), Some("Q")));
        let user = patched(json!({"Operations": [{"op": "Replace", "path": urn, "value": {"employeeNumber": "99"}}]}));
        assert_eq!((user.department.as_deref(), user.employee_number.as_deref()), (Some("Ops"), Some("99")));
        let user = patched(json!({"Operations": [{"op": "Remove", "path": urn.to_uppercase()}]}));
        assert_eq!((user.department, user.employee_number, user.manager), (None, None, None));
    }

    #[test]
    fn paths_and_ops_ignore_case() {
        let user = patched(json!({"Operations": [
            {"op": "REPLACE", "path": "USERNAME", "value": "ryan3"},
            {"op": "add", "path": "Name.GivenName", "value": "Ryan"},
            {"op": "Replace", "path": "EMAILS[TYPE EQ \"Work\"].VALUE", "value": "r@x"}
        ]}));
        assert_eq!((user.user_name.as_str(), user.name.given_name.as_deref()), ("ryan3", Some("Ryan")));
        assert_eq!(user.emails[0].value, "r@x");
    }

    #[test]
    fn unkept_core_attributes_are_accepted_and_ignored() {
        let user = patched(json!({"Operations": [
            {"op": "Add", "path": "addresses[type eq \"work\"].formatted", "value": "1 Main St"},
            {"op": "Replace", "path": "preferredLanguage", "value": "en-US"},
            {"op": "Replace", "path": "name.middleName", "value": "J"},
            {"op": "Replace", "value": {"nickName": "A", "roles": []}}
        ]}));
        assert_eq!(user, ann());
    }

    #[test]
    fn a_failing_patch_changes_nothing() {
        let error = refused(json!([
            {"op": "Replace", "path": "displayName", "value": "Changed"},
            {"op": "Replace", "path": "active", "value": "maybe"}
        ]));
        assert_eq!(error.detail, "Operations[1]: 'active' must be true or false, not a string");
        refused(json!([
            {"op": "Replace", "path": "title", "value": "Changed"},
            {"op": "Add", "path": "emails", "value": [{"value": "a", "type": "home"}, {"value": "b", "type": "home"}]}
        ]));
        // The final state is checked too: two primaries can only be built across operations.
        let error = refused(json!([
            {"op": "Replace", "path": "emails", "value": [{"value": "a", "type": "home", "primary": true}, {"value": "b", "type": "work"}]},
            {"op": "Replace", "path": "userName", "value": ""}
        ]));
        assert_eq!(error.detail, "'userName' must not be empty");
    }

    #[test]
    fn invalid_user_patches_are_refused() {
        let cases = [
            (json!({"op": "Remove", "path": "userName"}), ScimType::Mutability),
            (json!({"op": "Remove", "path": "active"}), ScimType::Mutability),
            (json!({"op": "Replace", "path": "id", "value": "x"}), ScimType::Mutability),
            (json!({"op": "Replace", "path": "meta.created", "value": "x"}), ScimType::Mutability),
            (json!({"op": "Replace", "value": {"userName": null}}), ScimType::Mutability),
            (json!({"op": "Replace", "path": "favouriteColour", "value": "x"}), ScimType::InvalidPath),
            (json!({"op": "Replace", "path": "name.nickname", "value": "x"}), ScimType::InvalidPath),
            (json!({"op": "Replace", "path": "emails.value", "value": "x"}), ScimType::InvalidPath),
            (json!({"op": "Replace", "path": "emails[value eq \"x\"].value", "value": "x"}), ScimType::InvalidPath),
            (json!({"op": "Replace", "path": "emails[type eq \"work\"].display", "value": "x"}), ScimType::InvalidPath),
            (json!({"op": "Replace", "path": "title[type eq \"x\"]", "value": "x"}), ScimType::InvalidPath),
            (json!({"op": "Replace", "path": "urn:example:custom:1.0:User:x", "value": "x"}), ScimType::InvalidPath),
            (
                json!({"op": "Replace", "path": "urn:ietf:params:scim:schemas:core:2.0:Group:displayName", "value": "x"}),
                ScimType::InvalidPath,
            ),
            (
                json!({"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:title", "value": "x"}),
                ScimType::InvalidPath,
            ),
            (json!({"op": "Replace", "path": "emails[type eq \"work\"", "value": "x"}), ScimType::InvalidFilter),
            (json!({"op": "Replace", "path": "emails[type eq \"work\"]]", "value": "x"}), ScimType::InvalidPath),
            (json!({"op": "Replace", "path": "", "value": "x"}), ScimType::InvalidPath),
            (json!({"op": "Replace", "path": "title", "value": 5}), ScimType::InvalidValue),
            (json!({"op": "Replace", "path": "title", "value": ["x"]}), ScimType::InvalidValue),
            (json!({"op": "Replace", "path": "userName", "value": {"a": 1}}), ScimType::InvalidValue),
            (json!({"op": "Replace", "path": "name", "value": "Ann"}), ScimType::InvalidValue),
            (json!({"op": "Replace", "path": "emails", "value": "a@x"}), ScimType::InvalidValue),
            (
                json!({"op": "Replace", "path": "emails[type eq \"work\"]", "value": {"value": "a", "type": "home"}}),
                ScimType::InvalidValue,
            ),
            (json!({"op": "Replace", "path": "manager", "value": 7}), ScimType::InvalidValue),
            (json!({"op": "Replace", "value": "not an object"}), ScimType::InvalidValue),
            (json!({"op": "Replace", "value": {"bogus": 1}}), ScimType::InvalidPath),
        ];
        for (operation, kind) in cases {
            let error = refused(json!([operation]));
            assert_eq!((error.status, error.scim_type), (400, Some(kind)), "{operation}: {}", error.detail);
        }
    }

    #[test]
    fn hostile_values_never_panic() {
        let hostile = [
            json!(null),
            json!([[[[[[[[]]]]]]]]),
            json!({"": {"": {"": null}}}),
            json!("\u{0}\u{202e}"),
            json!(1e308),
            json!(-1),
            json!([{"value": null}]),
            json!({"value": {"value": {"value": "x"}}}),
        ];
        let paths = [
            None,
            Some("emails"),
            Some("emails[type eq \"work\"]"),
            Some("emails[type eq \"work\"].value"),
            Some("manager"),
            Some("name"),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"),
            Some("active"),
        ];
        for value in &hostile {
            for path in paths {
                for op in ["add", "replace", "remove"] {
                    let body = json!({"Operations": [{"op": op, "path": path, "value": value}]});
                    if let Ok(patch) = parse_patch(&body) {
                        let mut user = ann();
                        if apply_user_patch(&mut user, &patch).is_err() {
                            assert_eq!(user, ann());
                        }
                    }
                }
            }
        }
    }
}

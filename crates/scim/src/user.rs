//! The SCIM User (RFC 7643 §4.1) with the enterprise extension (§4.3), reduced to the attributes
//! Entra's default mapping sends and Attest keeps. Values are stored exactly as sent.
//!
//! Other core attributes (`addresses`, `preferredLanguage`, `roles`, …) and unknown schemas are
//! ignored on input rather than refused: Entra's default mapping sends several of them, and a
//! refusal would fail every provisioning cycle for that user.

use serde_json::{Map, Value, json};

use crate::json::{self, MAX_MULTI_VALUES, field, opt_string, string};
use crate::{ENTERPRISE_USER_SCHEMA, Meta, ScimError, USER_SCHEMA};

/// The `name` complex attribute (only the parts Entra maps).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Name {
    /// `name.formatted`: the full name as displayed.
    pub formatted: Option<String>,
    /// `name.givenName`: Entra's `givenName`.
    pub given_name: Option<String>,
    /// `name.familyName`: Entra's `surname`.
    pub family_name: Option<String>,
}

impl Name {
    fn is_empty(&self) -> bool {
        self.formatted.is_none() && self.given_name.is_none() && self.family_name.is_none()
    }

    /// Sets the sub-attributes present in `object` (`null` clears one) and leaves the others,
    /// as PATCH on a complex attribute does (RFC 7644 §3.5.2.3).
    pub(crate) fn merge(&mut self, object: &Map<String, Value>) -> Result<(), ScimError> {
        for (key, value) in object {
            let part = match key.to_ascii_lowercase().as_str() {
                "formatted" => &mut self.formatted,
                "givenname" => &mut self.given_name,
                "familyname" => &mut self.family_name,
                // middleName, honorificPrefix, …: ignored like other attributes we do not keep.
                _ => continue,
            };
            *part = if value.is_null() { None } else { Some(string(value, &format!("name.{key}"))?) };
        }
        Ok(())
    }
}

/// One value of a multi-valued attribute such as `emails` or `phoneNumbers`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultiValue {
    /// The email address or phone number, exactly as sent.
    pub value: String,
    /// The `type` sub-attribute (`work`, `home`, `mobile`, …). Unique within the attribute.
    pub kind: Option<String>,
    /// Whether this is the primary value; at most one is.
    pub primary: bool,
}

impl MultiValue {
    /// Whether the `type` is `kind` (types compare case-insensitively: RFC 7643 makes them
    /// `caseExact: false`).
    pub fn is_kind(&self, kind: &str) -> bool {
        self.kind.as_deref().is_some_and(|own| own.eq_ignore_ascii_case(kind))
    }

    fn to_json(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("value".to_owned(), self.value.clone().into());
        if let Some(kind) = &self.kind {
            entry.insert("type".to_owned(), kind.clone().into());
        }
        entry.insert("primary".to_owned(), self.primary.into());
        Value::Object(entry)
    }
}

/// A provisioned user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    /// `userName`: required, unique (Entra maps `userPrincipalName` here).
    pub user_name: String,
    /// `externalId`: the client's id (Entra maps `mailNickname` or `objectId`).
    pub external_id: Option<String>,
    /// `displayName`.
    pub display_name: Option<String>,
    /// `name`.
    pub name: Name,
    /// `emails`.
    pub emails: Vec<MultiValue>,
    /// `phoneNumbers`.
    pub phone_numbers: Vec<MultiValue>,
    /// `title` (Entra's `jobTitle`).
    pub title: Option<String>,
    /// `active`: false when Entra soft-deletes or unassigns the user. Defaults to true.
    pub active: bool,
    /// Enterprise extension `department`.
    pub department: Option<String>,
    /// Enterprise extension `employeeNumber` (Entra's `employeeId`).
    pub employee_number: Option<String>,
    /// Enterprise extension `manager.value`: the manager's SCIM `id`.
    pub manager: Option<String>,
}

impl User {
    /// Reads the body of `POST /Users` or `PUT /Users/{id}`. `id`, `meta`, unknown attributes and
    /// unknown schemas are ignored; `null` is "not given".
    pub fn from_json(body: &Value) -> Result<User, ScimError> {
        let object = json::object(body, "a User")?;
        json::schemas(object)?;
        let user_name = match field(object, "userName")? {
            None => return Err(ScimError::invalid_value("'userName' is required")),
            Some(value) => string(value, "userName")?,
        };
        let mut user = User {
            user_name,
            external_id: opt_string(object, "externalId")?,
            display_name: opt_string(object, "displayName")?,
            title: opt_string(object, "title")?,
            active: field(object, "active")?.map(|value| json::boolean(value, "active")).transpose()?.unwrap_or(true),
            ..User::default()
        };
        if let Some(name) = field(object, "name")? {
            user.name.merge(complex(name, "name")?)?;
        }
        if let Some(emails) = field(object, "emails")? {
            user.emails = multi_values(emails, "emails")?;
        }
        if let Some(phones) = field(object, "phoneNumbers")? {
            user.phone_numbers = multi_values(phones, "phoneNumbers")?;
        }
        if let Some(enterprise) = field(object, ENTERPRISE_USER_SCHEMA)? {
            user.merge_enterprise(complex(enterprise, ENTERPRISE_USER_SCHEMA)?)?;
        }
        user.validate()?;
        Ok(user)
    }

    /// The address to reach the user at: the `work` email, else the primary one, else the first.
    pub fn work_email(&self) -> Option<&str> {
        self.emails
            .iter()
            .find(|email| email.is_kind("work"))
            .or_else(|| self.emails.iter().find(|email| email.primary))
            .or_else(|| self.emails.first())
            .map(|email| email.value.as_str())
    }

    /// The number to reach the user on: the `work` phone, else the `mobile` one, else the
    /// primary one, else the first (as Entra maps telephoneNumber and mobile).
    pub fn work_phone(&self) -> Option<&str> {
        let phones = &self.phone_numbers;
        phones
            .iter()
            .find(|phone| phone.is_kind("work"))
            .or_else(|| phones.iter().find(|phone| phone.is_kind("mobile")))
            .or_else(|| phones.iter().find(|phone| phone.primary))
            .or_else(|| phones.first())
            .map(|phone| phone.value.as_str())
    }

    /// The full resource. The enterprise schema is listed in `schemas`, and its object present,
    /// only when one of its attributes is set (`schemas` names the schemas present, RFC 7643 §3).
    pub fn to_json(&self, id: &str, meta: &Meta) -> Value {
        let mut out = Map::new();
        let mut schemas = vec![USER_SCHEMA];
        let enterprise = self.enterprise_json();
        if enterprise.is_some() {
            schemas.push(ENTERPRISE_USER_SCHEMA);
        }
        out.insert("schemas".to_owned(), json!(schemas));
        out.insert("id".to_owned(), id.into());
        insert_opt(&mut out, "externalId", &self.external_id);
        out.insert("userName".to_owned(), self.user_name.clone().into());
        insert_opt(&mut out, "displayName", &self.display_name);
        if !self.name.is_empty() {
            let mut name = Map::new();
            insert_opt(&mut name, "formatted", &self.name.formatted);
            insert_opt(&mut name, "familyName", &self.name.family_name);
            insert_opt(&mut name, "givenName", &self.name.given_name);
            out.insert("name".to_owned(), Value::Object(name));
        }
        insert_opt(&mut out, "title", &self.title);
        if !self.emails.is_empty() {
            out.insert("emails".to_owned(), self.emails.iter().map(MultiValue::to_json).collect());
        }
        if !self.phone_numbers.is_empty() {
            out.insert("phoneNumbers".to_owned(), self.phone_numbers.iter().map(MultiValue::to_json).collect());
        }
        out.insert("active".to_owned(), self.active.into());
        if let Some(enterprise) = enterprise {
            out.insert(ENTERPRISE_USER_SCHEMA.to_owned(), enterprise);
        }
        out.insert("meta".to_owned(), meta.to_json("User"));
        Value::Object(out)
    }

    fn enterprise_json(&self) -> Option<Value> {
        let mut enterprise = Map::new();
        insert_opt(&mut enterprise, "department", &self.department);
        insert_opt(&mut enterprise, "employeeNumber", &self.employee_number);
        if let Some(manager) = &self.manager {
            enterprise.insert("manager".to_owned(), json!({ "value": manager }));
        }
        (!enterprise.is_empty()).then_some(Value::Object(enterprise))
    }

    /// Sets the enterprise attributes present in `object` (`null` clears one), leaving others.
    pub(crate) fn merge_enterprise(&mut self, object: &Map<String, Value>) -> Result<(), ScimError> {
        for (key, value) in object {
            let value = (!value.is_null()).then_some(value);
            match key.to_ascii_lowercase().as_str() {
                "department" => self.department = value.map(|v| string(v, "department")).transpose()?,
                "employeenumber" => self.employee_number = value.map(|v| string(v, "employeeNumber")).transpose()?,
                "manager" => self.manager = value.map(manager).transpose()?.flatten(),
                // costCenter, organization, division: ignored like other attributes we do not keep.
                _ => {}
            }
        }
        Ok(())
    }

    /// The rules a user must keep after any change: a non-empty `userName`, and in `emails` and
    /// `phoneNumbers` at most [`MAX_MULTI_VALUES`] values, unique types, at most one primary.
    pub(crate) fn validate(&self) -> Result<(), ScimError> {
        if self.user_name.is_empty() {
            return Err(ScimError::invalid_value("'userName' must not be empty"));
        }
        check_multi_values(&self.emails, "emails")?;
        check_multi_values(&self.phone_numbers, "phoneNumbers")
    }
}

fn insert_opt(object: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(value) = value {
        object.insert(key.to_owned(), value.clone().into());
    }
}

/// A complex attribute's value: an object, or `invalidValue`.
pub(crate) fn complex<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, ScimError> {
    value
        .as_object()
        .ok_or_else(|| ScimError::invalid_value(format!("'{what}' must be an object, not {}", json::kind_of(value))))
}

/// The manager's id from any shape Entra sends: `"id"`, `{"value":"id"}`, or
/// `[{"$ref":"…","value":"id"}]`. An empty string or empty array means "no manager".
pub(crate) fn manager(value: &Value) -> Result<Option<String>, ScimError> {
    match value {
        Value::Array(items) => match items.as_slice() {
            [] => Ok(None),
            [item @ (Value::Object(_) | Value::String(_))] => manager(item),
            [_] => Err(ScimError::invalid_value("'manager' must be an id or an object")),
            _ => Err(ScimError::invalid_value("'manager' takes one value, not several")),
        },
        Value::Object(object) => match field(object, "value")? {
            Some(id @ Value::String(_)) => manager(id),
            Some(other) => {
                Err(ScimError::invalid_value(format!("'manager.value' must be a string, not {}", json::kind_of(other))))
            }
            None => Err(ScimError::invalid_value("'manager' needs a 'value' (the manager's id)")),
        },
        Value::String(_) => Ok(Some(string(value, "manager")?).filter(|id| !id.is_empty())),
        other => {
            Err(ScimError::invalid_value(format!("'manager' must be an id or an object, not {}", json::kind_of(other))))
        }
    }
}

/// Reads one `emails`/`phoneNumbers` entry.
pub(crate) fn multi_value(value: &Value, what: &str) -> Result<MultiValue, ScimError> {
    let entry = complex(value, what)?;
    let Some(text) = field(entry, "value")? else {
        return Err(ScimError::invalid_value(format!("each of '{what}' needs a 'value'")));
    };
    Ok(MultiValue {
        value: string(text, &format!("{what}.value"))?,
        kind: opt_string(entry, "type")?,
        primary: field(entry, "primary")?
            .map(|flag| json::boolean(flag, &format!("{what}.primary")))
            .transpose()?
            .unwrap_or(false),
    })
}

/// Reads a whole `emails`/`phoneNumbers` array. A single object is taken as a one-element array,
/// as PATCH `add` allows.
pub(crate) fn multi_values(value: &Value, what: &str) -> Result<Vec<MultiValue>, ScimError> {
    match value {
        Value::Array(items) if items.len() > MAX_MULTI_VALUES => {
            Err(ScimError::invalid_value(format!("'{what}' has more than {MAX_MULTI_VALUES} values")))
        }
        Value::Array(items) => items.iter().map(|item| multi_value(item, what)).collect(),
        Value::Object(_) => Ok(vec![multi_value(value, what)?]),
        other => Err(ScimError::invalid_value(format!("'{what}' must be an array, not {}", json::kind_of(other)))),
    }
}

pub(crate) fn check_multi_values(values: &[MultiValue], what: &str) -> Result<(), ScimError> {
    if values.len() > MAX_MULTI_VALUES {
        return Err(ScimError::invalid_value(format!("'{what}' has more than {MAX_MULTI_VALUES} values")));
    }
    for (index, entry) in values.iter().enumerate() {
        if let Some(kind) = &entry.kind
            && values.iter().skip(index + 1).any(|other| other.is_kind(kind))
        {
            return Err(ScimError::invalid_value(format!("'{what}' has more than one value of type '{kind}'")));
        }
    }
    if values.iter().filter(|entry| entry.primary).count() > 1 {
        return Err(ScimError::invalid_value(format!("'{what}' has more than one primary value")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::ScimType;

    fn meta() -> Meta {
        Meta {
            created: "2026-03-01T09:30:00Z".to_owned(),
            last_modified: "2026-03-02T10:00:00Z".to_owned(),
            location: "https://attest.example/scim/v2/Users/u1".to_owned(),
            version: None,
        }
    }

    fn refused(body: Value) -> ScimError {
        let error = User::from_json(&body).unwrap_err();
        assert_eq!(error.status, 400);
        error
    }

    #[test]
    fn entra_create_body() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
            "active": true,
            "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
            "roles": []
        });
        let user = User::from_json(&body).unwrap();
        assert_eq!(
            user,
            User {
                user_name: "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1".to_owned(),
                external_id: Some("0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef".to_owned()),
                name: Name {
                    formatted: Some("givenName familyName".to_owned()),
                    given_name: Some("givenName".to_owned()),
                    family_name: Some("familyName".to_owned()),
                },
                emails: vec![MultiValue {
                    value: "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com".to_owned(),
                    kind: Some("work".to_owned()),
                    primary: true,
                }],
                active: true,
                ..User::default()
            }
        );
        assert_eq!(user.work_email(), Some("Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"));
    }

    #[test]
    fn older_entra_body_with_nulls_and_string_booleans() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "jyoung@contoso.com",
            "externalId": "jyoung",
            "addresses": null,
            "title": null,
            "active": "False",
            "displayName": "Jo Young",
            "phoneNumbers": [{"type": "work", "value": "+1 425 555 0100", "primary": "True"}, {"type": "mobile", "value": "+1 425 555 0101"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "department": "Finance",
                "employeeNumber": "000123",
                "manager": {"value": "m-1", "$ref": "../Users/m-1", "displayName": "Boss"}
            }
        });
        let user = User::from_json(&body).unwrap();
        assert_eq!(user.title, None);
        assert!(!user.active);
        assert_eq!(user.phone_numbers.len(), 2);
        assert!(user.phone_numbers[0].primary);
        assert_eq!(user.phone_numbers[1].kind.as_deref(), Some("mobile"));
        assert_eq!(user.department.as_deref(), Some("Finance"));
        assert_eq!(user.employee_number.as_deref(), Some("000123"));
        assert_eq!(user.manager.as_deref(), Some("m-1"));
    }

    #[test]
    fn attribute_names_ignore_case() {
        let body = json!({
            "UserName": "a@b.c",
            "ACTIVE": false,
            "Name": {"GIVENNAME": "Ann"},
            "Emails": [{"Value": "a@b.c", "Type": "Work", "Primary": true}],
            "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER": {"Manager": "m-2", "DEPARTMENT": "Ops"}
        });
        let user = User::from_json(&body).unwrap();
        assert_eq!(user.user_name, "a@b.c");
        assert!(!user.active);
        assert_eq!(user.name.given_name.as_deref(), Some("Ann"));
        assert_eq!(user.work_email(), Some("a@b.c"));
        assert_eq!((user.manager.as_deref(), user.department.as_deref()), (Some("m-2"), Some("Ops")));
    }

    #[test]
    fn defaults_and_ignored_attributes() {
        let body = json!({
            "userName": "x", "id": "client-chosen", "meta": {"created": "never"},
            "schemas": ["urn:example:unknown"], "nickName": "ignored", "urn:example:unknown": {"a": 1}
        });
        let user = User::from_json(&body).unwrap();
        assert_eq!(user, User { user_name: "x".to_owned(), active: true, ..User::default() });
    }

    #[test]
    fn values_are_stored_exactly_as_sent() {
        let body =
            json!({"userName": "  Mixed.Case@Example.COM ", "displayName": "", "emails": [{"value": " A@B.C "}]});
        let user = User::from_json(&body).unwrap();
        assert_eq!(user.user_name, "  Mixed.Case@Example.COM ");
        assert_eq!(user.display_name.as_deref(), Some(""));
        assert_eq!(user.emails[0], MultiValue { value: " A@B.C ".to_owned(), kind: None, primary: false });
    }

    #[test]
    fn invalid_bodies_are_refused() {
        for body in [json!(null), json!([]), json!("user"), json!(42), json!(true)] {
            assert_eq!(refused(body).scim_type, Some(ScimType::InvalidSyntax));
        }
        assert_eq!(refused(json!({})).detail, "'userName' is required");
        assert_eq!(refused(json!({"userName": null})).scim_type, Some(ScimType::InvalidValue));
        assert_eq!(refused(json!({"userName": ""})).scim_type, Some(ScimType::InvalidValue));
        assert_eq!(refused(json!({"userName": 5})).detail, "'userName' must be a string, not a number");
        assert_eq!(refused(json!({"userName": "x", "schemas": "urn"})).scim_type, Some(ScimType::InvalidSyntax));
        assert_eq!(refused(json!({"userName": "x", "schemas": [1]})).scim_type, Some(ScimType::InvalidSyntax));
        assert_eq!(refused(json!({"userName": "x", "active": "yes"})).scim_type, Some(ScimType::InvalidValue));
        assert_eq!(refused(json!({"userName": "x", "name": "Ann"})).scim_type, Some(ScimType::InvalidValue));
        assert_eq!(refused(json!({"userName": "x", "emails": "a@b.c"})).scim_type, Some(ScimType::InvalidValue));
        assert_eq!(refused(json!({"userName": "x", "emails": ["a@b.c"]})).scim_type, Some(ScimType::InvalidValue));
        assert_eq!(
            refused(json!({"userName": "x", "emails": [{"type": "work"}]})).detail,
            "each of 'emails' needs a 'value'"
        );
        assert_eq!(refused(json!({"userName": "x", "title": {"a": 1}})).scim_type, Some(ScimType::InvalidValue));
        assert_eq!(
            refused(json!({"userName": "x", "userName ": "y", "USERNAME": "z"})).scim_type,
            Some(ScimType::InvalidSyntax)
        );
        let enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        assert_eq!(refused(json!({"userName": "x", enterprise: "Finance"})).scim_type, Some(ScimType::InvalidValue));
        assert_eq!(
            refused(json!({"userName": "x", enterprise: {"manager": 7}})).scim_type,
            Some(ScimType::InvalidValue)
        );
        assert_eq!(
            refused(json!({"userName": "x", enterprise: {"manager": {}}})).scim_type,
            Some(ScimType::InvalidValue)
        );
    }

    #[test]
    fn duplicate_types_and_primaries_are_refused() {
        let body = json!({"userName": "x", "emails": [{"value": "a", "type": "work"}, {"value": "b", "type": "WORK"}]});
        assert_eq!(refused(body).detail, "'emails' has more than one value of type 'work'");
        let body = json!({"userName": "x", "phoneNumbers": [{"value": "1", "type": "mobile"}, {"value": "2", "type": "mobile"}]});
        assert_eq!(refused(body).scim_type, Some(ScimType::InvalidValue));
        let body =
            json!({"userName": "x", "emails": [{"value": "a", "primary": true}, {"value": "b", "primary": "True"}]});
        assert_eq!(refused(body).detail, "'emails' has more than one primary value");
    }

    #[test]
    fn sizes_are_capped() {
        let many: Vec<Value> = (0..=MAX_MULTI_VALUES).map(|i| json!({"value": format!("{i}@x")})).collect();
        assert!(refused(json!({"userName": "x", "emails": many})).detail.contains("more than 100"));
        let long = "a".repeat(json::MAX_STRING_CHARS + 1);
        assert!(refused(json!({"userName": long})).detail.contains("longer than 1024"));
        assert!(refused(json!({"userName": "x", "name": {"givenName": long}})).detail.contains("name.givenName"));
    }

    #[test]
    fn work_email_prefers_work_then_primary_then_first() {
        let email = |value: &str, kind: Option<&str>, primary: bool| MultiValue {
            value: value.to_owned(),
            kind: kind.map(str::to_owned),
            primary,
        };
        let mut user = User { user_name: "x".to_owned(), ..User::default() };
        assert_eq!(user.work_email(), None);
        user.emails = vec![email("first", None, false), email("home", Some("home"), true)];
        assert_eq!(user.work_email(), Some("home"));
        user.emails.push(email("work", Some("Work"), false));
        assert_eq!(user.work_email(), Some("work"));
        user.emails = vec![email("first", None, false), email("second", None, false)];
        assert_eq!(user.work_email(), Some("first"));
    }

    #[test]
    fn work_phone_prefers_work_then_mobile_then_primary_then_first() {
        let phone = |value: &str, kind: Option<&str>, primary: bool| MultiValue {
            value: value.to_owned(),
            kind: kind.map(str::to_owned),
            primary,
        };
        let mut user = User { user_name: "x".to_owned(), ..User::default() };
        assert_eq!(user.work_phone(), None);
        user.phone_numbers = vec![phone("fax", Some("fax"), false), phone("home", Some("home"), true)];
        assert_eq!(user.work_phone(), Some("home"));
        user.phone_numbers.push(phone("mobile", Some("Mobile"), false));
        assert_eq!(user.work_phone(), Some("mobile"));
        user.phone_numbers.push(phone("work", Some("WORK"), false));
        assert_eq!(user.work_phone(), Some("work"));
        user.phone_numbers = vec![phone("first", None, false)];
        assert_eq!(user.work_phone(), Some("first"));
    }

    #[test]
    fn manager_shapes() {
        assert_eq!(manager(&json!("m")).unwrap().as_deref(), Some("m"));
        assert_eq!(manager(&json!("")).unwrap(), None);
        assert_eq!(manager(&json!({"value": "m"})).unwrap().as_deref(), Some("m"));
        assert_eq!(manager(&json!([{"$ref": "http://x/scim/Users/m", "value": "m"}])).unwrap().as_deref(), Some("m"));
        assert_eq!(manager(&json!([])).unwrap(), None);
        assert!(manager(&json!([{"value": "a"}, {"value": "b"}])).is_err());
        assert!(manager(&json!([[[["m"]]]])).is_err());
        assert!(manager(&json!(true)).is_err());
    }

    #[test]
    fn full_resource_json() {
        let user = User {
            user_name: "ann@contoso.com".to_owned(),
            external_id: Some("ann".to_owned()),
            display_name: Some("Ann".to_owned()),
            name: Name { formatted: None, given_name: Some("Ann".to_owned()), family_name: Some("Lee".to_owned()) },
            emails: vec![MultiValue {
                value: "ann@contoso.com".to_owned(),
                kind: Some("work".to_owned()),
                primary: true,
            }],
            phone_numbers: vec![],
            title: Some("Engineer".to_owned()),
            active: false,
            department: None,
            employee_number: None,
            manager: Some("m-1".to_owned()),
        };
        assert_eq!(
            user.to_json("u1", &Meta { version: Some("W/\"3\"".to_owned()), ..meta() }),
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                "id": "u1",
                "externalId": "ann",
                "userName": "ann@contoso.com",
                "displayName": "Ann",
                "name": {"givenName": "Ann", "familyName": "Lee"},
                "title": "Engineer",
                "emails": [{"value": "ann@contoso.com", "type": "work", "primary": true}],
                "active": false,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "m-1"}},
                "meta": {
                    "resourceType": "User",
                    "created": "2026-03-01T09:30:00Z",
                    "lastModified": "2026-03-02T10:00:00Z",
                    "location": "https://attest.example/scim/v2/Users/u1",
                    "version": "W/\"3\""
                }
            })
        );
        let minimal = User { user_name: "x".to_owned(), active: true, ..User::default() }.to_json("u2", &meta());
        assert_eq!(minimal["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:User"]));
        assert_eq!(minimal.as_object().unwrap().len(), 5, "{minimal}");
        assert!(minimal["meta"].get("version").is_none());
    }

    #[test]
    fn round_trip_through_json() {
        let body = json!({
            "userName": "a", "displayName": "A", "title": "T", "externalId": "e",
            "name": {"formatted": "F", "givenName": "G", "familyName": "L"},
            "emails": [{"value": "a@x", "type": "work", "primary": true}, {"value": "b@x", "type": "home", "primary": false}],
            "phoneNumbers": [{"value": "1", "type": "mobile", "primary": false}],
            "active": true,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "D", "employeeNumber": "7", "manager": {"value": "m"}}
        });
        let user = User::from_json(&body).unwrap();
        assert_eq!(User::from_json(&user.to_json("id", &meta())).unwrap(), user);
    }
}

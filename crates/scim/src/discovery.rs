//! Discovery endpoints (RFC 7644 §4, RFC 7643 §5–7): `/ServiceProviderConfig`, `/ResourceTypes`
//! and `/Schemas`, describing exactly what this crate supports. Entra's rules for `/Schemas`:
//! no null values, camelCase characteristic values (`readWrite`).

use serde_json::{Map, Value, json};

use crate::listing::{MAX_COUNT, list_response};
use crate::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA};

/// The schema of a ServiceProviderConfig resource.
pub const SERVICE_PROVIDER_CONFIG_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
/// The schema of a ResourceType resource.
pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
/// The schema of a Schema resource.
pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// `GET /ServiceProviderConfig`. `base_url` is the SCIM root (e.g. `https://host/scim/v2`).
pub fn service_provider_config(base_url: &str) -> Value {
    json!({
        "schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_COUNT},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a bearer token in the Authorization header (Entra's Secret Token).",
            "primary": true
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{}/ServiceProviderConfig", root(base_url))}
    })
}

/// `GET /ResourceTypes`: User and Group.
pub fn resource_types(base_url: &str) -> Value {
    let all: Vec<Value> = ["User", "Group"].iter().filter_map(|name| resource_type(base_url, name)).collect();
    let total = all.len() as u64;
    list_response(all, total, 1)
}

/// `GET /ResourceTypes/{name}`: `User` or `Group` (any case), else `None` (a 404).
pub fn resource_type(base_url: &str, name: &str) -> Option<Value> {
    let (id, endpoint, description, schema) = if name.eq_ignore_ascii_case("User") {
        ("User", "/Users", "User Account", USER_SCHEMA)
    } else if name.eq_ignore_ascii_case("Group") {
        ("Group", "/Groups", "Group", GROUP_SCHEMA)
    } else {
        return None;
    };
    let mut resource = json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": id,
        "name": id,
        "endpoint": endpoint,
        "description": description,
        "schema": schema,
        "meta": {"resourceType": "ResourceType", "location": format!("{}/ResourceTypes/{id}", root(base_url))}
    });
    if id == "User"
        && let Some(object) = resource.as_object_mut()
    {
        object.insert("schemaExtensions".to_owned(), json!([{"schema": ENTERPRISE_USER_SCHEMA, "required": false}]));
    }
    Some(resource)
}

/// `GET /Schemas`: the User, Enterprise User and Group schemas.
pub fn schemas(base_url: &str) -> Value {
    let all: Vec<Value> =
        [USER_SCHEMA, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA].iter().filter_map(|id| schema(base_url, id)).collect();
    let total = all.len() as u64;
    list_response(all, total, 1)
}

/// `GET /Schemas/{id}`: one schema by URN (any case), else `None` (a 404).
pub fn schema(base_url: &str, id: &str) -> Option<Value> {
    let (urn, name, description, attributes) = if id.eq_ignore_ascii_case(USER_SCHEMA) {
        (USER_SCHEMA, "User", "User Account", user_attributes())
    } else if id.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA) {
        (ENTERPRISE_USER_SCHEMA, "EnterpriseUser", "Enterprise User", enterprise_attributes())
    } else if id.eq_ignore_ascii_case(GROUP_SCHEMA) {
        (GROUP_SCHEMA, "Group", "Group", group_attributes())
    } else {
        return None;
    };
    Some(json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": urn,
        "name": name,
        "description": description,
        "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": format!("{}/Schemas/{urn}", root(base_url))}
    }))
}

fn root(base_url: &str) -> &str {
    base_url.trim_end_matches('/')
}

fn user_attributes() -> Vec<Value> {
    vec![
        Attribute::string("userName", "Unique identifier for the user, typically the user principal name.")
            .required()
            .unique()
            .build(),
        Attribute::string("externalId", "The client's identifier for the user.").case_exact().build(),
        Attribute::complex(
            "name",
            "The components of the user's name.",
            vec![
                Attribute::string("formatted", "The full name, formatted for display.").build(),
                Attribute::string("familyName", "The family name (surname).").build(),
                Attribute::string("givenName", "The given name.").build(),
            ],
        )
        .build(),
        Attribute::string("displayName", "The name of the user, suitable for display.").build(),
        Attribute::string("title", "The user's title, such as \"Vice President\".").build(),
        Attribute::boolean("active", "Whether the user is active; false when disabled or soft-deleted.").build(),
        Attribute::complex(
            "emails",
            "Email addresses for the user.",
            multi_value_attributes(&["work", "home", "other"]),
        )
        .multi_valued()
        .build(),
        Attribute::complex(
            "phoneNumbers",
            "Phone numbers for the user.",
            multi_value_attributes(&["work", "home", "mobile", "fax", "pager", "other"]),
        )
        .multi_valued()
        .build(),
    ]
}

fn multi_value_attributes(kinds: &[&str]) -> Vec<Value> {
    vec![
        Attribute::string("value", "The value, exactly as provisioned.").build(),
        Attribute::string("type", "A label for the value's function; unique within the attribute.")
            .canonical(kinds)
            .build(),
        Attribute::boolean("primary", "Whether this is the primary value; at most one is.").build(),
    ]
}

fn enterprise_attributes() -> Vec<Value> {
    vec![
        Attribute::string("employeeNumber", "The user's employee number.").build(),
        Attribute::string("department", "The user's department.").build(),
        Attribute::complex(
            "manager",
            "The user's manager.",
            vec![
                Attribute::string("value", "The id of the manager's User resource.").case_exact().build(),
                Attribute::reference("$ref", "The URI of the manager's User resource.", &["User"]).build(),
                Attribute::string("displayName", "The manager's display name.").read_only().build(),
            ],
        )
        .build(),
    ]
}

fn group_attributes() -> Vec<Value> {
    vec![
        Attribute::string("displayName", "A human-readable name for the group; unique.").required().unique().build(),
        Attribute::string("externalId", "The client's identifier for the group.").case_exact().build(),
        Attribute::complex(
            "members",
            "The members of the group.",
            vec![
                Attribute::string("value", "The id of the member resource.").case_exact().immutable().build(),
                Attribute::reference("$ref", "The URI of the member resource.", &["User", "Group"]).immutable().build(),
                Attribute::string("display", "The member's display name.").read_only().build(),
            ],
        )
        .multi_valued()
        .build(),
    ]
}

/// An attribute definition (RFC 7643 §7). Only the characteristics that apply to its type are
/// written, and none is ever null.
struct Attribute {
    fields: Map<String, Value>,
}

impl Attribute {
    fn new(name: &str, kind: &str, description: &str) -> Self {
        let fields = json!({
            "name": name,
            "type": kind,
            "multiValued": false,
            "description": description,
            "required": false,
            "mutability": "readWrite",
            "returned": "default",
        });
        Self { fields: fields.as_object().cloned().unwrap_or_default() }
    }

    fn string(name: &str, description: &str) -> Self {
        Self::new(name, "string", description).set("caseExact", false.into()).set("uniqueness", "none".into())
    }

    fn boolean(name: &str, description: &str) -> Self {
        Self::new(name, "boolean", description)
    }

    fn reference(name: &str, description: &str, types: &[&str]) -> Self {
        Self::new(name, "reference", description)
            .set("caseExact", true.into())
            .set("uniqueness", "none".into())
            .set("referenceTypes", json!(types))
    }

    fn complex(name: &str, description: &str, sub_attributes: Vec<Value>) -> Self {
        Self::new(name, "complex", description)
            .set("subAttributes", Value::Array(sub_attributes))
            .set("uniqueness", "none".into())
    }

    fn set(mut self, key: &str, value: Value) -> Self {
        self.fields.insert(key.to_owned(), value);
        self
    }

    fn required(self) -> Self {
        self.set("required", true.into())
    }

    fn unique(self) -> Self {
        self.set("uniqueness", "server".into())
    }

    fn case_exact(self) -> Self {
        self.set("caseExact", true.into())
    }

    fn multi_valued(self) -> Self {
        self.set("multiValued", true.into())
    }

    fn read_only(self) -> Self {
        self.set("mutability", "readOnly".into())
    }

    fn immutable(self) -> Self {
        self.set("mutability", "immutable".into())
    }

    fn canonical(self, values: &[&str]) -> Self {
        self.set("canonicalValues", json!(values))
    }

    fn build(self) -> Value {
        Value::Object(self.fields)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const BASE: &str = "https://attest.example/scim/v2/";

    /// Every value in the tree, recursively, for the "no nulls" rule.
    fn has_null(value: &Value) -> bool {
        match value {
            Value::Null => true,
            Value::Array(items) => items.iter().any(has_null),
            Value::Object(object) => object.values().any(has_null),
            _ => false,
        }
    }

    fn attribute<'a>(schema: &'a Value, name: &str) -> &'a Value {
        schema["attributes"].as_array().unwrap().iter().find(|a| a["name"] == name).unwrap()
    }

    #[test]
    fn service_provider_config_says_what_is_supported() {
        let config = service_provider_config(BASE);
        assert_eq!(config["schemas"], json!([SERVICE_PROVIDER_CONFIG_SCHEMA]));
        assert_eq!(config["patch"]["supported"], true);
        assert_eq!(config["bulk"]["supported"], false);
        assert_eq!(config["filter"], json!({"supported": true, "maxResults": 1000}));
        assert_eq!(config["changePassword"]["supported"], false);
        assert_eq!(config["sort"]["supported"], false);
        assert_eq!(config["etag"]["supported"], false);
        assert_eq!(config["authenticationSchemes"][0]["type"], "oauthbearertoken");
        assert_eq!(config["authenticationSchemes"][0]["primary"], true);
        assert_eq!(config["meta"]["location"], "https://attest.example/scim/v2/ServiceProviderConfig");
        assert_eq!(config["meta"]["resourceType"], "ServiceProviderConfig");
    }

    #[test]
    fn resource_types_list_users_first() {
        let list = resource_types(BASE);
        assert_eq!(list["totalResults"], 2);
        assert_eq!(list["Resources"][0]["endpoint"], "/Users");
        assert_eq!(list["Resources"][0]["schema"], USER_SCHEMA);
        assert_eq!(
            list["Resources"][0]["schemaExtensions"],
            json!([{"schema": ENTERPRISE_USER_SCHEMA, "required": false}])
        );
        assert_eq!(list["Resources"][1]["endpoint"], "/Groups");
        assert!(list["Resources"][1].get("schemaExtensions").is_none());
        assert_eq!(
            resource_type(BASE, "group").unwrap()["meta"]["location"],
            "https://attest.example/scim/v2/ResourceTypes/Group"
        );
        assert_eq!(resource_type(BASE, "Printer"), None);
    }

    #[test]
    fn schemas_describe_supported_attributes_without_nulls() {
        let list = schemas(BASE);
        assert_eq!(list["totalResults"], 3);
        assert!(!has_null(&list));
        let ids: Vec<&str> = list["Resources"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec![USER_SCHEMA, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA]);

        let user = schema(BASE, USER_SCHEMA).unwrap();
        assert_eq!(
            attribute(&user, "userName"),
            &json!({
                "name": "userName", "type": "string", "multiValued": false,
                "description": "Unique identifier for the user, typically the user principal name.",
                "required": true, "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "server"
            })
        );
        assert_eq!(attribute(&user, "emails")["multiValued"], true);
        assert_eq!(attribute(&user, "emails")["subAttributes"][1]["canonicalValues"], json!(["work", "home", "other"]));
        assert_eq!(attribute(&user, "active")["type"], "boolean");
        assert!(attribute(&user, "active").get("caseExact").is_none());
        assert_eq!(user["meta"]["location"], format!("https://attest.example/scim/v2/Schemas/{USER_SCHEMA}"));

        let enterprise = schema(BASE, &ENTERPRISE_USER_SCHEMA.to_uppercase()).unwrap();
        assert_eq!(attribute(&enterprise, "manager")["subAttributes"][1]["referenceTypes"], json!(["User"]));
        let group = schema(BASE, GROUP_SCHEMA).unwrap();
        assert_eq!(attribute(&group, "displayName")["required"], true);
        assert_eq!(attribute(&group, "members")["subAttributes"][2]["mutability"], "readOnly");
        assert_eq!(schema(BASE, "urn:example:nope"), None);
    }
}

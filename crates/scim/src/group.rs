//! The SCIM Group (RFC 7643 §4.2). Members are kept by the store (a group can have tens of
//! thousands), so a [`Group`] is only its own attributes and members travel separately.

use serde_json::{Map, Value, json};

use crate::json::{self, MAX_MEMBER_VALUES, field, opt_string, string};
use crate::{GROUP_SCHEMA, Meta, ScimError};

/// A provisioned group's own attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    /// `displayName`: required; Entra matches groups on it, so the store keeps it unique.
    pub display_name: String,
    /// `externalId`: Entra maps the group's `objectId` here.
    pub external_id: Option<String>,
}

/// One member as returned in a group's `members`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Member {
    /// The member's SCIM `id`.
    pub value: String,
    /// The member's display name.
    pub display: Option<String>,
    /// The member's URL (`$ref`).
    pub location: Option<String>,
}

impl Group {
    /// Reads the body of `POST /Groups` or `PUT /Groups/{id}`, with the member ids it names
    /// (Entra creates groups empty, other clients may not). `id`, `meta`, unknown attributes and
    /// unknown schemas (Entra lists a Microsoft one) are ignored.
    pub fn from_json(body: &Value) -> Result<(Group, Vec<String>), ScimError> {
        let object = json::object(body, "a Group")?;
        json::schemas(object)?;
        let display_name = match field(object, "displayName")? {
            None => return Err(ScimError::invalid_value("'displayName' is required")),
            Some(value) => string(value, "displayName")?,
        };
        if display_name.is_empty() {
            return Err(ScimError::invalid_value("'displayName' must not be empty"));
        }
        let members = field(object, "members")?.map(member_ids).transpose()?.unwrap_or_default();
        Ok((Group { display_name, external_id: opt_string(object, "externalId")? }, members))
    }

    /// The full resource. `members: None` leaves the attribute out (for
    /// `excludedAttributes=members`, which Entra always asks for); `Some(&[])` gives `[]`.
    pub fn to_json(&self, id: &str, members: Option<&[Member]>, meta: &Meta) -> Value {
        let mut out = Map::new();
        out.insert("schemas".to_owned(), json!([GROUP_SCHEMA]));
        out.insert("id".to_owned(), id.into());
        if let Some(external_id) = &self.external_id {
            out.insert("externalId".to_owned(), external_id.clone().into());
        }
        out.insert("displayName".to_owned(), self.display_name.clone().into());
        if let Some(members) = members {
            out.insert("members".to_owned(), members.iter().map(Member::to_json).collect());
        }
        out.insert("meta".to_owned(), meta.to_json("Group"));
        Value::Object(out)
    }
}

impl Member {
    fn to_json(&self) -> Value {
        let mut member = Map::new();
        member.insert("value".to_owned(), self.value.clone().into());
        if let Some(location) = &self.location {
            member.insert("$ref".to_owned(), location.clone().into());
        }
        if let Some(display) = &self.display {
            member.insert("display".to_owned(), display.clone().into());
        }
        Value::Object(member)
    }
}

/// Member ids from `[{"value": id, "$ref": …}, …]`. A single object or a bare id string is taken
/// as one member, and bare strings in the array as ids (Microsoft's reference tests PATCH
/// `"value": "string id 1"` and expect success). Ids must be non-empty strings; at most
/// [`MAX_MEMBER_VALUES`].
pub(crate) fn member_ids(value: &Value) -> Result<Vec<String>, ScimError> {
    let items = match value {
        Value::Array(items) => items.as_slice(),
        Value::Object(_) | Value::String(_) => std::slice::from_ref(value),
        other => {
            return Err(ScimError::invalid_value(format!("'members' must be an array, not {}", json::kind_of(other))));
        }
    };
    if items.len() > MAX_MEMBER_VALUES {
        return Err(ScimError::invalid_value(format!("'members' has more than {MAX_MEMBER_VALUES} values")));
    }
    items.iter().map(member_id).collect()
}

/// One member's id from `{"value": id}` or `id`.
fn member_id(item: &Value) -> Result<String, ScimError> {
    let value = match item {
        Value::Object(entry) => match field(entry, "value")? {
            Some(value) => value,
            None => return Err(ScimError::invalid_value("each member needs a 'value' (the member's id)")),
        },
        Value::String(_) => item,
        other => {
            return Err(ScimError::invalid_value(format!(
                "each member must be an object, not {}",
                json::kind_of(other)
            )));
        }
    };
    checked_member_id(string(value, "members.value")?)
}

/// A member id as given, refused when empty.
pub(crate) fn checked_member_id(id: String) -> Result<String, ScimError> {
    if id.is_empty() {
        return Err(ScimError::invalid_value("a member id must not be empty"));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::ScimType;

    #[test]
    fn entra_create_body() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "displayName",
            "meta": {"resourceType": "Group"}
        });
        let (group, members) = Group::from_json(&body).unwrap();
        assert_eq!(
            group,
            Group {
                display_name: "displayName".to_owned(),
                external_id: Some("8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159".to_owned())
            }
        );
        assert!(members.is_empty());
    }

    #[test]
    fn members_on_create() {
        let body = json!({"DisplayName": "Sales", "Members": [{"value": "u1", "$ref": null}, {"value": "u2", "display": "Bo"}]});
        let (group, members) = Group::from_json(&body).unwrap();
        assert_eq!(group.display_name, "Sales");
        assert_eq!(members, vec!["u1".to_owned(), "u2".to_owned()]);
        let (_, members) = Group::from_json(&json!({"displayName": "x", "members": ["u3", {"value": "u4"}]})).unwrap();
        assert_eq!(members, vec!["u3".to_owned(), "u4".to_owned()]);
    }

    #[test]
    fn invalid_bodies_are_refused() {
        let cases = [
            (json!([]), ScimType::InvalidSyntax),
            (json!({}), ScimType::InvalidValue),
            (json!({"displayName": ""}), ScimType::InvalidValue),
            (json!({"displayName": ["x"]}), ScimType::InvalidValue),
            (json!({"displayName": "x", "members": 5}), ScimType::InvalidValue),
            (json!({"displayName": "x", "members": [true]}), ScimType::InvalidValue),
            (json!({"displayName": "x", "members": [{"value": ""}]}), ScimType::InvalidValue),
            (json!({"displayName": "x", "members": [{"display": "u1"}]}), ScimType::InvalidValue),
            (json!({"displayName": "x", "externalId": 5}), ScimType::InvalidValue),
            (json!({"displayName": "x", "schemas": {}}), ScimType::InvalidSyntax),
        ];
        for (body, kind) in cases {
            let error = Group::from_json(&body).unwrap_err();
            assert_eq!((error.status, error.scim_type), (400, Some(kind)), "{body}");
        }
        let many: Vec<Value> = (0..=MAX_MEMBER_VALUES).map(|i| json!({"value": i.to_string()})).collect();
        assert!(Group::from_json(&json!({"displayName": "x", "members": many})).is_err());
    }

    #[test]
    fn resource_json_with_and_without_members() {
        let group = Group { display_name: "Sales".to_owned(), external_id: None };
        let meta = Meta {
            created: "2026-03-01T09:30:00Z".to_owned(),
            last_modified: "2026-03-01T09:30:00Z".to_owned(),
            location: "https://attest.example/scim/v2/Groups/g1".to_owned(),
            version: None,
        };
        let members = [Member {
            value: "u1".to_owned(),
            display: Some("Ann".to_owned()),
            location: Some("https://attest.example/scim/v2/Users/u1".to_owned()),
        }];
        assert_eq!(
            group.to_json("g1", Some(&members), &meta),
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "id": "g1",
                "displayName": "Sales",
                "members": [{"value": "u1", "display": "Ann", "$ref": "https://attest.example/scim/v2/Users/u1"}],
                "meta": {
                    "resourceType": "Group",
                    "created": "2026-03-01T09:30:00Z",
                    "lastModified": "2026-03-01T09:30:00Z",
                    "location": "https://attest.example/scim/v2/Groups/g1"
                }
            })
        );
        assert!(group.to_json("g1", None, &meta).get("members").is_none());
        assert_eq!(group.to_json("g1", Some(&[]), &meta)["members"], json!([]));
    }
}

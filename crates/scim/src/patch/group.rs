//! PATCH on a group, turned into [`GroupChange`]s for the store to apply in one transaction.
//! Members are not loaded to apply a PATCH: a group may have tens of thousands, and Entra sends
//! deltas (add these, remove those).

use serde_json::Value;

use super::{PatchOpKind, PatchOperation, PatchRequest, at_operation, targets};
use crate::group::{checked_member_id, member_ids};
use crate::json::{MAX_MEMBER_VALUES, string};
use crate::path::AttrPath;
use crate::{GROUP_SCHEMA, ScimError};

/// One change a group PATCH asks for, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    /// Rename the group (the store checks `displayName` stays unique).
    SetDisplayName(String),
    /// Set or clear `externalId`.
    SetExternalId(Option<String>),
    /// Add these member ids (already-present members are not an error).
    AddMembers(Vec<String>),
    /// Remove these member ids (absent members are not an error).
    RemoveMembers(Vec<String>),
    /// Make these ids the whole member list.
    ReplaceMembers(Vec<String>),
    /// Remove every member.
    RemoveAllMembers,
}

/// The changes `patch` asks of a group, all validated: on error nothing should be applied.
pub fn group_changes(patch: &PatchRequest) -> Result<Vec<GroupChange>, ScimError> {
    let mut changes = Vec::new();
    for (index, operation) in patch.operations.iter().enumerate() {
        operation_changes(operation, &mut changes).map_err(|error| at_operation(index, error))?;
    }
    let member_values: usize = changes
        .iter()
        .map(|change| match change {
            GroupChange::AddMembers(ids) | GroupChange::RemoveMembers(ids) | GroupChange::ReplaceMembers(ids) => {
                ids.len()
            }
            _ => 0,
        })
        .sum();
    if member_values > MAX_MEMBER_VALUES {
        return Err(ScimError::invalid_value(format!("a PATCH may name at most {MAX_MEMBER_VALUES} members")));
    }
    Ok(changes)
}

fn operation_changes(operation: &PatchOperation, changes: &mut Vec<GroupChange>) -> Result<(), ScimError> {
    for (path, value) in targets(operation)? {
        let target = resolve(&path)?;
        changes.push(change(target, operation.op, value, &path)?);
    }
    Ok(())
}

/// What a path designates on a group.
enum Target {
    DisplayName,
    ExternalId,
    Members,
    /// `members[value eq "<id>"]`.
    Member(String),
    /// `id`, `meta`.
    ReadOnly,
}

fn resolve(path: &AttrPath) -> Result<Target, ScimError> {
    let unknown = || ScimError::invalid_path(format!("'{path}' is not a Group attribute Attest supports"));
    if !path.in_schema(GROUP_SCHEMA) {
        return Err(unknown());
    }
    if path.is_plain("displayName") {
        return Ok(Target::DisplayName);
    }
    if path.is_plain("externalId") {
        return Ok(Target::ExternalId);
    }
    if path.attr_is("id") || path.attr_is("meta") {
        return Ok(Target::ReadOnly);
    }
    if !path.attr_is("members") || path.sub.is_some() {
        return Err(unknown());
    }
    let Some(filter) = &path.filter else { return Ok(Target::Members) };
    match filter.eq_on("value") {
        Some(id) => Ok(Target::Member(checked_member_id(id.text().to_owned())?)),
        None => Err(ScimError::invalid_path(format!("'{path}': only [value eq \"…\"] selects members"))),
    }
}

/// The change one (target, value) pair asks for. `value` is `None` for a value-less `remove` and
/// for a `null` inside a path-less value.
fn change(target: Target, op: PatchOpKind, value: Option<&Value>, path: &AttrPath) -> Result<GroupChange, ScimError> {
    let set = if op == PatchOpKind::Remove { None } else { value };
    match target {
        Target::DisplayName => match set {
            Some(value) => {
                let name = string(value, "displayName")?;
                if name.is_empty() {
                    return Err(ScimError::invalid_value("'displayName' must not be empty"));
                }
                Ok(GroupChange::SetDisplayName(name))
            }
            None => Err(ScimError::mutability("'displayName' is required and cannot be removed")),
        },
        Target::ExternalId => Ok(GroupChange::SetExternalId(set.map(|value| string(value, "externalId")).transpose()?)),
        Target::Members => match (op, value) {
            (PatchOpKind::Add, Some(value)) => Ok(GroupChange::AddMembers(member_ids(value)?)),
            (PatchOpKind::Replace, Some(value)) => Ok(GroupChange::ReplaceMembers(member_ids(value)?)),
            (PatchOpKind::Remove, Some(value)) => Ok(GroupChange::RemoveMembers(member_ids(value)?)),
            (_, None) => Ok(GroupChange::RemoveAllMembers),
        },
        Target::Member(id) if op == PatchOpKind::Remove => Ok(GroupChange::RemoveMembers(vec![id])),
        Target::Member(_) => {
            Err(ScimError::invalid_path(format!("'{path}' can only be removed; add members with the path 'members'")))
        }
        Target::ReadOnly => Err(ScimError::mutability(format!("'{path}' is read-only"))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::{ScimType, parse_patch};

    fn changes(body: Value) -> Vec<GroupChange> {
        group_changes(&parse_patch(&body).unwrap()).unwrap()
    }

    fn refused(body: Value) -> ScimError {
        group_changes(&parse_patch(&body).unwrap()).unwrap_err()
    }

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn entra_default_job_requests() {
        let rename = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "displayName", "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}]
        });
        assert_eq!(
            changes(rename),
            vec![GroupChange::SetDisplayName("1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName".to_owned())]
        );
        let add = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "f648f8d5ea4e4cd38e9c"}]}]
        });
        assert_eq!(changes(add), vec![GroupChange::AddMembers(ids(&["f648f8d5ea4e4cd38e9c"]))]);
        let remove = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": "f648f8d5ea4e4cd38e9c"}]}]
        });
        assert_eq!(changes(remove), vec![GroupChange::RemoveMembers(ids(&["f648f8d5ea4e4cd38e9c"]))]);
        let remove_one = json!({"Operations": [{"op": "Remove", "path": "members", "value": [{"value": "u1091"}]}]});
        assert_eq!(changes(remove_one), vec![GroupChange::RemoveMembers(ids(&["u1091"]))]);
    }

    #[test]
    fn entra_compliant_mode_requests() {
        let remove = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "remove", "path": "members[value eq \"7f4bc1a3-285e-48ae-8202-5accb43efb0e\"]"}]
        });
        assert_eq!(changes(remove), vec![GroupChange::RemoveMembers(ids(&["7f4bc1a3-285e-48ae-8202-5accb43efb0e"]))]);
        let replace = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "value": {"displayName": "Sales", "externalId": "g-ext"}}]
        });
        assert_eq!(
            changes(replace),
            vec![GroupChange::SetDisplayName("Sales".to_owned()), GroupChange::SetExternalId(Some("g-ext".to_owned()))]
        );
    }

    #[test]
    fn many_memberships_in_one_patch() {
        let members: Vec<Value> = (0..10_000).map(|i| json!({"value": format!("u{i}")})).collect();
        let body = json!({"Operations": [
            {"op": "Add", "path": "members", "value": members},
            {"op": "Remove", "path": "members", "value": [{"value": "old-1"}, {"value": "old-2"}]},
            {"op": "remove", "path": "members[value eq \"old-3\"]"}
        ]});
        let result = changes(body);
        assert_eq!(result.len(), 3);
        assert!(
            matches!(&result[0], GroupChange::AddMembers(added) if added.len() == 10_000 && added[9_999] == "u9999")
        );
        assert_eq!(result[1], GroupChange::RemoveMembers(ids(&["old-1", "old-2"])));
        assert_eq!(result[2], GroupChange::RemoveMembers(ids(&["old-3"])));
        let too_many: Vec<Value> = (0..30_000).map(|i| json!({"value": format!("u{i}")})).collect();
        let body = json!({"Operations": [
            {"op": "Add", "path": "members", "value": too_many},
            {"op": "Add", "path": "members", "value": too_many}
        ]});
        assert_eq!(refused(body).scim_type, Some(ScimType::InvalidValue));
    }

    #[test]
    fn reference_collection_bare_string_member() {
        // Microsoft's SCIMReferenceCode Postman "Group patch add member" expects 204 for this.
        let body = json!({
            "id": "g1",
            "Operations": [{"op": "add", "path": "members", "value": "string id 1"}],
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]
        });
        assert_eq!(changes(body), vec![GroupChange::AddMembers(ids(&["string id 1"]))]);
    }

    #[test]
    fn member_list_replacement_and_clearing() {
        assert_eq!(
            changes(json!({"Operations": [{"op": "remove", "path": "members"}]})),
            vec![GroupChange::RemoveAllMembers]
        );
        assert_eq!(
            changes(
                json!({"Operations": [{"op": "replace", "path": "MEMBERS", "value": [{"value": "a"}, {"value": "b"}]}]})
            ),
            vec![GroupChange::ReplaceMembers(ids(&["a", "b"]))]
        );
        assert_eq!(
            changes(json!({"Operations": [{"op": "replace", "path": "members", "value": []}]})),
            vec![GroupChange::ReplaceMembers(vec![])]
        );
        assert_eq!(
            changes(json!({"Operations": [{"op": "add", "value": {"members": [{"value": "a"}]}}]})),
            vec![GroupChange::AddMembers(ids(&["a"]))]
        );
        assert_eq!(
            changes(json!({"Operations": [{"op": "replace", "value": {"members": null}}]})),
            vec![GroupChange::RemoveAllMembers]
        );
        assert_eq!(
            changes(json!({"Operations": [{"op": "add", "path": "members", "value": {"value": "solo"}}]})),
            vec![GroupChange::AddMembers(ids(&["solo"]))]
        );
    }

    #[test]
    fn external_id_and_qualified_paths() {
        assert_eq!(
            changes(json!({"Operations": [
                {"op": "Add", "path": "externalId", "value": "e1"},
                {"op": "Remove", "path": "externalId"},
                {"op": "Replace", "path": "urn:ietf:params:scim:schemas:core:2.0:Group:displayName", "value": "Q"}
            ]})),
            vec![
                GroupChange::SetExternalId(Some("e1".to_owned())),
                GroupChange::SetExternalId(None),
                GroupChange::SetDisplayName("Q".to_owned())
            ]
        );
    }

    #[test]
    fn invalid_group_patches_are_refused() {
        let cases = [
            (json!({"op": "remove", "path": "displayName"}), ScimType::Mutability),
            (json!({"op": "replace", "path": "displayName", "value": ""}), ScimType::InvalidValue),
            (json!({"op": "replace", "path": "displayName", "value": 7}), ScimType::InvalidValue),
            (json!({"op": "replace", "path": "id", "value": "x"}), ScimType::Mutability),
            (json!({"op": "replace", "path": "owner", "value": "x"}), ScimType::InvalidPath),
            (json!({"op": "replace", "path": "members.value", "value": "x"}), ScimType::InvalidPath),
            (
                json!({"op": "replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:displayName", "value": "x"}),
                ScimType::InvalidPath,
            ),
            (json!({"op": "remove", "path": "members[display eq \"x\"]"}), ScimType::InvalidPath),
            (json!({"op": "remove", "path": "members[value eq \"\"]"}), ScimType::InvalidValue),
            (json!({"op": "add", "path": "members[value eq \"x\"]", "value": [{"value": "x"}]}), ScimType::InvalidPath),
            (json!({"op": "remove", "path": "members[value sw \"x\""}), ScimType::InvalidFilter),
            (json!({"op": "add", "path": "members", "value": 17}), ScimType::InvalidValue),
            (json!({"op": "add", "path": "members", "value": [""]}), ScimType::InvalidValue),
            (json!({"op": "add", "path": "members", "value": [{"value": 5}]}), ScimType::InvalidValue),
            (json!({"op": "add", "path": "members", "value": [{"$ref": "x"}]}), ScimType::InvalidValue),
            (json!({"op": "replace", "value": "Sales"}), ScimType::InvalidValue),
            (json!({"op": "replace", "value": {"displayName": "x", "bogus": 1}}), ScimType::InvalidPath),
            (json!({"op": "add", "path": "members[", "value": []}), ScimType::InvalidFilter),
            (json!({"op": "add", "path": "members]", "value": []}), ScimType::InvalidPath),
        ];
        for (operation, kind) in cases {
            let error = refused(json!({"Operations": [operation]}));
            assert_eq!((error.status, error.scim_type), (400, Some(kind)), "{operation}: {}", error.detail);
        }
    }

    #[test]
    fn a_bad_later_operation_fails_the_whole_patch() {
        let error = refused(json!({"Operations": [
            {"op": "Add", "path": "members", "value": [{"value": "u1"}]},
            {"op": "Remove", "path": "displayName"}
        ]}));
        assert_eq!(error.detail, "Operations[1]: 'displayName' is required and cannot be removed");
    }
}

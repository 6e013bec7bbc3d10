//! `PATCH` requests (RFC 7644 §3.5.2) in both shapes Entra sends: the default job's
//! (`"op":"Replace"`, one operation per path, `"False"` as a string) and the `aadOptscim062020`
//! one (lower-case ops, one path-less `replace` whose value maps paths to values,
//! `members[value eq "…"]` removals).
//!
//! [`parse_patch`] checks the envelope; [`apply_user_patch`] and [`group_changes`] interpret the
//! operations for a resource type. Both validate everything before anything takes effect, so a
//! failing PATCH changes nothing.

mod group;
mod user;

use serde_json::Value;

pub use group::{GroupChange, group_changes};
pub use user::apply_user_patch;

use crate::json::{self, MAX_MEMBER_VALUES, MAX_STRING_CHARS, field};
use crate::path::{AttrPath, SyntaxError, parse_path};
use crate::{PATCH_OP_SCHEMA, ScimError};

/// The most operations one PATCH may carry.
pub const MAX_OPERATIONS: usize = 1000;

/// The `op` of a PATCH operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOpKind {
    /// `add`: set a single value, or append to a multi-valued attribute.
    Add,
    /// `remove`: clear an attribute or remove values; needs a path.
    Remove,
    /// `replace`: set a value, or all of a multi-valued attribute's values.
    Replace,
}

/// One operation of a PATCH request.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    /// What to do.
    pub op: PatchOpKind,
    /// Where, as written (parsed per resource type). `None` only for `add`/`replace`, whose
    /// value is then an object of attributes.
    pub path: Option<String>,
    /// The value; always present for `add`/`replace` (`null` counts as absent).
    pub value: Option<Value>,
}

/// A parsed PATCH request.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchRequest {
    /// The operations, in order.
    pub operations: Vec<PatchOperation>,
}

/// Reads a PATCH body. `schemas` may be missing (lenient), but if present must list the PatchOp
/// schema; `Operations`, `op`, `path` and `value` match in any case, as do the op names.
pub fn parse_patch(body: &Value) -> Result<PatchRequest, ScimError> {
    let object = json::object(body, "a PATCH body")?;
    if let Some(schemas) = json::schemas(object)?
        && !schemas.iter().any(|schema| schema.eq_ignore_ascii_case(PATCH_OP_SCHEMA))
    {
        return Err(ScimError::invalid_syntax(format!("a PATCH body's 'schemas' must list {PATCH_OP_SCHEMA}")));
    }
    let Some(operations) = field(object, "Operations")? else {
        return Err(ScimError::invalid_syntax("a PATCH body needs 'Operations'"));
    };
    let Some(operations) = operations.as_array() else {
        return Err(ScimError::invalid_syntax("'Operations' must be an array"));
    };
    if operations.is_empty() {
        return Err(ScimError::invalid_syntax("'Operations' must hold at least one operation"));
    }
    if operations.len() > MAX_OPERATIONS {
        return Err(ScimError::invalid_syntax(format!("a PATCH may carry at most {MAX_OPERATIONS} operations")));
    }
    let operations = operations
        .iter()
        .enumerate()
        .map(|(index, operation)| parse_operation(operation).map_err(|error| at_operation(index, error)))
        .collect::<Result<_, _>>()?;
    Ok(PatchRequest { operations })
}

fn parse_operation(operation: &Value) -> Result<PatchOperation, ScimError> {
    let object = json::object(operation, "an operation")?;
    let op = match field(object, "op")?.and_then(Value::as_str) {
        Some(op) if op.eq_ignore_ascii_case("add") => PatchOpKind::Add,
        Some(op) if op.eq_ignore_ascii_case("remove") => PatchOpKind::Remove,
        Some(op) if op.eq_ignore_ascii_case("replace") => PatchOpKind::Replace,
        Some(op) => {
            return Err(ScimError::invalid_syntax(format!("'{op}' is not an operation (add, remove or replace)")));
        }
        None => return Err(ScimError::invalid_syntax("an operation needs an 'op' (add, remove or replace)")),
    };
    let path = match field(object, "path")? {
        None => None,
        Some(Value::String(path)) if path.chars().count() > MAX_STRING_CHARS => {
            return Err(ScimError::invalid_path(format!("'path' is longer than {MAX_STRING_CHARS} characters")));
        }
        Some(Value::String(path)) => Some(path.clone()),
        Some(other) => {
            return Err(ScimError::invalid_path(format!("'path' must be a string, not {}", json::kind_of(other))));
        }
    };
    let value = field(object, "value")?.cloned();
    if op == PatchOpKind::Remove && path.is_none() {
        return Err(ScimError::no_target("'remove' needs a 'path'"));
    }
    if op != PatchOpKind::Remove && value.is_none() {
        return Err(ScimError::invalid_value(format!("'{}' needs a 'value'", op_name(op))));
    }
    if value.as_ref().and_then(Value::as_array).is_some_and(|values| values.len() > MAX_MEMBER_VALUES) {
        return Err(ScimError::invalid_value(format!("a 'value' may hold at most {MAX_MEMBER_VALUES} values")));
    }
    Ok(PatchOperation { op, path, value })
}

fn op_name(op: PatchOpKind) -> &'static str {
    match op {
        PatchOpKind::Add => "add",
        PatchOpKind::Remove => "remove",
        PatchOpKind::Replace => "replace",
    }
}

/// Prefixes an error with the operation it is about, so a client can find it in a long PATCH.
fn at_operation(index: usize, mut error: ScimError) -> ScimError {
    error.detail = format!("Operations[{index}]: {}", error.detail);
    error
}

/// Parses a PATCH path. A fault inside `[…]` is `invalidFilter` (RFC 7644 Table 9 lists it for
/// PATCH path filters); any other is `invalidPath`.
fn parse_patch_path(text: &str) -> Result<AttrPath, ScimError> {
    parse_path(text).map_err(|SyntaxError { detail, in_brackets }| {
        if in_brackets {
            ScimError::invalid_filter(format!("in path '{text}': {detail}"))
        } else {
            ScimError::invalid_path(format!("'{text}' is not a valid path: {detail}"))
        }
    })
}

/// The (path, value) pairs one operation stands for. With a path, that path and the value; with
/// none, the value must be an object and each key is a path with its own value (`null` meaning
/// "remove"; `schemas` is skipped).
fn targets(operation: &PatchOperation) -> Result<Vec<(AttrPath, Option<&Value>)>, ScimError> {
    if let Some(path) = &operation.path {
        return Ok(vec![(parse_patch_path(path)?, operation.value.as_ref())]);
    }
    let Some(object) = operation.value.as_ref().and_then(Value::as_object) else {
        return Err(ScimError::invalid_value("without a 'path', the 'value' must be an object of attributes"));
    };
    object
        .iter()
        .filter(|(key, _)| !key.eq_ignore_ascii_case("schemas"))
        .map(|(key, value)| Ok((parse_patch_path(key)?, (!value.is_null()).then_some(value))))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::ScimType;

    fn refused(body: Value) -> ScimError {
        parse_patch(&body).unwrap_err()
    }

    #[test]
    fn entra_default_envelope() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
                {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}
            ]
        });
        let patch = parse_patch(&body).unwrap();
        assert_eq!(
            patch.operations,
            vec![
                PatchOperation {
                    op: PatchOpKind::Replace,
                    path: Some("emails[type eq \"work\"].value".to_owned()),
                    value: Some(json!("updatedEmail@microsoft.com")),
                },
                PatchOperation {
                    op: PatchOpKind::Replace,
                    path: Some("name.familyName".to_owned()),
                    value: Some(json!("updatedFamilyName")),
                },
            ]
        );
    }

    #[test]
    fn names_and_ops_ignore_case_and_schemas_may_be_missing() {
        let body = json!({"operations": [{"OP": "REPLACE", "Path": "active", "Value": false}, {"op": "remove", "path": "title"}]});
        let patch = parse_patch(&body).unwrap();
        assert_eq!(patch.operations[0].op, PatchOpKind::Replace);
        assert_eq!(patch.operations[0].value, Some(json!(false)));
        assert_eq!(
            patch.operations[1],
            PatchOperation { op: PatchOpKind::Remove, path: Some("title".to_owned()), value: None }
        );
        let body = json!({"schemas": ["URN:IETF:PARAMS:SCIM:API:MESSAGES:2.0:PATCHOP"], "Operations": [{"op": "add", "value": {}}]});
        assert_eq!(parse_patch(&body).unwrap().operations[0].op, PatchOpKind::Add);
    }

    #[test]
    fn malformed_envelopes_are_refused() {
        let syntax = [
            json!(null),
            json!([]),
            json!("patch"),
            json!({}),
            json!({"Operations": {}}),
            json!({"Operations": []}),
            json!({"Operations": [5]}),
            json!({"Operations": [{"path": "title", "value": "x"}]}),
            json!({"Operations": [{"op": "move", "path": "title", "value": "x"}]}),
            json!({"Operations": [{"op": 1, "path": "title", "value": "x"}]}),
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "Operations": [{"op": "add", "value": {}}]}),
            json!({"schemas": "urn:ietf:params:scim:api:messages:2.0:PatchOp", "Operations": [{"op": "add", "value": {}}]}),
        ];
        for body in syntax {
            assert_eq!(refused(body.clone()).scim_type, Some(ScimType::InvalidSyntax), "{body}");
        }
        assert_eq!(refused(json!({"Operations": [{"op": "Remove"}]})).scim_type, Some(ScimType::NoTarget));
        let error = refused(
            json!({"Operations": [{"op": "Add", "path": "title", "value": "x"}, {"op": "Replace", "path": "title"}]}),
        );
        assert_eq!(error.detail, "Operations[1]: 'replace' needs a 'value'");
        assert_eq!(error.scim_type, Some(ScimType::InvalidValue));
        let error = refused(json!({"Operations": [{"op": "add", "path": "title", "value": null}]}));
        assert_eq!(error.scim_type, Some(ScimType::InvalidValue));
        assert_eq!(
            refused(json!({"Operations": [{"op": "add", "path": 5, "value": "x"}]})).scim_type,
            Some(ScimType::InvalidPath)
        );
    }

    #[test]
    fn sizes_are_capped() {
        let op = json!({"op": "remove", "path": "title"});
        assert!(parse_patch(&json!({"Operations": vec![op.clone(); MAX_OPERATIONS]})).is_ok());
        assert!(refused(json!({"Operations": vec![op; MAX_OPERATIONS + 1]})).detail.contains("at most 1000"));
        let members: Vec<Value> = (0..10_000).map(|i| json!({"value": format!("u{i}")})).collect();
        assert!(parse_patch(&json!({"Operations": [{"op": "Add", "path": "members", "value": members}]})).is_ok());
        let too_many = vec![json!({"value": "u"}); MAX_MEMBER_VALUES + 1];
        assert!(
            refused(json!({"Operations": [{"op": "Add", "path": "members", "value": too_many}]}))
                .detail
                .contains("at most 50000")
        );
        let long = "a".repeat(MAX_STRING_CHARS + 1);
        assert_eq!(
            refused(json!({"Operations": [{"op": "remove", "path": long}]})).scim_type,
            Some(ScimType::InvalidPath)
        );
    }
}

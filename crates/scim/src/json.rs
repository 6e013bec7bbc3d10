//! Reading SCIM request bodies: attribute names match case-insensitively (RFC 7643 §2.1), `null`
//! means "not given" (RFC 7643 §2.5), and every string is capped so one request cannot make us
//! hold megabytes per attribute.

use serde_json::{Map, Value};

use crate::ScimError;

/// The longest string attribute value we accept, in characters.
pub(crate) const MAX_STRING_CHARS: usize = 1024;

/// The most values a multi-valued attribute such as `emails` may hold.
pub(crate) const MAX_MULTI_VALUES: usize = 100;

/// The most member ids one request may carry (Entra adds up to 10,000 members per PATCH op).
pub(crate) const MAX_MEMBER_VALUES: usize = 50_000;

/// The value of `name` in `object`, matched case-insensitively. `null` counts as absent, and a
/// name given twice in two spellings is refused rather than silently picking one.
pub(crate) fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Result<Option<&'a Value>, ScimError> {
    let mut found: Option<(&String, &Value)> = None;
    for (key, value) in object.iter().filter(|(key, _)| key.eq_ignore_ascii_case(name)) {
        if let Some((first, _)) = found {
            return Err(ScimError::invalid_syntax(format!(
                "attribute '{name}' is given twice (as '{first}' and '{key}')"
            )));
        }
        found = Some((key, value));
    }
    Ok(found.map(|(_, value)| value).filter(|value| !value.is_null()))
}

/// A string value, at most [`MAX_STRING_CHARS`] long; `what` names the attribute in errors.
pub(crate) fn string(value: &Value, what: &str) -> Result<String, ScimError> {
    let Some(text) = value.as_str() else {
        return Err(ScimError::invalid_value(format!("'{what}' must be a string, not {}", kind_of(value))));
    };
    if text.chars().count() > MAX_STRING_CHARS {
        return Err(ScimError::invalid_value(format!("'{what}' is longer than {MAX_STRING_CHARS} characters")));
    }
    Ok(text.to_owned())
}

/// The optional string attribute `name` of `object`.
pub(crate) fn opt_string(object: &Map<String, Value>, name: &str) -> Result<Option<String>, ScimError> {
    field(object, name)?.map(|value| string(value, name)).transpose()
}

/// A boolean: JSON `true`/`false`, or the strings `"True"`/`"False"` in any case, which Entra
/// sends without the `aadOptscim062020` flag.
pub(crate) fn boolean(value: &Value, what: &str) -> Result<bool, ScimError> {
    match value {
        Value::Bool(flag) => Ok(*flag),
        Value::String(text) if text.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(text) if text.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(ScimError::invalid_value(format!("'{what}' must be true or false, not {}", kind_of(other)))),
    }
}

/// The body as an object, or `invalidSyntax`.
pub(crate) fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, ScimError> {
    value
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax(format!("{what} must be a JSON object, not {}", kind_of(value))))
}

/// Checks `schemas`, when present, is an array of strings, and returns them.
pub(crate) fn schemas(object: &Map<String, Value>) -> Result<Option<Vec<&str>>, ScimError> {
    let Some(value) = field(object, "schemas")? else { return Ok(None) };
    let refused = || ScimError::invalid_syntax("'schemas' must be an array of schema URIs");
    let items = value.as_array().ok_or_else(refused)?;
    if items.len() > MAX_MULTI_VALUES {
        return Err(refused());
    }
    items.iter().map(|item| item.as_str().ok_or_else(refused)).collect::<Result<Vec<_>, _>>().map(Some)
}

/// "a string", "an array", … for error messages.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::ScimType;

    #[test]
    fn fields_match_in_any_case_and_null_is_absent() {
        let body = json!({"UserName": "a", "title": null});
        let object = body.as_object().unwrap();
        assert_eq!(field(object, "userName").unwrap(), Some(&json!("a")));
        assert_eq!(field(object, "title").unwrap(), None);
        assert_eq!(field(object, "missing").unwrap(), None);
    }

    #[test]
    fn a_field_given_twice_is_refused() {
        let body = json!({"userName": "a", "USERNAME": "b"});
        let error = field(body.as_object().unwrap(), "username").unwrap_err();
        assert_eq!(error.scim_type, Some(ScimType::InvalidSyntax));
    }

    #[test]
    fn strings_are_typed_and_capped() {
        assert_eq!(string(&json!("x"), "title").unwrap(), "x");
        assert_eq!(string(&json!(5), "title").unwrap_err().detail, "'title' must be a string, not a number");
        assert!(string(&json!("é".repeat(MAX_STRING_CHARS)), "title").is_ok());
        assert!(string(&json!("a".repeat(MAX_STRING_CHARS + 1)), "title").is_err());
    }

    #[test]
    fn booleans_accept_entra_strings() {
        assert!(boolean(&json!("True"), "active").unwrap());
        assert!(!boolean(&json!("FALSE"), "active").unwrap());
        assert!(!boolean(&json!(false), "active").unwrap());
        assert!(boolean(&json!("yes"), "active").is_err());
        assert!(boolean(&json!(1), "active").is_err());
    }
}

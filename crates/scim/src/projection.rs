//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5): trimming a resource to what the
//! client asked for. Names are attribute paths (`userName`, `name.givenName`,
//! `urn:…:enterprise:2.0:User:department`, or an extension URN alone), matched in any case.
//! `id` and `schemas` are always returned; names that are not attribute paths are ignored.

use serde_json::{Map, Value};

use crate::path::{Literal, parse_path};
use crate::{GROUP_SCHEMA, USER_SCHEMA};

/// Attributes never removed: `id` is `returned: always` (RFC 7643 §3.1), and `schemas` keeps
/// the JSON a SCIM resource.
const ALWAYS: [&str; 2] = ["id", "schemas"];

/// Trims `resource`: with `attributes` non-empty, keeps only those (and [`ALWAYS`]); then removes
/// `excluded`. Sub-attributes select inside complex and multi-valued attributes (`emails.value`).
pub fn project(resource: Value, attributes: &[String], excluded: &[String]) -> Value {
    let Value::Object(object) = resource else { return resource };
    let included = selectors(attributes);
    let excluded = selectors(excluded);
    let mut out = Map::new();
    for (key, value) in object {
        let kept = if attributes.is_empty() { Some(value) } else { select(&key, value, &included, true) };
        if let Some(value) = kept.and_then(|value| select(&key, value, &excluded, false)) {
            out.insert(key, value);
        }
    }
    Value::Object(out)
}

/// One parsed attribute name.
struct Selector {
    /// The extension URN it lives in; `None` for core attributes (plain or core-qualified).
    extension: Option<String>,
    /// The attribute; `None` selects the whole extension.
    attr: Option<String>,
    /// The sub-attribute.
    sub: Option<String>,
    /// `[sub eq value]`: only the elements of a multi-valued attribute that match.
    filter: Option<(String, Literal)>,
}

fn selectors(names: &[String]) -> Vec<Selector> {
    names
        .iter()
        .filter_map(|name| parse_path(name).ok())
        .filter_map(|path| {
            let core = path.schema_is(USER_SCHEMA) || path.schema_is(GROUP_SCHEMA);
            let filter = match path.filter {
                None => None,
                // Only `[sub eq value]` selects elements; any other filter makes the name unusable.
                Some(comparison) => {
                    let sub = comparison.path.attr.clone().filter(|_| comparison.path.sub.is_none());
                    let value = comparison.value.filter(|_| comparison.op == "eq");
                    Some((sub?, value?))
                }
            };
            let extension = path.schema.filter(|_| !core);
            // A core schema URN alone selects nothing in particular.
            (extension.is_some() || path.attr.is_some()).then_some(Selector {
                extension,
                attr: path.attr,
                sub: path.sub,
                filter,
            })
        })
        .collect()
}

/// `keep == true`: the part of `key: value` the selectors include; `keep == false`: what is
/// left once the selectors are excluded. `None` drops the attribute.
fn select(key: &str, value: Value, selectors: &[Selector], keep: bool) -> Option<Value> {
    if ALWAYS.iter().any(|always| always.eq_ignore_ascii_case(key)) {
        return Some(value);
    }
    let is_extension = key.get(..4).is_some_and(|head| head.eq_ignore_ascii_case("urn:")) && value.is_object();
    if !is_extension {
        let core: Vec<&Selector> = selectors.iter().filter(|s| s.extension.is_none()).collect();
        return select_attr(key, value, &core, keep);
    }
    let mine: Vec<&Selector> =
        selectors.iter().filter(|s| s.extension.as_deref().is_some_and(|urn| urn.eq_ignore_ascii_case(key))).collect();
    if mine.is_empty() {
        return unmatched(value, keep);
    }
    if mine.iter().any(|s| s.attr.is_none()) {
        return matched(value, keep);
    }
    let Value::Object(inner) = value else { return None };
    let inner: Map<String, Value> = inner
        .into_iter()
        .filter_map(|(name, value)| Some((name.clone(), select_attr(&name, value, &mine, keep)?)))
        .collect();
    (!inner.is_empty()).then_some(Value::Object(inner))
}

/// [`select`] for one attribute of one schema.
fn select_attr(key: &str, value: Value, selectors: &[&Selector], keep: bool) -> Option<Value> {
    let matching: Vec<&Selector> = selectors
        .iter()
        .copied()
        .filter(|s| s.attr.as_deref().is_some_and(|attr| attr.eq_ignore_ascii_case(key)))
        .collect();
    if matching.is_empty() {
        return unmatched(value, keep);
    }
    if matching.iter().any(|s| s.sub.is_none() && s.filter.is_none()) {
        return matched(value, keep);
    }
    let subs: Vec<&str> = matching.iter().filter(|s| s.filter.is_none()).filter_map(|s| s.sub.as_deref()).collect();
    let filtered: Vec<&Selector> = matching.into_iter().filter(|s| s.filter.is_some()).collect();
    let Value::Array(items) = value else { return Some(select_subs(value, &subs, keep)) };
    if filtered.is_empty() {
        return Some(select_subs(Value::Array(items), &subs, keep));
    }
    // Elements a filter selects are kept (or dropped) whole, or by the filter's sub-attribute;
    // the others as the plain sub-attribute names say.
    let items: Vec<Value> = items
        .into_iter()
        .filter_map(|item| {
            match filtered.iter().find(|s| s.filter.as_ref().is_some_and(|filter| element_matches(&item, filter))) {
                Some(selector) => match selector.sub.as_deref() {
                    Some(sub) => Some(select_subs(item, &[sub], keep)),
                    None => matched(item, keep),
                },
                None if subs.is_empty() => unmatched(item, keep),
                None => Some(select_subs(item, &subs, keep)),
            }
        })
        .collect();
    (!items.is_empty()).then_some(Value::Array(items))
}

/// Whether an element of a multi-valued attribute has `sub eq value` (strings compare in any
/// case, like the `type` values filters select on).
fn element_matches(item: &Value, (sub, literal): &(String, Literal)) -> bool {
    let Some(object) = item.as_object() else { return false };
    object.iter().filter(|(name, _)| name.eq_ignore_ascii_case(sub)).any(|(_, value)| match value {
        Value::String(text) => text.eq_ignore_ascii_case(literal.text()),
        Value::Bool(flag) => literal.as_bool() == Some(*flag),
        Value::Number(number) => number.to_string() == literal.text(),
        _ => false,
    })
}

/// Keeps (or drops) the sub-attributes `subs` of a complex value, or of each element of a
/// multi-valued one.
fn select_subs(value: Value, subs: &[&str], keep: bool) -> Value {
    match value {
        Value::Object(object) => Value::Object(
            object
                .into_iter()
                .filter(|(name, _)| subs.iter().any(|sub| sub.eq_ignore_ascii_case(name)) == keep)
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(|item| select_subs(item, subs, keep)).collect()),
        other => other,
    }
}

/// An attribute no selector names: kept when excluding, dropped when including.
fn unmatched(value: Value, keep: bool) -> Option<Value> {
    (!keep).then_some(value)
}

/// An attribute a selector names as a whole: kept when including, dropped when excluding.
fn matched(value: Value, keep: bool) -> Option<Value> {
    keep.then_some(value)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn user() -> Value {
        json!({
            "schemas": [USER_SCHEMA, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "id": "u1",
            "externalId": "ann",
            "userName": "ann@contoso.com",
            "name": {"givenName": "Ann", "familyName": "Lee"},
            "emails": [{"value": "ann@contoso.com", "type": "work", "primary": true}],
            "active": true,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Ops", "manager": {"value": "m1"}},
            "meta": {"resourceType": "User", "location": "https://x/Users/u1"}
        })
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn no_parameters_change_nothing() {
        assert_eq!(project(user(), &[], &[]), user());
    }

    #[test]
    fn attributes_keep_only_those_plus_id_and_schemas() {
        assert_eq!(
            project(user(), &names(&["USERNAME", "name.givenName", "emails.value"]), &[]),
            json!({
                "schemas": [USER_SCHEMA, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                "id": "u1",
                "userName": "ann@contoso.com",
                "name": {"givenName": "Ann"},
                "emails": [{"value": "ann@contoso.com"}]
            })
        );
        assert_eq!(project(user(), &names(&["bogus", "[", ""]), &[]).as_object().map(Map::len), Some(2));
    }

    #[test]
    fn urn_qualified_attributes() {
        let projected = project(
            user(),
            &names(&[
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
                "urn:ietf:params:scim:schemas:core:2.0:User:active",
            ]),
            &[],
        );
        assert_eq!(
            projected["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            json!({"department": "Ops"})
        );
        assert_eq!(projected["active"], json!(true));
        assert!(projected.get("userName").is_none());
        let whole = project(user(), &names(&["urn:ietf:params:scim:schemas:extension:enterprise:2.0:user"]), &[]);
        assert_eq!(
            whole["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"],
            json!({"value": "m1"})
        );
        let manager =
            project(user(), &names(&["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"]), &[]);
        assert_eq!(
            manager["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            json!({"manager": {"value": "m1"}})
        );
    }

    #[test]
    fn excluded_attributes_remove_them_but_never_id() {
        let group = json!({"schemas": [GROUP_SCHEMA], "id": "g1", "displayName": "Sales", "members": [{"value": "u1"}], "meta": {}});
        assert_eq!(
            project(group, &[], &names(&["Members", "id", "schemas"])),
            json!({"schemas": [GROUP_SCHEMA], "id": "g1", "displayName": "Sales", "meta": {}})
        );
        let projected = project(user(), &[], &names(&["name.familyName", "emails.primary", "meta"]));
        assert_eq!(projected["name"], json!({"givenName": "Ann"}));
        assert_eq!(projected["emails"], json!([{"value": "ann@contoso.com", "type": "work"}]));
        assert!(projected.get("meta").is_none());
        let projected =
            project(user(), &[], &names(&["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"]));
        assert_eq!(
            projected["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            json!({"manager": {"value": "m1"}})
        );
        let projected = project(
            user(),
            &[],
            &names(&[
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            ]),
        );
        assert!(projected.get("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User").is_none());
    }

    #[test]
    fn filtered_names_select_elements() {
        let mut resource = user();
        resource["emails"] = json!([
            {"value": "emailName357", "type": "work", "primary": true},
            {"value": "home@x", "type": "home", "primary": false}
        ]);
        // The Microsoft reference collection asks for these two.
        let work = project(resource.clone(), &names(&[r#"emails[type eq "work"]"#]), &[]);
        assert_eq!(work["emails"], json!([{"value": "emailName357", "type": "work", "primary": true}]));
        let by_value = project(resource.clone(), &names(&[r#"emails[value eq "emailName357"]"#]), &[]);
        assert_eq!(by_value["emails"], json!([{"value": "emailName357", "type": "work", "primary": true}]));
        let value_only = project(resource.clone(), &names(&[r#"emails[type eq "WORK"].value"#]), &[]);
        assert_eq!(value_only["emails"], json!([{"value": "emailName357"}]));
        let primary = project(resource.clone(), &names(&["emails[primary eq true]"]), &[]);
        assert_eq!(primary["emails"][0]["value"], "emailName357");
        let none = project(resource.clone(), &names(&[r#"emails[type eq "other"]"#]), &[]);
        assert!(none.get("emails").is_none());
        let excluded = project(resource.clone(), &[], &names(&[r#"emails[type eq "home"]"#]));
        assert_eq!(excluded["emails"], json!([{"value": "emailName357", "type": "work", "primary": true}]));
        let unsupported = project(resource, &names(&[r#"emails[type sw "w"]"#]), &[]);
        assert!(unsupported.get("emails").is_none());
    }

    #[test]
    fn non_objects_pass_through() {
        assert_eq!(project(json!([1, 2]), &names(&["id"]), &names(&["x"])), json!([1, 2]));
    }
}

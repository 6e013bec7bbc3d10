//! `GET /Users` and `GET /Groups`: query parameters (RFC 7644 §3.4.2) and the ListResponse.

use serde_json::{Value, json};

use crate::filter::{Filter, Resource, parse_filter};
use crate::{LIST_RESPONSE_SCHEMA, ScimError};

/// The page size when the client gives no `count`.
pub const DEFAULT_COUNT: u64 = 100;

/// The largest page served (also `filter.maxResults` in the ServiceProviderConfig).
pub const MAX_COUNT: u64 = 1000;

/// A parsed list query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// `filter`, parsed.
    pub filter: Option<Filter>,
    /// `startIndex`: 1-based; values below 1 are taken as 1 (RFC 7644 §3.4.2.4).
    pub start_index: u64,
    /// `count`: default [`DEFAULT_COUNT`], at most [`MAX_COUNT`], negative taken as 0.
    pub count: u64,
    /// `attributes`: the only attributes to return (see [`crate::project`]).
    pub attributes: Vec<String>,
    /// `excludedAttributes`: attributes to leave out (Entra sends `members` for groups).
    pub excluded_attributes: Vec<String>,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            filter: None,
            start_index: 1,
            count: DEFAULT_COUNT,
            attributes: Vec::new(),
            excluded_attributes: Vec::new(),
        }
    }
}

/// Reads the query string of a list request, already URL-decoded into pairs. Names match in any
/// case; unknown parameters are ignored; a repeated one takes its last value.
pub fn parse_list_query(resource: Resource, params: &[(String, String)]) -> Result<ListQuery, ScimError> {
    let mut query = ListQuery::default();
    for (name, value) in params {
        match name.to_ascii_lowercase().as_str() {
            "filter" => query.filter = Some(parse_filter(resource, value)?),
            "startindex" => query.start_index = number(value, "startIndex")?.max(1),
            "count" => query.count = number(value, "count")?.min(MAX_COUNT),
            "attributes" => query.attributes = names(value),
            "excludedattributes" => query.excluded_attributes = names(value),
            _ => {}
        }
    }
    Ok(query)
}

/// A non-negative integer; negative numbers are 0 and huge ones saturate, anything that is not
/// an integer is `invalidValue`.
fn number(text: &str, name: &str) -> Result<u64, ScimError> {
    let trimmed = text.trim();
    let (negative, digits) = match trimmed.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ScimError::invalid_value(format!("'{name}' must be an integer, not '{text}'")));
    }
    if negative {
        return Ok(0);
    }
    Ok(digits.bytes().fold(0u64, |total, digit| total.saturating_mul(10).saturating_add(u64::from(digit - b'0'))))
}

/// A comma-separated list of attribute names, trimmed, empties dropped.
fn names(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|name| !name.is_empty()).map(str::to_owned).collect()
}

/// The ListResponse for one page. `itemsPerPage` is the number of resources on this page.
pub fn list_response(resources: Vec<Value>, total_results: u64, start_index: u64) -> Value {
    let items = resources.len();
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total_results,
        "Resources": resources,
        "startIndex": start_index,
        "itemsPerPage": items,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::ScimType;
    use crate::filter::{FilterAttr, FilterValue};

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults() {
        assert_eq!(parse_list_query(Resource::Users, &[]).unwrap(), ListQuery::default());
        assert_eq!(ListQuery::default().count, 100);
        assert_eq!(ListQuery::default().start_index, 1);
    }

    #[test]
    fn entra_group_lookup() {
        let query = parse_list_query(
            Resource::Groups,
            &params(&[("excludedAttributes", "members"), ("filter", "displayName eq \"Sales\"")]),
        )
        .unwrap();
        assert_eq!(query.excluded_attributes, vec!["members".to_owned()]);
        assert_eq!(query.filter.unwrap().terms, vec![(FilterAttr::DisplayName, FilterValue::Str("Sales".to_owned()))]);
    }

    #[test]
    fn paging_and_names_in_any_case() {
        let query = parse_list_query(
            Resource::Users,
            &params(&[
                ("STARTINDEX", "3"),
                ("Count", "2"),
                ("attributes", " userName, name.givenName ,,"),
                ("other", "x"),
            ]),
        )
        .unwrap();
        assert_eq!((query.start_index, query.count), (3, 2));
        assert_eq!(query.attributes, vec!["userName".to_owned(), "name.givenName".to_owned()]);
    }

    #[test]
    fn numbers_are_clamped() {
        let query = |pairs: &[(&str, &str)]| parse_list_query(Resource::Users, &params(pairs)).unwrap();
        assert_eq!(query(&[("startIndex", "0")]).start_index, 1);
        assert_eq!(query(&[("startIndex", "-5")]).start_index, 1);
        assert_eq!(query(&[("count", "-1")]).count, 0);
        assert_eq!(query(&[("count", "0")]).count, 0);
        assert_eq!(query(&[("count", "5000")]).count, 1000);
        assert_eq!(query(&[("count", "99999999999999999999999")]).count, 1000);
        assert_eq!(query(&[("startIndex", "99999999999999999999999")]).start_index, u64::MAX);
        assert_eq!(query(&[("count", " 7 ")]).count, 7);
    }

    #[test]
    fn bad_parameters_are_refused() {
        for (name, value) in
            [("count", "ten"), ("count", ""), ("startIndex", "1.5"), ("startIndex", "-"), ("count", "0x10")]
        {
            let error = parse_list_query(Resource::Users, &params(&[(name, value)])).unwrap_err();
            assert_eq!(error.scim_type, Some(ScimType::InvalidValue), "{name}={value}");
        }
        let error = parse_list_query(Resource::Users, &params(&[("filter", "userName sw \"a\"")])).unwrap_err();
        assert_eq!(error.scim_type, Some(ScimType::InvalidFilter));
        let error = parse_list_query(Resource::Users, &params(&[("filter", "")])).unwrap_err();
        assert_eq!(error.scim_type, Some(ScimType::InvalidFilter));
    }

    #[test]
    fn list_response_shape() {
        assert_eq!(
            list_response(vec![], 0, 1),
            serde_json::json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                "totalResults": 0,
                "Resources": [],
                "startIndex": 1,
                "itemsPerPage": 0
            })
        );
        let page = list_response(vec![serde_json::json!({"id": "a"}), serde_json::json!({"id": "b"})], 5, 3);
        assert_eq!(
            (page["totalResults"].clone(), page["itemsPerPage"].clone(), page["startIndex"].clone()),
            (5.into(), 2.into(), 3.into())
        );
    }
}

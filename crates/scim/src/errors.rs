//! SCIM errors (RFC 7644 §3.12): an HTTP status, an optional `scimType` and a detail for people.
//!
//! Every function in this crate fails with a [`ScimError`] already classified, so the server only
//! has to copy `status` onto the response and [`ScimError::to_json`] into its body.

use serde_json::{Value, json};

use crate::ERROR_SCHEMA;

/// A request the service provider refuses, as RFC 7644 §3.12 describes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SCIM {status}{}: {detail}", scim_type.map(|t| format!(" {}", t.as_str())).unwrap_or_default())]
pub struct ScimError {
    /// The HTTP status code (400, 404, 409, …).
    pub status: u16,
    /// The machine-readable error class; only defined for some 400s (and 409 `uniqueness`).
    pub scim_type: Option<ScimType>,
    /// What went wrong, in words a client developer understands.
    pub detail: String,
}

/// The `scimType` values of RFC 7644 §3.12, Table 9.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimType {
    /// The filter is malformed, or uses an attribute/operator combination we do not support.
    InvalidFilter,
    /// The filter would yield more results than the server is willing to compute.
    TooMany,
    /// A value that must be unique (e.g. `userName`) is already taken.
    Uniqueness,
    /// The attempted change is incompatible with an attribute's mutability (or it is required).
    Mutability,
    /// The request body is not the structure the request calls for.
    InvalidSyntax,
    /// A PATCH `path` is malformed or names no attribute of the resource.
    InvalidPath,
    /// A PATCH `path` selected nothing, or a `remove` has no path.
    NoTarget,
    /// A value is missing, of the wrong type, or out of range.
    InvalidValue,
    /// The `version` given does not match (ETags; not supported here, listed for completeness).
    InvalidVers,
    /// The request carried sensitive information in the URL (e.g. a filter on a password).
    Sensitive,
}

impl ScimType {
    /// The wire spelling, e.g. `invalidFilter`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidFilter => "invalidFilter",
            Self::TooMany => "tooMany",
            Self::Uniqueness => "uniqueness",
            Self::Mutability => "mutability",
            Self::InvalidSyntax => "invalidSyntax",
            Self::InvalidPath => "invalidPath",
            Self::NoTarget => "noTarget",
            Self::InvalidValue => "invalidValue",
            Self::InvalidVers => "invalidVers",
            Self::Sensitive => "sensitive",
        }
    }
}

impl std::fmt::Display for ScimType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ScimError {
    /// Any error; prefer the named constructors below.
    pub fn new(status: u16, scim_type: Option<ScimType>, detail: impl Into<String>) -> Self {
        Self { status, scim_type, detail: detail.into() }
    }

    /// 404: the resource does not exist (RFC 7644 defines no `scimType` for it).
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, None, detail)
    }

    /// 400 `invalidFilter`.
    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::new(400, Some(ScimType::InvalidFilter), detail)
    }

    /// 400 `invalidSyntax`.
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::new(400, Some(ScimType::InvalidSyntax), detail)
    }

    /// 400 `invalidPath`.
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::new(400, Some(ScimType::InvalidPath), detail)
    }

    /// 400 `invalidValue`.
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::new(400, Some(ScimType::InvalidValue), detail)
    }

    /// 400 `noTarget`.
    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::new(400, Some(ScimType::NoTarget), detail)
    }

    /// 400 `mutability`.
    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::new(400, Some(ScimType::Mutability), detail)
    }

    /// 409 `uniqueness`: e.g. a second user with the same `userName`.
    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self::new(409, Some(ScimType::Uniqueness), detail)
    }

    /// 400 `tooMany`.
    pub fn too_many(detail: impl Into<String>) -> Self {
        Self::new(400, Some(ScimType::TooMany), detail)
    }

    /// The error response body: `status` is a string, as RFC 7644 §3.12 shows it, and
    /// `scimType` is left out when there is none.
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let (Some(kind), Some(map)) = (self.scim_type, body.as_object_mut()) {
            map.insert("scimType".to_owned(), Value::String(kind.as_str().to_owned()));
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn not_found_has_no_scim_type() {
        let error = ScimError::not_found("no user with id 7");
        assert_eq!(error.status, 404);
        assert_eq!(
            error.to_json(),
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": "404",
                "detail": "no user with id 7",
            })
        );
    }

    #[test]
    fn classified_errors_carry_status_and_type() {
        let error = ScimError::invalid_filter("'or' is not supported");
        assert_eq!(error.to_json()["scimType"], "invalidFilter");
        assert_eq!(error.to_json()["status"], "400");
        assert_eq!(ScimError::uniqueness("taken").status, 409);
        assert_eq!(ScimError::mutability("x").scim_type, Some(ScimType::Mutability));
        assert_eq!(ScimError::no_target("x").to_json()["scimType"], "noTarget");
        assert_eq!(ScimError::too_many("x").to_json()["scimType"], "tooMany");
        assert_eq!(ScimError::invalid_path("x").to_string(), "SCIM 400 invalidPath: x");
        assert_eq!(ScimError::not_found("gone").to_string(), "SCIM 404: gone");
    }
}

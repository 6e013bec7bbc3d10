//! The read-only `meta` attribute every resource carries (RFC 7643 §3.1). The store owns the
//! timestamps and the server the URL; this crate only lays them out.

use serde_json::{Map, Value};

/// Where and when a resource was made and last changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// When the resource was created, RFC 3339 (e.g. `2026-03-01T09:30:00Z`).
    pub created: String,
    /// When the resource last changed, RFC 3339.
    pub last_modified: String,
    /// The resource's absolute URL, e.g. `https://attest.example/scim/v2/Users/42`.
    pub location: String,
    /// An opaque version (ETag value), when the server keeps one.
    pub version: Option<String>,
}

impl Meta {
    /// The `meta` object for a resource of `resource_type` (`User`, `Group`).
    pub(crate) fn to_json(&self, resource_type: &str) -> Value {
        let mut meta = Map::new();
        meta.insert("resourceType".to_owned(), resource_type.into());
        meta.insert("created".to_owned(), self.created.clone().into());
        meta.insert("lastModified".to_owned(), self.last_modified.clone().into());
        meta.insert("location".to_owned(), self.location.clone().into());
        if let Some(version) = &self.version {
            meta.insert("version".to_owned(), version.clone().into());
        }
        Value::Object(meta)
    }
}

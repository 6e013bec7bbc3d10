//! SCIM 2.0 (RFC 7643, RFC 7644) as Microsoft Entra's provisioning service speaks it, as pure
//! functions: parse requests into typed values, render resources and errors as JSON. No I/O:
//! the server mounts the endpoints and the store keeps the data.
//!
//! - [`errors`]: [`ScimError`], every failure already classified (status + `scimType`).
//! - [`filter`]: `?filter=`, limited to Entra's `eq` and `and`.
//! - [`user`], [`group`]: resources from request bodies and to response bodies.
//! - [`patch`]: PATCH in both of Entra's modes (default and `aadOptscim062020`).
//! - [`listing`], [`projection`]: list queries, ListResponse, `attributes`/`excludedAttributes`.
//! - [`discovery`]: `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas`.
//!
//! Attribute paths are parsed by one scanner shared by filters, PATCH paths and projections.
//! Every response should carry [`CONTENT_TYPE`].

pub mod discovery;
pub mod errors;
pub mod filter;
pub mod group;
mod json;
pub mod listing;
mod meta;
pub mod patch;
mod path;
pub mod projection;
pub mod user;

pub use discovery::{resource_type, resource_types, schema, schemas, service_provider_config};
pub use errors::{ScimError, ScimType};
pub use filter::{Filter, FilterAttr, FilterValue, Resource, parse_filter};
pub use group::{Group, Member};
pub use listing::{ListQuery, list_response, parse_list_query};
pub use meta::Meta;
pub use patch::{GroupChange, PatchOpKind, PatchOperation, PatchRequest, apply_user_patch, group_changes, parse_patch};
pub use projection::project;
pub use user::{MultiValue, Name, User};

/// The media type of every SCIM request and response body (RFC 7644 §3.1).
pub const CONTENT_TYPE: &str = "application/scim+json";

/// The core User schema (RFC 7643 §4.1).
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

/// The Enterprise User extension (RFC 7643 §4.3); also the key its attributes sit under.
pub const ENTERPRISE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The core Group schema (RFC 7643 §4.2).
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// The ListResponse message (RFC 7644 §3.4.2).
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// The PatchOp message (RFC 7644 §3.5.2).
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The Error message (RFC 7644 §3.12).
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

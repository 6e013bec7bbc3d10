//! The Microsoft Entra connector.
//!
//! This first part is the Graph client everything else stands on: client-credentials tokens
//! cached and renewed before they expire ([`auth`]), requests retried the way Microsoft asks
//! (429 and 503 wait out `Retry-After`, parsed as fractional seconds; exponential backoff with
//! jitter where none is given; 504s and broken connections retried; no request ever sent
//! before a `Retry-After` has elapsed), and paging by `@odata.nextLink` ([`graph`]).
//! Base URLs are configuration: national clouds are other URLs, and tests use the simulator.

pub mod apply;
pub mod auth;
pub mod certificate;
pub mod graph;
pub mod readiness;
pub mod stored;
pub mod sync;
mod verify;

pub use auth::{AuthError, Credentials, TokenSource};
pub use graph::{ApiError, ApiErrorKind, GraphClient, GraphError, RetryPolicy, UsageCount};
pub use readiness::{FeatureReadiness, Readiness};
pub use sync::{EntraConnector, EntraSettings, Scope};

#[cfg(test)]
mod apply_tests;
#[cfg(test)]
mod tests;

//! Applying a change in the directory: what a connector reports back to the provisioner.

use serde_json::Value;

use attest_domain::ApplyResult;

/// The outcome of applying one action.
#[derive(Debug)]
pub struct Applied {
    pub result: ApplyResult,
    /// The directory's id for the request that settled it (Graph's `request-id`).
    pub request_id: Option<String>,
    /// What is worth keeping: the new assignment's id, the state found.
    pub details: Value,
    /// A temporary password: shown once to whoever applied the change, never stored or logged.
    pub secret: Option<Secret>,
}

/// A value to show once. `Debug` never prints it.
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// Why an action could not be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApplyError {
    /// Still failing after the client's retries (throttled, unavailable, unreachable): the
    /// queue tries again later.
    #[error("{0}")]
    Transient(String),
    /// Retrying will not help; nothing changed. The message says what to do.
    #[error("{message}")]
    Permanent { message: String, request_id: Option<String> },
    /// The tenant cannot do this (e.g. PIM without the licence).
    #[error("{0}")]
    NotSupported(String),
    /// The directory refused the app itself (consent revoked, secret expired, app disabled,
    /// Conditional Access): nothing changed, an owner must act, and the change waits for them.
    #[error("{0}")]
    Unauthorized(String),
}

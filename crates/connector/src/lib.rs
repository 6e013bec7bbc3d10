//! What every directory connector shares: the [`Connector`] capability (sync into a
//! [`SyncSink`], apply a change), and the sink a connector streams what it reads into.
//!
//! A connector speaks its directory's protocol and produces observations keyed by the
//! directory's own ids; the sink resolves them to graph ids, writes them in batches, keeps
//! the sync run's figures, and on a full snapshot ends what was not seen.

mod apply;
mod observed;
mod run;
mod sink;

use std::future::Future;

use attest_domain::{ChangeAction, ConnectorKind, SyncMode};
use chrono::{DateTime, Utc};

pub use apply::{Applied, ApplyError, Secret};
pub use observed::{ObservedEntitlement, ObservedGrant};
pub use run::{SyncOutcome, run_sync};
pub use sink::{ProgressFn, SyncSink, SyncSummary};

/// Errors a sync can end with.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The store failed; nothing after the last committed batch was written.
    #[error(transparent)]
    Store(#[from] attest_store::StoreError),
    /// The directory could not be read; the message says what happened.
    #[error("the directory could not be read: {0}")]
    Directory(String),
    /// The directory refused the connector's credentials or permissions: an administrator must
    /// act (grant consent again, add a permission, renew a secret).
    #[error("the directory refused access: {0}")]
    Unauthorized(String),
    /// The stored delta state is no longer valid (expired or reset by the directory); only a
    /// full sync can continue.
    #[error("the delta state is no longer valid: {0}")]
    ResyncRequired(String),
}

/// The capability to read a directory into the entitlement graph.
pub trait Connector: Send + Sync {
    /// Which kind of directory this is.
    fn kind(&self) -> ConnectorKind;

    /// Reads the directory into `sink`: everything for [`SyncMode::Full`], changes since the
    /// stored cursors for [`SyncMode::Delta`]. The caller finishes the sink.
    fn sync(&self, mode: SyncMode, sink: &mut SyncSink) -> impl Future<Output = Result<(), SyncError>> + Send;

    /// Applies one change in the directory. Must be safe to repeat: a change already in effect
    /// reports `already_in_state` (or `target_not_found` for removals) and changes nothing.
    fn apply(
        &self,
        action: &ChangeAction,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Applied, ApplyError>> + Send;

    /// Reads the directory back: whether `action`'s effect holds now (`None` when it cannot be
    /// read back, e.g. a session revocation).
    fn verify(&self, action: &ChangeAction) -> impl Future<Output = Result<Option<bool>, ApplyError>> + Send;
}

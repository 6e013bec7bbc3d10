//! Running one sync end to end: the run record, the connector's reading, and the automatic
//! fall back from a delta to a full sync when the delta state is missing or no longer valid.

use attest_domain::{Clock, ConnectorId, SyncMode, SyncTrigger};
use attest_store::Store;

use crate::sink::ProgressFn;
use crate::{Connector, SyncError, SyncSink, SyncSummary};

/// What a requested sync came to.
#[derive(Debug, Clone)]
pub struct SyncOutcome {
    /// The run that completed (or, on error, is not returned: see [`run_sync`]).
    pub summary: SyncSummary,
    /// Set when a delta was asked for but a full sync ran instead, and why.
    pub fell_back: Option<String>,
}

/// Runs a sync of `connector` into the graph of `id`. A delta with no stored cursors runs as
/// a full sync; a delta whose cursors the directory no longer accepts is recorded as failed
/// with the reason, and a full sync (trigger `fallback`) follows at once. On any other error
/// the run is recorded as failed and the error returned.
pub async fn run_sync<C: Connector>(
    connector: &C,
    store: &Store,
    id: ConnectorId,
    mode: SyncMode,
    trigger: SyncTrigger,
    clock: &dyn Clock,
    progress: Option<ProgressFn>,
) -> Result<SyncOutcome, SyncError> {
    let mut mode = mode;
    let mut trigger = trigger;
    let mut fell_back = None;
    if mode == SyncMode::Delta && store.syncs().list_sync_cursors(id).await?.is_empty() {
        fell_back = Some("no delta state is stored yet, so this sync reads everything".to_owned());
        mode = SyncMode::Full;
    }
    loop {
        let mut sink = SyncSink::begin(store, id, mode, trigger, clock.now()).await?;
        if let Some(progress) = &progress {
            sink.on_progress(progress.clone());
        }
        if let Some(reason) = &fell_back {
            sink.note(format!("full sync instead of delta: {reason}"));
        }
        match connector.sync(mode, &mut sink).await {
            Ok(()) => return Ok(SyncOutcome { summary: sink.finish(clock.now()).await?, fell_back }),
            Err(SyncError::ResyncRequired(reason)) if mode == SyncMode::Delta => {
                sink.note("falling back to a full sync");
                sink.clear_cursors();
                sink.fail(&SyncError::ResyncRequired(reason.clone()), clock.now()).await?;
                store.syncs().replace_sync_cursors(id, &Default::default(), clock.now()).await?;
                fell_back = Some(reason);
                mode = SyncMode::Full;
                trigger = SyncTrigger::Fallback;
            }
            Err(error) => {
                sink.fail(&error, clock.now()).await?;
                return Err(error);
            }
        }
    }
}

//! Syncing a connector, from the command line or on schedule: one replica at a time per
//! connector (a job lease in the database), the connector's status kept in step with how the
//! sync went.

use std::time::Duration;

use attest_config::secrets::SecretKey;
use attest_connector::{ProgressFn, SyncError, SyncOutcome, run_sync};
use attest_domain::{Connector, ConnectorStatus, SharedClock, SyncMode, SyncTrigger};
use attest_jobs::{Lease, LeaseError, Ran, Runner};
use attest_store::Store;
use chrono::{DateTime, Utc};

use crate::connectors::http_client;

/// How long a connector's sync lease lasts at a time. It is renewed every third of that while
/// the sync runs, so a long sync keeps it, and a replica that dies mid-sync frees the connector
/// within this long.
const SYNC_LEASE: Duration = Duration::from_secs(5 * 60);

/// Why a connector was not synced.
#[derive(Debug, thiserror::Error)]
pub enum SyncJobError {
    #[error("connector '{0}' is being synced by another attest process right now; try again when it finishes")]
    Busy(String),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Store(#[from] attest_store::StoreError),
    #[error("{0}")]
    Open(String),
    #[error(
        "the sync of connector '{0}' was stopped: another attest process took it over (this one was presumed stopped)"
    )]
    LeaseLost(String),
}

/// The name of a connector's sync lease.
fn lease_name(connector: &Connector) -> String {
    format!("sync:{}", connector.id.0)
}

/// What syncing needs: the store, the key that opens stored credentials, the clock, and the
/// name this process holds leases under. Cheap to clone.
#[derive(Clone)]
pub struct Syncer {
    pub store: Store,
    pub key: std::sync::Arc<SecretKey>,
    pub clock: SharedClock,
    /// This process's name in leases.
    pub owner: String,
}

impl Syncer {
    /// Syncs one connector, holding its lease for the duration.
    pub async fn sync(
        &self,
        connector: &Connector,
        mode: SyncMode,
        trigger: SyncTrigger,
        progress: Option<ProgressFn>,
    ) -> Result<SyncOutcome, SyncJobError> {
        let lease = Lease {
            store: self.store.clone(),
            clock: self.clock.clone(),
            name: lease_name(connector),
            owner: self.owner.clone(),
            length: SYNC_LEASE,
        };
        match lease.hold(self.run_locked(connector, mode, trigger, progress)).await {
            Ok(result) => result,
            Err(LeaseError::Busy(_)) => Err(SyncJobError::Busy(connector.name.clone())),
            Err(LeaseError::Lost(_)) => Err(SyncJobError::LeaseLost(connector.name.clone())),
            Err(LeaseError::Store(e)) => Err(e.into()),
        }
    }

    async fn run_locked(
        &self,
        connector: &Connector,
        mode: SyncMode,
        trigger: SyncTrigger,
        progress: Option<ProgressFn>,
    ) -> Result<SyncOutcome, SyncJobError> {
        let (store, clock) = (&self.store, &self.clock);
        let http = http_client().map_err(SyncJobError::Open)?;
        let entra = attest_entra::stored::open(store, &self.key, connector, http)
            .await
            .map_err(|e| SyncJobError::Open(e.to_string()))?;
        let result = run_sync(&entra, store, connector.id, mode, trigger, clock.as_ref(), progress).await;
        // A sync that worked for a connector not marked connected, or that the directory
        // refused: the readiness check says exactly where it stands and why (and a change of
        // status is audited and, for trouble, mailed to the owners once).
        let recheck = match &result {
            Ok(_) => connector.status != ConnectorStatus::Connected,
            Err(SyncError::Unauthorized(_)) => true,
            Err(_) => false,
        };
        if recheck {
            let fresh = store.connectors().get_connector(connector.id).await?;
            if let Err(e) = crate::setup::assess(store, &self.key, &fresh, "system", clock.now()).await {
                tracing::warn!(connector = %connector.name, error = %e, "the readiness check after a sync failed");
            }
        }
        Ok(result?)
    }
}

/// What a connector is due for: a full sync when it never had one or the last is older than
/// `full_every`, else a delta when the last sync is older than `every`.
pub fn due(connector: &Connector, every: Duration, full_every: Duration, now: DateTime<Utc>) -> Option<SyncMode> {
    let older_than = |at: Option<DateTime<Utc>>, period: Duration| {
        at.is_none_or(|at| now - at >= chrono::Duration::from_std(period).unwrap_or(chrono::Duration::MAX))
    };
    if older_than(connector.last_full_sync_at, full_every) {
        Some(SyncMode::Full)
    } else if older_than(connector.last_synced_at(), every) {
        Some(SyncMode::Delta)
    } else {
        None
    }
}

/// The background scheduler: runs "Sync now" requests and due syncs, on whichever replica
/// takes the connector's lease first.
pub struct Scheduler {
    pub syncer: Syncer,
    pub every: Duration,
    pub full_every: Duration,
    /// How often to look for due syncs.
    pub tick: Duration,
    /// Rung by "Sync now", so a request on this replica does not wait for the next tick.
    pub wake: std::sync::Arc<tokio::sync::Notify>,
}

impl Scheduler {
    /// Runs until `shutdown`, finishing the sync in hand. Connectors waiting for consent or
    /// reauthorization are left alone by the schedule (syncing them would only fail again), but
    /// a "Sync now" request is tried: it is how someone checks that consent is fixed.
    pub async fn run(self, shutdown: tokio::sync::watch::Receiver<bool>) {
        let runner = Runner::new("sync", self.syncer.clock.clone(), self.tick).woken_by(self.wake.clone());
        let this = &self;
        runner
            .run(shutdown, |_| async move {
                let requested = this.run_requested().await;
                let due = this.run_due().await;
                requested.and(due).map(|()| Ran::Idle)
            })
            .await;
    }

    /// Whether the schedule syncs `connector`: connected, or in trouble that does not stop
    /// reading (its last check signed in and found sync's permissions granted: a partial
    /// consent that lacks only, say, provisioning's). Waiting for consent, or unable to sign
    /// in, syncing would only fail again.
    async fn schedulable(&self, connector: &Connector) -> Result<bool, attest_store::StoreError> {
        Ok(match connector.status {
            ConnectorStatus::Connected => true,
            ConnectorStatus::AwaitingConsent | ConnectorStatus::NotConnected => false,
            ConnectorStatus::NeedsReauthorization | ConnectorStatus::Error => {
                self.syncer.store.setup().last_check(connector.id).await?.is_some_and(|(report, _)| {
                    report["signed_in"] == true
                        && report["features"]
                            .as_array()
                            .is_some_and(|f| f.iter().any(|f| f["feature"] == "sync" && f["ready"] == true))
                })
            }
        })
    }

    async fn run_requested(&self) -> Result<(), attest_store::StoreError> {
        let store = &self.syncer.store;
        for request in store.syncs().list_sync_requests().await? {
            let connector = store.connectors().get_connector(request.connector_id).await?;
            let started = self.syncer.clock.now();
            match self.syncer.sync(&connector, request.mode, SyncTrigger::Manual, None).await {
                // Busy: another replica is syncing it; the request waits for the next look.
                Err(SyncJobError::Busy(_)) => continue,
                Ok(outcome) => {
                    tracing::info!(connector = %connector.name, mode = %outcome.summary.run.mode, by = %request.requested_by, "requested sync finished")
                }
                Err(e) => tracing::warn!(connector = %connector.name, error = %e, "requested sync failed"),
            }
            // Served (the run is recorded, failed or not); a request made meanwhile stays.
            store.syncs().complete_sync_request(connector.id, started).await?;
        }
        Ok(())
    }

    async fn run_due(&self) -> Result<(), attest_store::StoreError> {
        let store = &self.syncer.store;
        store.ensure_schema_current().await?;
        for connector in store.connectors().list_connectors().await? {
            if !self.schedulable(&connector).await? {
                continue;
            }
            let Some(mode) = due(&connector, self.every, self.full_every, self.syncer.clock.now()) else { continue };
            match self.syncer.sync(&connector, mode, SyncTrigger::Schedule, None).await {
                Ok(outcome) => {
                    tracing::info!(connector = %connector.name, mode = %outcome.summary.run.mode, "scheduled sync finished")
                }
                Err(SyncJobError::Busy(_)) => {}
                Err(e) => tracing::warn!(connector = %connector.name, error = %e, "scheduled sync failed"),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attest_domain::{ConnectorId, ConnectorKind};
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap()
    }

    fn connector(full: Option<i64>, delta: Option<i64>) -> Connector {
        let at = |m: i64| now() - chrono::Duration::minutes(m);
        Connector {
            id: ConnectorId(1),
            name: "c".into(),
            kind: ConnectorKind::Entra,
            tenant_id: None,
            status: ConnectorStatus::Connected,
            settings: serde_json::json!({}),
            owners: Vec::new(),
            owner_ids: Vec::new(),
            foreign_owner_ids: Vec::new(),
            status_reason: None,
            connected_at: None,
            connected_by: None,
            last_full_sync_at: full.map(at),
            last_delta_sync_at: delta.map(at),
            created_at: now(),
            updated_at: now(),
        }
    }

    #[test]
    fn a_connector_is_due_for_full_then_delta_syncs() {
        let (every, full) = (Duration::from_secs(600), Duration::from_secs(86_400));
        assert_eq!(due(&connector(None, None), every, full, now()), Some(SyncMode::Full));
        assert_eq!(due(&connector(Some(5), None), every, full, now()), None);
        assert_eq!(due(&connector(Some(30), None), every, full, now()), Some(SyncMode::Delta));
        assert_eq!(due(&connector(Some(30), Some(3)), every, full, now()), None);
        assert_eq!(due(&connector(Some(1500), Some(3)), every, full, now()), Some(SyncMode::Full));
    }
}

//! The sync sink: resolves, batches, writes, sweeps and records.

use std::collections::HashMap;
use std::time::Instant;

use attest_domain::{
    ConnectorId, EntitlementData, EntitlementId, EntitlementKey, GrantData, PrincipalData, PrincipalId, ResourceData,
    ResourceId, ResourceKind, SyncCounts, SyncMode, SyncRun, SyncTrigger,
};
use attest_store::{IdSet, Store, SyncRunFinish};
use chrono::{DateTime, Utc};

use crate::{ObservedEntitlement, ObservedGrant, SyncError};

/// Grants are written in batches of this many: large enough to amortise a statement, small
/// enough that a crash loses little and memory stays flat.
const GRANT_BATCH: usize = 50_000;

/// Unresolvable observations are counted; this many are named in the run's notes.
const NOTED_EXAMPLES: usize = 5;

/// What a finished sync did.
#[derive(Debug, Clone)]
pub struct SyncSummary {
    pub run: SyncRun,
    /// Grants whose principal or entitlement was not part of the sync (e.g. out of scope).
    pub unresolved_grants: u64,
    /// Seconds spent writing each kind (`principals`, `grants`, `sweep`, `inherited`...).
    pub timings: HashMap<&'static str, f64>,
}

/// Receives one sync's observations. Create with [`SyncSink::begin`], feed, then
/// [`SyncSink::finish`] (or [`SyncSink::fail`]).
pub struct SyncSink {
    store: Store,
    connector: ConnectorId,
    run: SyncRun,
    now: DateTime<Utc>,
    principals: HashMap<String, PrincipalId>,
    resources: HashMap<(ResourceKind, String), ResourceId>,
    entitlements: HashMap<(ResourceId, EntitlementKey), EntitlementId>,
    pending_grants: Vec<GrantData>,
    seen_grants: IdSet,
    counts: SyncCounts,
    requests: u64,
    resource_units: u64,
    notes: Vec<String>,
    unresolved: u64,
    unresolved_examples: Vec<String>,
    /// Time spent writing, per kind, for benchmarks and tracing.
    timings: HashMap<&'static str, f64>,
}

impl SyncSink {
    /// Records the start of a run and loads the id maps observations are resolved with.
    pub async fn begin(
        store: &Store,
        connector: ConnectorId,
        mode: SyncMode,
        trigger: SyncTrigger,
        now: DateTime<Utc>,
    ) -> Result<SyncSink, SyncError> {
        let run = store.start_sync_run(connector, mode, trigger, now).await?;
        tracing::info!(connector = %connector, run = %run.id, mode = %mode, "sync started");
        Ok(SyncSink {
            principals: store.principal_ids_by_external_id(connector).await?,
            resources: store.resource_ids_by_external_id(connector).await?,
            entitlements: store.entitlement_ids_by_key(connector).await?,
            store: store.clone(),
            connector,
            run,
            now,
            pending_grants: Vec::with_capacity(GRANT_BATCH),
            seen_grants: IdSet::new(),
            counts: SyncCounts::default(),
            requests: 0,
            resource_units: 0,
            notes: Vec::new(),
            unresolved: 0,
            unresolved_examples: Vec::new(),
            timings: HashMap::new(),
        })
    }

    /// The run being recorded.
    pub fn run(&self) -> &SyncRun {
        &self.run
    }

    /// Upserts a batch of principals.
    pub async fn put_principals(&mut self, rows: &[PrincipalData]) -> Result<(), SyncError> {
        let started = Instant::now();
        let upserted = self.store.upsert_principals(self.connector, rows, self.now).await?;
        for (row, id) in rows.iter().zip(upserted.ids) {
            self.principals.insert(row.external_id.clone(), id);
        }
        self.counts.principals.absorb(upserted.counts);
        self.time("principals", started);
        Ok(())
    }

    /// Upserts a batch of resources.
    pub async fn put_resources(&mut self, rows: &[ResourceData]) -> Result<(), SyncError> {
        let started = Instant::now();
        let upserted = self.store.upsert_resources(self.connector, rows, self.now).await?;
        for (row, id) in rows.iter().zip(upserted.ids) {
            self.resources.insert((row.kind, row.external_id.clone()), id);
        }
        self.counts.resources.absorb(upserted.counts);
        self.time("resources", started);
        Ok(())
    }

    /// Upserts a batch of entitlements; their resources must have been put already.
    pub async fn put_entitlements(&mut self, rows: &[ObservedEntitlement]) -> Result<(), SyncError> {
        let started = Instant::now();
        let mut data = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(resource_id) = self.resources.get(&(row.resource_kind, row.resource_external_id.clone())) else {
                self.unresolved(format!(
                    "entitlement {} of unknown {} {}",
                    row.key, row.resource_kind, row.resource_external_id
                ));
                continue;
            };
            data.push(EntitlementData {
                resource_id: *resource_id,
                key: row.key.clone(),
                display_name: row.display_name.clone(),
                description: row.description.clone(),
            });
        }
        let upserted = self.store.upsert_entitlements(self.connector, &data, self.now).await?;
        for (row, id) in data.into_iter().zip(upserted.ids) {
            self.entitlements.insert((row.resource_id, row.key), id);
        }
        self.counts.entitlements.absorb(upserted.counts);
        self.time("entitlements", started);
        Ok(())
    }

    /// Queues direct grants; they are written in batches.
    pub async fn put_grants(&mut self, rows: &[ObservedGrant]) -> Result<(), SyncError> {
        for row in rows {
            let resolved = self
                .resources
                .get(&(row.resource_kind, row.resource_external_id.clone()))
                .and_then(|r| self.entitlements.get(&(*r, row.key.clone())))
                .zip(self.principals.get(&row.principal_external_id));
            let Some((entitlement_id, principal_id)) = resolved else {
                self.unresolved(format!(
                    "grant of {} on {} {} to {}",
                    row.key, row.resource_kind, row.resource_external_id, row.principal_external_id
                ));
                continue;
            };
            self.pending_grants.push(GrantData {
                entitlement_id: *entitlement_id,
                principal_id: *principal_id,
                scope: row.scope.clone(),
                external_ref: row.external_ref.clone(),
                expires_at: row.expires_at,
            });
            if self.pending_grants.len() >= GRANT_BATCH {
                self.flush_grants().await?;
            }
        }
        Ok(())
    }

    /// Counts requests made to the directory and their throttling cost.
    pub fn record_requests(&mut self, requests: u64, resource_units: u64) {
        self.requests += requests;
        self.resource_units += resource_units;
    }

    /// Adds a note to the run record (a fallback taken, a feature skipped).
    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        tracing::info!(run = %self.run.id, "{note}");
        self.notes.push(note);
    }

    /// Seconds spent writing each kind so far (`principals`, `grants`, `sweep`, `inherited`...).
    pub fn timings(&self) -> &HashMap<&'static str, f64> {
        &self.timings
    }

    /// Writes what is queued; on a full sync ends the grants that were not seen; derives
    /// inherited grants; records the run as succeeded.
    pub async fn finish(mut self) -> Result<SyncSummary, SyncError> {
        self.flush_grants().await?;
        if self.run.mode == SyncMode::Full {
            let started = Instant::now();
            let last_synced = self.store.get_connector(self.connector).await?.last_synced_at();
            self.counts.grants.removed += self
                .store
                .end_grants_not_seen(self.connector, &self.seen_grants, self.run.started_at, self.now, last_synced)
                .await?;
            self.time("sweep", started);
        }
        if self.inherited_may_have_changed().await? {
            let started = Instant::now();
            self.counts.inherited_grants = self.store.recompute_inherited_grants(self.connector, self.now).await?;
            self.time("inherited", started);
        }
        if self.unresolved > 0 {
            let examples = self.unresolved_examples.join("; ");
            self.note(format!(
                "{} observation(s) referred to objects outside the sync and were skipped, e.g. {examples}",
                self.unresolved
            ));
        }
        let finish = SyncRunFinish {
            counts: self.counts,
            requests: self.requests,
            resource_units: self.resource_units,
            error: None,
            notes: std::mem::take(&mut self.notes),
        };
        let run = self.store.finish_sync_run(self.run.id, finish, self.now).await?;
        tracing::info!(run = %run.id, counts = ?run.counts, "sync finished");
        Ok(SyncSummary { run, unresolved_grants: self.unresolved, timings: self.timings })
    }

    /// Records the run as failed. What was written stays (it was true when read); nothing is
    /// swept, because a partial snapshot proves nothing about what is missing from it.
    pub async fn fail(mut self, error: &SyncError) -> Result<SyncRun, SyncError> {
        let finish = SyncRunFinish {
            counts: self.counts,
            requests: self.requests,
            resource_units: self.resource_units,
            error: Some(error.to_string()),
            notes: std::mem::take(&mut self.notes),
        };
        tracing::warn!(run = %self.run.id, %error, "sync failed");
        Ok(self.store.finish_sync_run(self.run.id, finish, self.now).await?)
    }

    async fn flush_grants(&mut self) -> Result<(), SyncError> {
        if self.pending_grants.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let batch = std::mem::take(&mut self.pending_grants);
        let upserted = self.store.upsert_grants(self.connector, &batch, self.now).await?;
        for id in &upserted.existing {
            self.seen_grants.insert(id.0);
        }
        self.counts.grants.absorb(upserted.counts);
        self.pending_grants = batch;
        self.pending_grants.clear();
        self.time("grants", started);
        Ok(())
    }

    /// Inherited grants follow from the current direct grants and which principals are groups.
    /// When this run changed neither, and the previous run finished (so it derived them), they
    /// are already right and deriving them again would only re-read every grant.
    async fn inherited_may_have_changed(&self) -> Result<bool, SyncError> {
        let c = &self.counts;
        let graph_changed = c.grants.written()
            + c.principals.added
            + c.principals.removed
            + c.resources.written()
            + c.entitlements.written()
            > 0;
        if graph_changed {
            return Ok(true);
        }
        let runs = self.store.list_sync_runs(self.connector, 2).await?;
        let previous = runs.iter().find(|r| r.id != self.run.id);
        Ok(previous.is_none_or(|r| r.status != attest_domain::SyncStatus::Succeeded))
    }

    fn unresolved(&mut self, what: String) {
        self.unresolved += 1;
        if self.unresolved_examples.len() < NOTED_EXAMPLES {
            self.unresolved_examples.push(what);
        }
    }

    fn time(&mut self, what: &'static str, started: Instant) {
        *self.timings.entry(what).or_default() += started.elapsed().as_secs_f64();
    }
}

#[cfg(test)]
mod tests;

//! The sync sink: resolves, batches, writes, sweeps and records.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use attest_domain::{
    ConnectorId, EntitlementData, EntitlementId, EntitlementKey, GrantData, PrincipalData, PrincipalId, ResourceData,
    ResourceId, ResourceKind, SyncCounts, SyncMode, SyncRun, SyncTrigger,
};
use attest_store::{IdSet, KeyFilter, Store, SyncRunFinish, SyncedTable};
use chrono::{DateTime, Utc};

use crate::{ObservedEntitlement, ObservedGrant, SyncError};

/// Grants are written in batches of this many: large enough to amortise a statement, small
/// enough that a crash loses little and memory stays flat.
const GRANT_BATCH: usize = 50_000;

/// Unresolvable observations are counted; this many are named in the run's notes.
const NOTED_EXAMPLES: usize = 5;

/// Called with the run's counts so far after each batch is written (a progress bar).
pub type ProgressFn = std::sync::Arc<dyn Fn(&SyncCounts) + Send + Sync>;

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
    /// Grants whose principal was not known yet when they arrived (a group nested in one
    /// read later); retried before the run finishes.
    deferred_grants: Vec<ObservedGrant>,
    seen_grants: IdSet,
    seen_principals: IdSet,
    seen_resources: IdSet,
    seen_entitlements: IdSet,
    /// Delta runs: entitlement-key patterns whose grants this run re-read completely.
    snapshot_keys: Vec<&'static str>,
    /// Full runs: entitlement-key patterns whose grants could not be read (a permission or
    /// licence missing), so their absence proves nothing.
    unread_keys: Vec<&'static str>,
    /// Full runs: resource kinds that could not be read at all.
    unread_kinds: Vec<ResourceKind>,
    cursors: BTreeMap<String, String>,
    /// When anything of the connector was last observed, before this run.
    last_synced: Option<DateTime<Utc>>,
    counts: SyncCounts,
    requests: u64,
    resource_units: u64,
    notes: Vec<String>,
    unresolved: u64,
    unresolved_examples: Vec<String>,
    /// Time spent writing, per kind, for benchmarks and tracing.
    timings: HashMap<&'static str, f64>,
    progress: Option<ProgressFn>,
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
        let run = store.syncs().start_sync_run(connector, mode, trigger, now).await?;
        tracing::info!(connector = %connector, run = %run.id, mode = %mode, "sync started");
        let last_synced = store.connectors().get_connector(connector).await?.last_synced_at();
        Ok(SyncSink {
            // Lifecycle events describe changes in the directory. Until one sync has succeeded,
            // everything is new to Attest only, so none are written.
            store: if last_synced.is_some() { store.recording(run.id) } else { store.clone() },
            last_synced,
            cursors: store.syncs().list_sync_cursors(connector).await?,
            principals: store.principals().principal_ids_by_external_id(connector).await?,
            resources: store.resources().resource_ids_by_external_id(connector).await?,
            entitlements: store.resources().entitlement_ids_by_key(connector).await?,
            connector,
            run,
            now,
            pending_grants: Vec::with_capacity(GRANT_BATCH),
            deferred_grants: Vec::new(),
            seen_grants: IdSet::new(),
            seen_principals: IdSet::new(),
            seen_resources: IdSet::new(),
            seen_entitlements: IdSet::new(),
            snapshot_keys: Vec::new(),
            unread_keys: Vec::new(),
            unread_kinds: Vec::new(),
            counts: SyncCounts::default(),
            requests: 0,
            resource_units: 0,
            notes: Vec::new(),
            unresolved: 0,
            unresolved_examples: Vec::new(),
            timings: HashMap::new(),
            progress: None,
        })
    }

    /// The run being recorded.
    pub fn run(&self) -> &SyncRun {
        &self.run
    }

    /// Reports the counts so far to `progress` after every batch written.
    pub fn on_progress(&mut self, progress: ProgressFn) {
        self.progress = Some(progress);
    }

    /// Full snapshot or delta.
    pub fn mode(&self) -> SyncMode {
        self.run.mode
    }

    /// The store the sink writes to (for reads a connector needs, e.g. stored attributes to
    /// merge a partial delta object into).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The connector being synced.
    pub fn connector(&self) -> ConnectorId {
        self.connector
    }

    /// The delta cursor stored for `object_type` by the last successful run, if any.
    pub fn cursor(&self, object_type: &str) -> Option<&str> {
        self.cursors.get(object_type).map(String::as_str)
    }

    /// Sets the cursor the next delta run starts from; stored only when this run succeeds.
    pub fn set_cursor(&mut self, object_type: &str, cursor: String) {
        self.cursors.insert(object_type.to_owned(), cursor);
    }

    /// Forgets every cursor (the next run must be a full one); stored when this run ends.
    pub fn clear_cursors(&mut self) {
        self.cursors.clear();
    }

    /// Declares that this run re-reads every grant of the entitlements whose key matches the
    /// SQL `LIKE` pattern (`role:%`, `active`): at the end, current ones not seen are ended.
    /// A full run sweeps everything anyway.
    pub fn snapshot_grants_of(&mut self, key_pattern: &'static str) {
        if !self.snapshot_keys.contains(&key_pattern) {
            self.snapshot_keys.push(key_pattern);
        }
    }

    /// This run could not read the grants of entitlements matching `key_pattern`: a full
    /// sweep leaves them as they were instead of ending them.
    pub fn could_not_read_grants(&mut self, key_pattern: &'static str) {
        self.snapshot_keys.retain(|k| *k != key_pattern);
        if !self.unread_keys.contains(&key_pattern) {
            self.unread_keys.push(key_pattern);
        }
    }

    /// This run could not read resources of `kind`: a full sweep leaves them, their
    /// entitlements and grants as they were.
    pub fn could_not_read_resources(&mut self, kind: ResourceKind, key_patterns: &[&'static str]) {
        self.unread_kinds.push(kind);
        for pattern in key_patterns {
            self.could_not_read_grants(pattern);
        }
    }

    /// Whether a principal with this external id is in the graph (synced or seen this run).
    pub fn knows_principal(&self, external_id: &str) -> bool {
        self.principals.contains_key(external_id)
    }

    /// Upserts a batch of principals.
    pub async fn put_principals(&mut self, rows: &[PrincipalData]) -> Result<(), SyncError> {
        let started = Instant::now();
        let upserted = self.store.principals().upsert_principals(self.connector, rows, self.now).await?;
        for (row, id) in rows.iter().zip(upserted.ids) {
            self.seen_principals.insert(id.0);
            self.principals.insert(row.external_id.clone(), id);
        }
        self.counts.principals.absorb(upserted.counts);
        self.time("principals", started);
        Ok(())
    }

    /// Upserts a batch of resources.
    pub async fn put_resources(&mut self, rows: &[ResourceData]) -> Result<(), SyncError> {
        let started = Instant::now();
        let upserted = self.store.resources().upsert_resources(self.connector, rows, self.now).await?;
        for (row, id) in rows.iter().zip(upserted.ids) {
            self.seen_resources.insert(id.0);
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
        let upserted = self.store.resources().upsert_entitlements(self.connector, &data, self.now).await?;
        for (row, id) in data.into_iter().zip(upserted.ids) {
            self.seen_entitlements.insert(id.0);
            self.entitlements.insert((row.resource_id, row.key), id);
        }
        self.counts.entitlements.absorb(upserted.counts);
        self.time("entitlements", started);
        Ok(())
    }

    /// Queues direct grants; they are written in batches. A grant whose principal is not
    /// known yet is held back until the end of the run, when it may have been read since.
    pub async fn put_grants(&mut self, rows: &[ObservedGrant]) -> Result<(), SyncError> {
        for row in rows {
            match self.resolve(row) {
                Some(grant) => self.pending_grants.push(grant),
                None if self.resolves_entitlement(row) => self.deferred_grants.push(row.clone()),
                None => self.unresolved(describe(row)),
            }
            if self.pending_grants.len() >= GRANT_BATCH {
                self.flush_grants().await?;
            }
        }
        Ok(())
    }

    /// Ends the current grants matching `rows` (a delta reported them removed). Removals of
    /// grants the graph does not have are ignored: delta replays are harmless.
    pub async fn remove_grants(&mut self, rows: &[ObservedGrant]) -> Result<(), SyncError> {
        let resolved: Vec<GrantData> = rows.iter().filter_map(|row| self.resolve(row)).collect();
        if resolved.is_empty() {
            return Ok(());
        }
        // Additions queued earlier in the run happened first.
        self.flush_grants().await?;
        let started = Instant::now();
        let ended = self.store.grants().end_grants_matching(&resolved, self.now, self.last_synced).await?;
        self.counts.grants.removed += ended;
        self.time("grants", started);
        Ok(())
    }

    /// The directory deleted these principals (or they left the sync's scope): they are
    /// marked deleted and every grant they hold ends.
    pub async fn remove_principals(&mut self, external_ids: &[String]) -> Result<(), SyncError> {
        let ids: Vec<PrincipalId> = external_ids.iter().filter_map(|e| self.principals.get(e).copied()).collect();
        if ids.is_empty() {
            return Ok(());
        }
        self.flush_grants().await?;
        let started = Instant::now();
        self.counts.principals.removed +=
            self.store.principals().mark_principals_deleted(self.connector, external_ids, self.now).await?;
        self.counts.grants.removed +=
            self.store.grants().end_grants_involving(self.connector, &ids, &[], self.now, self.last_synced).await?;
        // Grants observed later in the run must not resolve to them (a group still listing a
        // guest the scope now leaves out).
        for external_id in external_ids {
            self.principals.remove(external_id);
        }
        self.time("principals", started);
        Ok(())
    }

    /// The directory deleted these resources: they are marked deleted and every grant on
    /// them ends.
    pub async fn remove_resources(&mut self, kind: ResourceKind, external_ids: &[String]) -> Result<(), SyncError> {
        let ids: Vec<ResourceId> =
            external_ids.iter().filter_map(|e| self.resources.get(&(kind, e.clone())).copied()).collect();
        if ids.is_empty() {
            return Ok(());
        }
        self.flush_grants().await?;
        let started = Instant::now();
        self.counts.resources.removed +=
            self.store.syncs().mark_resources_deleted(self.connector, kind, external_ids, self.now).await?;
        self.counts.grants.removed +=
            self.store.grants().end_grants_involving(self.connector, &[], &ids, self.now, self.last_synced).await?;
        self.time("resources", started);
        Ok(())
    }

    /// A resource now offers exactly `keys` (e.g. an application's roles changed): its other
    /// entitlements are marked deleted and the grants of them end.
    pub async fn retain_entitlements(
        &mut self,
        kind: ResourceKind,
        external_id: &str,
        keys: &[EntitlementKey],
    ) -> Result<(), SyncError> {
        let Some(resource) = self.resources.get(&(kind, external_id.to_owned())).copied() else {
            return Ok(());
        };
        self.flush_grants().await?;
        let removed = self.store.syncs().mark_entitlements_deleted_except(resource, keys, self.now).await?;
        if removed > 0 {
            self.counts.entitlements.removed += removed;
            self.counts.grants.removed += self
                .store
                .grants()
                .end_grants_of_deleted_entitlements(self.connector, resource, self.now, self.last_synced)
                .await?;
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

    /// Writes what is queued; ends what the run proves gone (on a full sync: every grant,
    /// principal, resource and entitlement not seen; on a delta: the grants of the kinds it
    /// re-read completely, see [`SyncSink::snapshot_grants_of`]); derives inherited grants;
    /// stores the delta cursors; records the run as succeeded, finished at `finished_at`.
    pub async fn finish(mut self, finished_at: DateTime<Utc>) -> Result<SyncSummary, SyncError> {
        let deferred = std::mem::take(&mut self.deferred_grants);
        for row in &deferred {
            match self.resolve(row) {
                Some(grant) => self.pending_grants.push(grant),
                None => self.unresolved(describe(row)),
            }
        }
        self.flush_grants().await?;
        let started = Instant::now();
        let keys = match self.run.mode {
            SyncMode::Full if self.unread_keys.is_empty() => Some(KeyFilter::All),
            SyncMode::Full => Some(KeyFilter::Except(&self.unread_keys)),
            SyncMode::Delta if self.snapshot_keys.is_empty() => None,
            SyncMode::Delta => Some(KeyFilter::Only(&self.snapshot_keys)),
        };
        if let Some(keys) = keys {
            self.counts.grants.removed += self
                .store
                .grants()
                .end_grants_not_seen(
                    self.connector,
                    &self.seen_grants,
                    self.run.started_at,
                    self.now,
                    self.last_synced,
                    keys,
                )
                .await?;
        }
        if self.run.mode == SyncMode::Full {
            // What could not be read counts as seen: its absence proves nothing.
            let mut unread = IdSet::new();
            for ((kind, _), id) in &self.resources {
                if self.unread_kinds.contains(kind) {
                    unread.insert(id.0);
                    self.seen_resources.insert(id.0);
                }
            }
            for ((resource, _), id) in &self.entitlements {
                if unread.contains(resource.0) {
                    self.seen_entitlements.insert(id.0);
                }
            }
            for (table, seen) in [
                (SyncedTable::Principals, &self.seen_principals),
                (SyncedTable::Resources, &self.seen_resources),
                (SyncedTable::Entitlements, &self.seen_entitlements),
            ] {
                let removed = self.store.syncs().mark_unseen_deleted(self.connector, table, seen, self.now).await?;
                match table {
                    SyncedTable::Principals => self.counts.principals.removed += removed,
                    SyncedTable::Resources => self.counts.resources.removed += removed,
                    SyncedTable::Entitlements => self.counts.entitlements.removed += removed,
                }
            }
        }
        self.time("sweep", started);
        if self.inherited_may_have_changed().await? {
            let started = Instant::now();
            self.counts.inherited_grants =
                self.store.grants().recompute_inherited_grants(self.connector, self.now).await?;
            self.time("inherited", started);
        }
        // Owners named by address become the users they name, once their directory is here.
        self.store.connectors().resolve_connector_owners(self.connector).await?;
        // Someone disabled or deleted in the directory is signed out of Attest too, and their
        // account marked inactive; names and addresses follow the directory.
        if self.counts.principals.written() > 0 {
            self.store.web().sync_profiles(self.now).await?;
        }
        if self.unresolved > 0 {
            let examples = self.unresolved_examples.join("; ");
            self.note(format!(
                "{} observation(s) referred to objects outside the sync and were skipped, e.g. {examples}",
                self.unresolved
            ));
        }
        self.store.syncs().replace_sync_cursors(self.connector, &self.cursors, self.now).await?;
        let finish = SyncRunFinish {
            counts: self.counts,
            requests: self.requests,
            resource_units: self.resource_units,
            error: None,
            notes: std::mem::take(&mut self.notes),
        };
        let run = self.store.syncs().finish_sync_run(self.run.id, finish, finished_at).await?;
        tracing::info!(run = %run.id, counts = %run.counts, "sync finished");
        Ok(SyncSummary { run, unresolved_grants: self.unresolved, timings: self.timings })
    }

    /// Records the run as failed. What was written stays (it was true when read); nothing is
    /// swept, because a partial snapshot proves nothing about what is missing from it.
    pub async fn fail(mut self, error: &SyncError, finished_at: DateTime<Utc>) -> Result<SyncRun, SyncError> {
        let finish = SyncRunFinish {
            counts: self.counts,
            requests: self.requests,
            resource_units: self.resource_units,
            error: Some(error.to_string()),
            notes: std::mem::take(&mut self.notes),
        };
        tracing::warn!(run = %self.run.id, %error, "sync failed");
        Ok(self.store.syncs().finish_sync_run(self.run.id, finish, finished_at).await?)
    }

    async fn flush_grants(&mut self) -> Result<(), SyncError> {
        if self.pending_grants.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let batch = std::mem::take(&mut self.pending_grants);
        let upserted = self.store.grants().upsert_grants(self.connector, &batch, self.now).await?;
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
    /// When this run changed neither, the previous run finished (so it derived them) and they
    /// were derived by this build's rules, they are already right and deriving them again
    /// would only re-read every grant.
    async fn inherited_may_have_changed(&self) -> Result<bool, SyncError> {
        let c = &self.counts;
        let graph_changed = c.grants.written()
            + c.principals.added
            + c.principals.removed
            + c.resources.written()
            + c.entitlements.written()
            > 0;
        if graph_changed || !self.store.grants().inherited_rules_are_current(self.connector).await? {
            return Ok(true);
        }
        let runs = self.store.syncs().list_sync_runs(self.connector, 2).await?;
        let previous = runs.iter().find(|r| r.id != self.run.id);
        Ok(previous.is_none_or(|r| r.status != attest_domain::SyncStatus::Succeeded))
    }

    /// The grant's graph ids, when its entitlement and principal are both known.
    fn resolve(&self, row: &ObservedGrant) -> Option<GrantData> {
        let entitlement = self
            .resources
            .get(&(row.resource_kind, row.resource_external_id.clone()))
            .and_then(|r| self.entitlements.get(&(*r, row.key.clone())))?;
        let principal = self.principals.get(&row.principal_external_id)?;
        Some(GrantData {
            entitlement_id: *entitlement,
            principal_id: *principal,
            scope: row.scope.clone(),
            external_ref: row.external_ref.clone(),
            expires_at: row.expires_at,
            end_known: row.end_known,
        })
    }

    fn resolves_entitlement(&self, row: &ObservedGrant) -> bool {
        self.resources
            .get(&(row.resource_kind, row.resource_external_id.clone()))
            .is_some_and(|r| self.entitlements.contains_key(&(*r, row.key.clone())))
    }

    fn unresolved(&mut self, what: String) {
        self.unresolved += 1;
        if self.unresolved_examples.len() < NOTED_EXAMPLES {
            self.unresolved_examples.push(what);
        }
    }

    fn time(&mut self, what: &'static str, started: Instant) {
        if let Some(progress) = &self.progress {
            progress(&self.counts);
        }
        *self.timings.entry(what).or_default() += started.elapsed().as_secs_f64();
    }
}

fn describe(row: &ObservedGrant) -> String {
    format!(
        "grant of {} on {} {} to {}",
        row.key, row.resource_kind, row.resource_external_id, row.principal_external_id
    )
}

#[cfg(test)]
mod tests;

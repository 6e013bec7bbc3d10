//! Sync runs: the record of every time a connector read its directory.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ConnectorId, SyncRunId};
use crate::macros::string_enum;

string_enum! {
    /// Full snapshot or incremental.
    pub enum SyncMode as "sync mode" {
        /// Everything read; what was not seen is ended.
        Full => "full",
        /// Only changes since the stored delta cursors.
        Delta => "delta",
    }
}

string_enum! {
    /// What started a sync.
    pub enum SyncTrigger as "sync trigger" {
        /// The background schedule.
        Schedule => "schedule",
        /// "Sync now" in the web UI or API.
        Manual => "manual",
        /// `attest sync` on the command line.
        Cli => "cli",
        /// A delta sync that had to fall back to a full one.
        Fallback => "fallback",
        /// A benchmark scenario.
        Bench => "bench",
    }
}

string_enum! {
    /// How a run ended (or that it has not yet).
    pub enum SyncStatus as "sync status" {
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
    }
}

/// Added / changed / removed for one kind of object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCounts {
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
    /// Seen and identical to what was stored.
    pub unchanged: u64,
}

impl KindCounts {
    /// Adds another batch's figures to these.
    pub fn absorb(&mut self, other: KindCounts) {
        self.added += other.added;
        self.changed += other.changed;
        self.removed += other.removed;
        self.unchanged += other.unchanged;
    }

    /// Rows that were written (added, changed or ended).
    pub fn written(&self) -> u64 {
        self.added + self.changed + self.removed
    }
}

/// What a sync did, per kind of object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncCounts {
    pub principals: KindCounts,
    pub resources: KindCounts,
    pub entitlements: KindCounts,
    pub grants: KindCounts,
    /// Grants derived from group nesting.
    pub inherited_grants: KindCounts,
}

impl SyncCounts {
    /// Rows written over every kind.
    pub fn written(&self) -> u64 {
        [self.principals, self.resources, self.entitlements, self.grants, self.inherited_grants]
            .iter()
            .map(KindCounts::written)
            .sum()
    }
}

/// For people (log lines, the command line): "principals +3 ~1 -0, grants +10 ~0 -2, …"
/// (added, changed, removed), kinds with nothing written left out.
impl std::fmt::Display for SyncCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds = [
            ("principals", self.principals),
            ("resources", self.resources),
            ("entitlements", self.entitlements),
            ("grants", self.grants),
            ("inherited grants", self.inherited_grants),
        ];
        let written: Vec<String> = kinds
            .iter()
            .filter(|(_, c)| c.written() > 0)
            .map(|(name, c)| format!("{name} +{} ~{} -{}", c.added, c.changed, c.removed))
            .collect();
        if written.is_empty() { f.write_str("nothing changed") } else { f.write_str(&written.join(", ")) }
    }
}

/// One sync run, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncRun {
    pub id: SyncRunId,
    pub connector_id: ConnectorId,
    pub mode: SyncMode,
    pub trigger: SyncTrigger,
    pub status: SyncStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub counts: SyncCounts,
    /// Directory API requests made.
    pub requests: u64,
    /// Throttling cost consumed, in the directory's own units (Graph resource units).
    pub resource_units: u64,
    /// Why the run failed, when it did.
    pub error: Option<String>,
    /// Things worth knowing that were not failures (fallbacks, skipped features).
    pub notes: Vec<String>,
}

/// How a sync run's note begins when it could not read sign-in activity (no P1/P2 licence, or
/// no `AuditLog.Read.All`): whatever relies on last sign-ins then says they are unknown.
pub const SIGN_IN_ACTIVITY_SKIPPED: &str = "sign-in activity skipped";

#[cfg(test)]
mod tests {
    use super::{KindCounts, SyncCounts};

    #[test]
    fn counts_read_as_words_not_structs() {
        let counts = SyncCounts {
            principals: KindCounts { added: 3, changed: 1, removed: 0, unchanged: 9 },
            grants: KindCounts { added: 10, changed: 0, removed: 2, unchanged: 0 },
            ..SyncCounts::default()
        };
        assert_eq!(counts.to_string(), "principals +3 ~1 -0, grants +10 ~0 -2");
        assert_eq!(SyncCounts::default().to_string(), "nothing changed");
    }
}

//! Tables worked as queues (the change queue, the mail outbox): a row waits `pending` until its
//! `next_attempt_at`, then one worker holds it under a lease (`lease_owner`,
//! `lease_expires_at`) while working on it. A row whose worker died is claimed again once its
//! lease runs out. Both queues claim through [`claim`], so they cannot drift apart.

use attest_domain::time::micros;
use chrono::{DateTime, Utc};
use sea_orm::DbBackend;

use crate::sql::Sql;

/// One queue table.
pub(crate) struct Queue {
    pub table: &'static str,
    /// The state a held row is in (`in_progress`, `sending`).
    pub working: &'static str,
}

/// A claim: who takes how many rows, until when.
pub(crate) struct Claim<'a> {
    pub owner: &'a str,
    pub lease_until: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub limit: u64,
}

/// The statement claiming up to `claim.limit` due rows for `claim.owner`: pending rows whose
/// time has come and held rows whose lease ran out, oldest due first; each claim counts as an
/// attempt. `narrow` adds conditions on which rows qualify (`AND ...`). On PostgreSQL, rows
/// another worker is claiming at the same moment are skipped, not waited for. Returns every
/// column of the claimed rows.
pub(crate) fn claim(backend: DbBackend, queue: &Queue, claim: &Claim, narrow: impl FnOnce(&mut Sql)) -> Sql {
    let now = micros(claim.now);
    let (table, working) = (queue.table, queue.working);
    let mut sql = Sql::new(backend, &format!("UPDATE {table} SET state = '{working}', lease_owner = "));
    sql.value(claim.owner.to_owned()).push(", lease_expires_at = ").value(micros(claim.lease_until));
    sql.push(", attempts = attempts + 1, updated_at = ").value(now);
    sql.push(&format!(" WHERE id IN (SELECT id FROM {table} WHERE ((state = 'pending' AND next_attempt_at <= "));
    sql.value(now).push(&format!(") OR (state = '{working}' AND lease_expires_at < ")).value(now).push("))");
    narrow(&mut sql);
    sql.push(&format!(" ORDER BY next_attempt_at, id LIMIT {}", claim.limit.max(1)));
    if backend == DbBackend::Postgres {
        sql.push(" FOR UPDATE SKIP LOCKED");
    }
    sql.push(") RETURNING *");
    sql
}

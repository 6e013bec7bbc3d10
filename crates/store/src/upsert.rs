//! The part of every bulk upsert that is the same whatever the table: drop repeated keys
//! (the last occurrence wins, as when a directory replays an object), and sort a batch into
//! rows to insert, rows to update and rows already identical to what is stored.

use std::collections::HashMap;
use std::hash::Hash;

use attest_domain::KindCounts;

/// A batch sorted against what is stored.
pub(crate) struct Plan<'a, K, D> {
    /// Rows whose key is not stored yet.
    pub insert: Vec<&'a D>,
    /// Stored id and new data for rows whose data differs.
    pub update: Vec<(i64, &'a D)>,
    /// The id for every key, filled for stored rows now and for inserted rows by the caller.
    pub ids: HashMap<K, i64>,
    pub counts: KindCounts,
}

/// The last occurrence of each key, in first-seen order.
pub(crate) fn dedupe<D, K: Hash + Eq>(rows: &[D], key: impl Fn(&D) -> K) -> Vec<&D> {
    let mut last: HashMap<K, usize> = HashMap::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        last.insert(key(row), i);
    }
    let mut keep: Vec<usize> = last.into_values().collect();
    keep.sort_unstable();
    keep.into_iter().map(|i| &rows[i]).collect()
}

/// Sorts deduplicated `rows` against `stored` (key → id and stored state); `same` says whether
/// a stored state already equals an observed row (nothing to write).
pub(crate) fn plan<'a, S, D, K: Hash + Eq + Clone>(
    rows: &[&'a D],
    key: impl Fn(&D) -> K,
    stored: HashMap<K, (i64, S)>,
    same: impl Fn(&S, &D) -> bool,
) -> Plan<'a, K, D> {
    let mut plan = Plan {
        insert: Vec::new(),
        update: Vec::new(),
        ids: HashMap::with_capacity(rows.len()),
        counts: KindCounts::default(),
    };
    for row in rows {
        let k = key(row);
        match stored.get(&k) {
            None => {
                plan.insert.push(*row);
                plan.counts.added += 1;
            }
            Some((id, state)) => {
                if same(state, row) {
                    plan.counts.unchanged += 1;
                } else {
                    plan.update.push((*id, *row));
                    plan.counts.changed += 1;
                }
                plan.ids.insert(k, *id);
            }
        }
    }
    plan
}

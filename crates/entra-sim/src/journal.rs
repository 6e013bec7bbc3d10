//! The tenant's change journal: every write appends what it changed, and delta queries read
//! the journal between two versions. A delta token is just a version number (plus the query
//! it belongs to), so "changes since my token" is a slice of this journal.

use std::collections::HashMap;

use crate::tenant::Kind;

/// A relationship tracked by delta (`members@delta`, `owners@delta`, `manager@delta`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relation {
    Members,
    Owners,
    Manager,
}

impl Relation {
    /// The property name a client selects to track this relationship.
    pub fn property(self) -> &'static str {
        match self {
            Relation::Members => "members",
            Relation::Owners => "owners",
            Relation::Manager => "manager",
        }
    }
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq)]
pub enum What {
    /// Created, or restored from deleted items: every property is new to a reader.
    Created,
    /// One property changed (its Graph name).
    Updated(&'static str),
    /// Soft-deleted into `directory/deletedItems` (`@removed` reason `changed`).
    Removed,
    /// Permanently deleted (`@removed` reason `deleted`).
    Purged,
    /// A relationship gained or lost `target`.
    Linked { relation: Relation, target: String, added: bool },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub kind: Kind,
    pub id: String,
    pub what: What,
}

/// Append-only; version `n` is the state after the first `n` changes.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    /// Changes before this version were discarded: tokens older than it are refused.
    floor: u64,
    changes: Vec<Change>,
}

impl Journal {
    /// The current version.
    pub fn version(&self) -> u64 {
        self.floor + self.changes.len() as u64
    }

    /// The oldest version a delta token may still start from.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    pub fn record(&mut self, kind: Kind, id: &str, what: What) {
        self.changes.push(Change { kind, id: id.to_owned(), what });
    }

    /// Changes after version `from` up to version `to`; `None` when `from` is older than the
    /// journal keeps (the caller answers 410 and the client starts over).
    pub fn between(&self, from: u64, to: u64) -> Option<&[Change]> {
        if from < self.floor || to > self.version() || from > to {
            return None;
        }
        let start = (from - self.floor) as usize;
        let end = (to - self.floor) as usize;
        self.changes.get(start..end)
    }

    /// Forgets every change so far: all outstanding delta tokens become unusable, as when
    /// Graph resets sync state.
    pub fn reset(&mut self) {
        // One past the current version, so even a token taken just now is refused.
        self.floor = self.version() + 1;
        self.changes.clear();
    }
}

/// What changed about one object in a window of the journal.
#[derive(Debug, Clone, Default)]
pub struct Touched {
    /// Created or restored in the window: report every property.
    pub created: bool,
    pub properties: Vec<&'static str>,
    /// Relationship changes, the last one per (relation, target) winning, in first-seen order.
    pub links: Vec<(Relation, String, bool)>,
}

/// The objects of `kind` changed in `changes`, in the order they first changed.
pub fn touched(changes: &[Change], kind: Kind) -> Vec<(String, Touched)> {
    let mut order: Vec<(String, Touched)> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    let mut link_at: HashMap<(usize, Relation, &str), usize> = HashMap::new();
    for change in changes.iter().filter(|c| c.kind == kind) {
        let slot = *at.entry(&change.id).or_insert_with(|| {
            order.push((change.id.clone(), Touched::default()));
            order.len() - 1
        });
        let entry = &mut order[slot].1;
        match &change.what {
            What::Created => entry.created = true,
            What::Updated(property) => {
                if !entry.properties.contains(property) {
                    entry.properties.push(property);
                }
            }
            // The object's state when read decides between `@removed` and a live object.
            What::Removed | What::Purged => {}
            What::Linked { relation, target, added } => match link_at.get(&(slot, *relation, target.as_str())) {
                Some(&i) => entry.links[i].2 = *added,
                None => {
                    link_at.insert((slot, *relation, target), entry.links.len());
                    entry.links.push((*relation, target.clone(), *added));
                }
            },
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_last_link_wins() {
        let mut journal = Journal::default();
        journal.record(
            Kind::Group,
            "g1",
            What::Linked { relation: Relation::Members, target: "u1".into(), added: true },
        );
        journal.record(Kind::User, "u1", What::Updated("displayName"));
        journal.record(
            Kind::Group,
            "g1",
            What::Linked { relation: Relation::Members, target: "u1".into(), added: false },
        );
        journal.record(Kind::Group, "g2", What::Created);
        assert_eq!(journal.version(), 4);
        let window = journal.between(0, 4).unwrap_or_default();
        let groups = touched(window, Kind::Group);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].0, "g1");
        assert_eq!(groups[0].1.links, vec![(Relation::Members, "u1".to_owned(), false)]);
        assert!(groups[1].1.created);
        assert_eq!(touched(journal.between(1, 2).unwrap_or_default(), Kind::User)[0].1.properties, ["displayName"]);
        journal.reset();
        assert!(journal.between(0, 4).is_none(), "tokens from before a reset are refused");
        assert!(journal.between(4, 4).is_none(), "even a token of the last version");
        assert_eq!(journal.between(5, 5).map(<[Change]>::len), Some(0));
    }
}

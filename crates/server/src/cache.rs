//! What the pages read on every request, kept in memory per process so a page costs a few
//! indexed queries, not a scan of the graph.
//!
//! - Connectors (every request needs them to know the viewer's roles): re-read every
//!   [`CONNECTORS_TTL`].
//! - Whether any group is mapped to a role: looked up as often. Without one (most of the
//!   time), a request skips reading the viewer's mapped roles.
//! - The people index: the words of every user's name, user principal name and email, sorted
//!   ([`PeopleIndex`]). A search is a binary search instead of a `LIKE '%…%'` scan of the table
//!   (over 100 ms at 100,000 users). It is rebuilt when a sync has finished since it was built
//!   (checked at most every [`STAMP_TTL`]); the rows a page shows are read from the database, so
//!   they are never stale, only which people match can be, until the next check.
//! - The dashboard's totals (principals, current grants): re-counted when a sync has finished,
//!   or after [`TOTALS_TTL`] (provisioning writes grants through between syncs).
//!
//! A stale index or total is rebuilt by one request while the others keep using the previous
//! one, so a rebuild never stalls every page at once.
//!
//! Each replica keeps its own; nothing here is shared state that must agree across replicas.

use std::sync::Arc;
use std::time::{Duration, Instant};

use attest_domain::{Connector, ConnectorId, PrincipalId};
use attest_store::{Store, StoreError};
use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, RwLock};

/// How long the connectors list is reused.
const CONNECTORS_TTL: Duration = Duration::from_secs(2);
/// How often the sync stamp is re-read.
const STAMP_TTL: Duration = Duration::from_secs(1);
/// How long dashboard totals are reused without a sync.
const TOTALS_TTL: Duration = Duration::from_secs(60);

type Stamp = (i64, Option<DateTime<Utc>>);

/// Principals and current grants, counted at a sync stamp.
type Totals = (Stamp, Timed<(u64, u64)>);

/// A value and when it was read.
struct Timed<T> {
    value: T,
    at: Instant,
}

#[derive(Default)]
pub struct Caches {
    connectors: RwLock<Option<Timed<Arc<Vec<Connector>>>>>,
    mapped: RwLock<Option<Timed<bool>>>,
    stamp: Mutex<Option<Timed<Stamp>>>,
    people: RwLock<Option<Arc<PeopleIndex>>>,
    /// Held while the people index is rebuilt, so one request rebuilds and the rest wait for it.
    rebuilding: Mutex<()>,
    /// Held while the dashboard totals are recounted.
    counting: Mutex<()>,
    totals: Mutex<Option<Totals>>,
}

impl Caches {
    /// Every connector, as of at most [`CONNECTORS_TTL`] ago.
    pub async fn connectors(&self, store: &Store) -> Result<Arc<Vec<Connector>>, StoreError> {
        if let Some(cached) = self.connectors.read().await.as_ref()
            && cached.at.elapsed() < CONNECTORS_TTL
        {
            return Ok(cached.value.clone());
        }
        let fresh = Arc::new(store.connectors().list_connectors().await?);
        *self.connectors.write().await = Some(Timed { value: fresh.clone(), at: Instant::now() });
        Ok(fresh)
    }

    /// Whether any group is mapped to an Attest role, as of at most [`CONNECTORS_TTL`] ago
    /// (at once on this replica after [`Caches::forget_role_mappings`]).
    pub async fn any_role_mappings(&self, store: &Store) -> Result<bool, StoreError> {
        if let Some(cached) = self.mapped.read().await.as_ref()
            && cached.at.elapsed() < CONNECTORS_TTL
        {
            return Ok(cached.value);
        }
        let fresh = store.scim().has_role_mappings().await?;
        *self.mapped.write().await = Some(Timed { value: fresh, at: Instant::now() });
        Ok(fresh)
    }

    /// Forgets whether groups are mapped, so a mapping made or removed counts from the next
    /// request.
    pub async fn forget_role_mappings(&self) {
        *self.mapped.write().await = None;
    }

    /// Forgets the connectors read, so the next request sees a change at once (an owner bound,
    /// a connector added).
    pub async fn forget_connectors(&self) {
        *self.connectors.write().await = None;
    }

    /// The sync stamp, as of at most [`STAMP_TTL`] ago.
    async fn stamp(&self, store: &Store) -> Result<Stamp, StoreError> {
        let mut stamp = self.stamp.lock().await;
        if let Some(cached) = stamp.as_ref()
            && cached.at.elapsed() < STAMP_TTL
        {
            return Ok(cached.value);
        }
        let fresh = store.directory().sync_stamp().await?;
        *stamp = Some(Timed { value: fresh, at: Instant::now() });
        Ok(fresh)
    }

    /// The people index, rebuilt if a sync finished since it was built. One request rebuilds
    /// it; the others meanwhile use the previous one (or wait, the very first time).
    pub async fn people(&self, store: &Store) -> Result<Arc<PeopleIndex>, StoreError> {
        let stamp = self.stamp(store).await?;
        let current = self.people.read().await.clone();
        if let Some(index) = &current
            && index.stamp == stamp
        {
            return Ok(index.clone());
        }
        let _rebuilding = match (self.rebuilding.try_lock(), &current) {
            (Ok(guard), _) => guard,
            (Err(_), Some(stale)) => return Ok(stale.clone()),
            (Err(_), None) => self.rebuilding.lock().await,
        };
        // Someone else may have rebuilt it while this request waited.
        if let Some(index) = self.people.read().await.as_ref()
            && index.stamp == stamp
        {
            return Ok(index.clone());
        }
        let started = Instant::now();
        let directory = store.directory();
        let (keys, facets) = (directory.list_people_search_keys().await?, directory.list_people_facets().await?);
        let index = Arc::new(PeopleIndex::build(keys, stamp).with_facets(facets));
        tracing::debug!(
            people = index.people.len(),
            words = index.words.len(),
            ms = started.elapsed().as_millis() as u64,
            "people index built"
        );
        *self.people.write().await = Some(index.clone());
        Ok(index)
    }

    /// Principals and current grants over `connectors`. Counting a large graph takes a while
    /// (half a second at 1.7 million grants), so one request recounts after a sync or when the
    /// totals are old, and the others meanwhile get the previous totals.
    pub async fn totals(&self, store: &Store, connectors: &[ConnectorId]) -> Result<(u64, u64), StoreError> {
        let stamp = self.stamp(store).await?;
        let all = self.connectors(store).await?;
        if connectors.len() != all.len() {
            // A viewer who reads only some connectors gets theirs counted directly.
            return count(store, connectors).await;
        }
        let cached = self.totals.lock().await.as_ref().map(|(s, t)| (*s, t.value, t.at.elapsed()));
        match cached {
            Some((at, value, age)) if at == stamp && age < TOTALS_TTL => return Ok(value),
            _ => {}
        }
        let _counting = match (self.counting.try_lock(), cached) {
            (Ok(guard), _) => guard,
            (Err(_), Some((_, stale, _))) => return Ok(stale),
            (Err(_), None) => self.counting.lock().await,
        };
        if let Some((at, cached)) = self.totals.lock().await.as_ref()
            && *at == stamp
            && cached.at.elapsed() < TOTALS_TTL
        {
            return Ok(cached.value);
        }
        let ids: Vec<ConnectorId> = all.iter().map(|c| c.id).collect();
        let value = count(store, &ids).await?;
        *self.totals.lock().await = Some((stamp, Timed { value, at: Instant::now() }));
        Ok(value)
    }
}

async fn count(store: &Store, connectors: &[ConnectorId]) -> Result<(u64, u64), StoreError> {
    let (mut principals, mut grants) = (0, 0);
    for id in connectors {
        principals += store.principals().count_principals(*id).await?;
        grants += store.grants().count_current_grants(*id).await?.values().sum::<u64>();
    }
    Ok((principals, grants))
}

/// Every user's words (from name, user principal name and email), sorted for prefix search.
///
/// A person matches a query when every word of the query begins one of their words, in any
/// order and case: "ada", "lovel", "ada.l@contoso", "lovelace ada" all find Ada Lovelace. That
/// is how Entra's own people search behaves (it matches the start of names and addresses), and
/// it is a binary search plus the matches, not a scan: a few hundred microseconds for 100,000
/// people.
pub struct PeopleIndex {
    stamp: Stamp,
    /// People in name order (position = rank in the listing).
    people: Vec<(PrincipalId, ConnectorId)>,
    /// What the listing filters on, by position (see [`PeopleFilter`]).
    facets: Vec<Facets>,
    /// Every department, once, in order (the filter's choices).
    departments: Vec<String>,
    /// Every word of every person, concatenated; [`Word`]s point into it.
    text: String,
    /// Sorted by their text.
    words: Vec<Word>,
}

/// A person's department (lowercase), whether they are a guest, whether sign-in is blocked.
#[derive(Clone, Default)]
struct Facets {
    department: Option<Box<str>>,
    guest: bool,
    blocked: bool,
}

/// Narrowing the people listing, and its order.
#[derive(Debug, Clone, Default)]
pub struct PeopleFilter {
    /// Exactly this department (any case).
    pub department: Option<String>,
    /// `Some(true)`: guests only; `Some(false)`: members only.
    pub guests: Option<bool>,
    /// `Some(true)`: only those whose sign-in is blocked.
    pub blocked: Option<bool>,
    /// Names Z to A.
    pub descending: bool,
}

#[derive(Clone, Copy)]
struct Word {
    start: u32,
    len: u32,
    /// The person's position in `people`.
    person: u32,
}

/// The lowercase words of `text`: runs of letters and digits.
fn words_of(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

impl PeopleIndex {
    fn build(keys: Vec<attest_store::PersonKeys>, stamp: Stamp) -> PeopleIndex {
        let mut keys = keys;
        keys.sort_by(|a, b| a.2.cmp(&b.2).then(a.0.cmp(&b.0)));
        let mut text = String::new();
        let mut words = Vec::new();
        let mut people = Vec::with_capacity(keys.len());
        for (person, (id, connector, name, upn, email)) in keys.into_iter().enumerate() {
            people.push((PrincipalId(id), ConnectorId(connector)));
            let mut own: Vec<String> = words_of(&name)
                .chain(upn.as_deref().map(words_of).into_iter().flatten())
                .chain(email.as_deref().map(words_of).into_iter().flatten())
                .collect();
            own.sort_unstable();
            own.dedup();
            for word in own {
                let (Ok(start), Ok(len), Ok(person)) =
                    (u32::try_from(text.len()), u32::try_from(word.len()), u32::try_from(person))
                else {
                    continue;
                };
                text.push_str(&word);
                words.push(Word { start, len, person });
            }
        }
        let slice = |w: &Word| &text[w.start as usize..(w.start + w.len) as usize];
        words.sort_unstable_by(|a, b| slice(a).cmp(slice(b)).then(a.person.cmp(&b.person)));
        let facets = vec![Facets::default(); people.len()];
        PeopleIndex { stamp, people, facets, departments: Vec::new(), text, words }
    }

    /// The index with what its listing filters on.
    fn with_facets(mut self, facets: Vec<attest_store::PersonFacets>) -> PeopleIndex {
        let position: std::collections::HashMap<i64, usize> =
            self.people.iter().enumerate().map(|(i, (id, _))| (id.0, i)).collect();
        // One choice per department whatever its case, as first seen.
        let mut departments = std::collections::BTreeMap::new();
        for f in facets {
            let Some(&i) = position.get(&f.id) else { continue };
            let department = f.department.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty());
            if let Some(d) = &department {
                departments.entry(d.to_lowercase()).or_insert_with(|| d.clone());
            }
            self.facets[i] = Facets {
                department: department.map(|d| d.to_lowercase().into_boxed_str()),
                guest: f.user_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("guest")),
                blocked: f.account_enabled == Some(false),
            };
        }
        self.departments = departments.into_values().collect();
        self
    }

    /// Every department, once, in order.
    pub fn departments(&self) -> &[String] {
        &self.departments
    }

    fn passes(&self, position: usize, filter: &PeopleFilter) -> bool {
        let Some(f) = self.facets.get(position) else { return true };
        filter.department.as_deref().is_none_or(|d| f.department.as_deref() == Some(d.trim().to_lowercase().as_str()))
            && filter.guests.is_none_or(|g| f.guest == g)
            && filter.blocked.is_none_or(|b| f.blocked == b)
    }

    fn word(&self, w: &Word) -> &str {
        &self.text[w.start as usize..(w.start + w.len) as usize]
    }

    /// Positions (name order) of the people with a word starting with `prefix`.
    fn starting_with(&self, prefix: &str) -> Vec<u32> {
        let first = self.words.partition_point(|w| self.word(w) < prefix);
        let mut found: Vec<u32> =
            self.words[first..].iter().take_while(|w| self.word(w).starts_with(prefix)).map(|w| w.person).collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    /// The ids of people matching `query` (everyone when it is empty) in the connectors
    /// `scope` allows and passing `filter`, `limit` from `offset`, in the filter's name order;
    /// and how many match in all.
    pub fn search(
        &self,
        query: &str,
        scope: Option<&[ConnectorId]>,
        filter: &PeopleFilter,
        limit: usize,
        offset: usize,
    ) -> (Vec<PrincipalId>, u64) {
        let mut query_words: Vec<String> = words_of(query).collect();
        // The longest word first: the fewest people to intersect.
        query_words.sort_by_key(|w| std::cmp::Reverse(w.len()));
        let positions: Box<dyn Iterator<Item = u32>> = match query_words.split_first() {
            None if query.trim().is_empty() => Box::new(0..u32::try_from(self.people.len()).unwrap_or(u32::MAX)),
            // Only punctuation: nothing to match.
            None => Box::new(std::iter::empty()),
            Some((first, rest)) => {
                let mut found = self.starting_with(first);
                for word in rest {
                    let other = self.starting_with(word);
                    found.retain(|p| other.binary_search(p).is_ok());
                }
                Box::new(found.into_iter())
            }
        };
        let positions: Box<dyn Iterator<Item = u32>> =
            if filter.descending { Box::new(positions.collect::<Vec<_>>().into_iter().rev()) } else { positions };
        let mut total = 0u64;
        let mut page = Vec::with_capacity(limit);
        for position in positions {
            let (id, connector) = self.people[position as usize];
            if scope.is_some_and(|s| !s.contains(&connector)) || !self.passes(position as usize, filter) {
                continue;
            }
            if total >= offset as u64 && page.len() < limit {
                page.push(id);
            }
            total += 1;
        }
        (page, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_finds_substrings_in_any_key_in_name_order_within_scope() {
        let keys = vec![
            (3, 1, "Charles Babbage".to_owned(), Some("cb@contoso.com".to_owned()), None),
            (1, 1, "Ada Lovelace".to_owned(), Some("ada@contoso.com".to_owned()), Some("ada.l@contoso.com".into())),
            (2, 2, "Alan Turing".to_owned(), Some("alan@fabrikam.com".to_owned()), None),
        ];
        let index = PeopleIndex::build(keys, (0, None));
        let ids = |found: (Vec<PrincipalId>, u64)| (found.0.iter().map(|p| p.0).collect::<Vec<_>>(), found.1);
        assert_eq!(ids(index.search("", None, &PeopleFilter::default(), 10, 0)), (vec![1, 2, 3], 3));
        assert_eq!(
            ids(index.search("  LOVE ", None, &PeopleFilter::default(), 10, 0)),
            (vec![1], 1),
            "the start of a word, any case"
        );
        assert_eq!(
            ids(index.search("ovelace", None, &PeopleFilter::default(), 10, 0)),
            (vec![], 0),
            "not the middle of one"
        );
        assert_eq!(
            ids(index.search("contoso", None, &PeopleFilter::default(), 10, 0)),
            (vec![1, 3], 2),
            "by user principal name"
        );
        assert_eq!(ids(index.search("ada.l@", None, &PeopleFilter::default(), 10, 0)), (vec![1], 1), "by email");
        assert_eq!(
            ids(index.search("turing alan", None, &PeopleFilter::default(), 10, 0)),
            (vec![2], 1),
            "every word, any order"
        );
        assert_eq!(
            ids(index.search("alan contoso", None, &PeopleFilter::default(), 10, 0)),
            (vec![], 0),
            "every word must match"
        );
        assert_eq!(
            ids(index.search("a", Some(&[ConnectorId(1)]), &PeopleFilter::default(), 10, 0)),
            (vec![1], 1),
            "scoped"
        );
        assert_eq!(ids(index.search("", None, &PeopleFilter::default(), 1, 1)), (vec![2], 3), "paged, with the total");
        assert_eq!(ids(index.search("%", None, &PeopleFilter::default(), 10, 0)), (vec![], 0), "no wildcards");
        // Filters and order.
        let facet = |id, department: &str, user_type: &str, enabled| attest_store::PersonFacets {
            id,
            department: Some(department.to_owned()),
            user_type: Some(user_type.to_owned()),
            account_enabled: Some(enabled),
        };
        let index = index.with_facets(vec![
            facet(1, "Research", "Member", true),
            facet(2, "research ", "Guest", true),
            facet(3, "Finance", "Member", false),
        ]);
        assert_eq!(index.departments(), ["Finance", "Research"]);
        let filtered = |filter: PeopleFilter| ids(index.search("", None, &filter, 10, 0));
        let research = PeopleFilter { department: Some("RESEARCH".into()), ..Default::default() };
        assert_eq!(filtered(research), (vec![1, 2], 2), "a department, any case");
        assert_eq!(filtered(PeopleFilter { guests: Some(true), ..Default::default() }), (vec![2], 1));
        assert_eq!(filtered(PeopleFilter { guests: Some(false), ..Default::default() }), (vec![1, 3], 2));
        assert_eq!(filtered(PeopleFilter { blocked: Some(true), ..Default::default() }), (vec![3], 1));
        assert_eq!(filtered(PeopleFilter { descending: true, ..Default::default() }), (vec![3, 2, 1], 3), "Z to A");
    }
}

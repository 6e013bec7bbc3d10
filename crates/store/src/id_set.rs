//! A compact set of row ids: one bit per id, because a full sync marks millions of grants as
//! seen and ids are dense integers.

/// A set of non-negative 64-bit ids stored as a bitmap.
#[derive(Debug, Clone, Default)]
pub struct IdSet {
    words: Vec<u64>,
    len: usize,
}

impl IdSet {
    pub fn new() -> IdSet {
        IdSet::default()
    }

    /// Adds an id; returns whether it was new. Negative ids are ignored (none exist).
    pub fn insert(&mut self, id: i64) -> bool {
        let Ok(id) = usize::try_from(id) else {
            return false;
        };
        let (word, bit) = (id / 64, id % 64);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let was = self.words[word] & (1 << bit) != 0;
        self.words[word] |= 1 << bit;
        if !was {
            self.len += 1;
        }
        !was
    }

    pub fn contains(&self, id: i64) -> bool {
        usize::try_from(id).is_ok_and(|id| self.words.get(id / 64).is_some_and(|w| w & (1 << (id % 64)) != 0))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::IdSet;

    #[test]
    fn remembers_what_was_inserted() {
        let mut set = IdSet::new();
        assert!(set.insert(3));
        assert!(set.insert(1_000_000));
        assert!(!set.insert(3));
        assert!(!set.insert(-1));
        assert!(set.contains(3) && set.contains(1_000_000));
        assert!(!set.contains(4) && !set.contains(-1) && !set.contains(10_000_000));
        assert_eq!(set.len(), 2);
    }
}

//! The key index of a columnar table: key → location of its live row.
//!
//! Neither keys nor their hashes are stored here: each entry is where a row is, 8
//! bytes, and the row's key column (already in the segment) settles whether a probe
//! found the key. hashbrown's 7-bit tag of the hash, kept beside each entry, rules out
//! almost every other entry before a key is read. Beside the Arrow data the index is
//! most of a table's memory: 8-byte entries take two thirds of what entries holding
//! 32 bits of the hash took, and a third of a map from a 64-bit hash to a `RowId`.
//!
//! Growing the table rehashes each key from its row. The index grows itself, with its
//! entries sorted by row first, so the keys are read segment by segment (a cache line
//! serves several keys) rather than in the hash order of the buckets.
//!
//! Keys are compared as bytes ([`KeyRef`]): the UTF-8 of a TEXT key, the big-endian
//! bytes of an INT or BIGINT key, so one index serves every key column type.

use hashbrown::HashTable;
use std::hash::BuildHasher;

/// Where a row is: its segment and its position in that segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RowId {
    pub(super) segment: u64,
    pub(super) row: u32,
}

/// The most rows a segment may hold: an entry keeps a row's position in 24 bits.
/// Segments hold 64k rows by design; only a batch applied whole can be larger.
pub(super) const MAX_SEGMENT_ROWS: usize = 1 << ROW_BITS;
const ROW_BITS: u32 = 24;
/// Segment ids fit in the other 40 bits: a segment is made per 1,024 rows applied at
/// the least, so a table would have to apply 10^15 rows to run out.
const SEGMENT_BITS: u32 = 64 - ROW_BITS;

/// One entry: the row's place, its segment in the high 40 bits and its position in
/// the low 24. Ordering entries orders them by segment, then row.
#[derive(Debug, Clone, Copy)]
struct Entry(u64);

impl Entry {
    fn new(at: RowId) -> Self {
        debug_assert!(at.segment < 1 << SEGMENT_BITS && (at.row as usize) < MAX_SEGMENT_ROWS);
        Self((at.segment << ROW_BITS) | u64::from(at.row))
    }

    fn at(&self) -> RowId {
        RowId {
            segment: self.0 >> ROW_BITS,
            row: (self.0 & ((1 << ROW_BITS) - 1)) as u32,
        }
    }
}

/// A key as the index compares it: borrowed bytes, or a fixed-width integer inline (no
/// allocation per probe).
#[derive(Debug, Clone)]
pub(crate) enum KeyRef<'a> {
    /// The bytes of a TEXT (or BYTEA) key.
    Bytes(&'a [u8]),
    /// The big-endian bytes of an integer key: `len` of the last bytes of the array.
    Int([u8; 8], u8),
    /// A composite key: each part's bytes after its 4-byte big-endian length.
    Composite(Vec<u8>),
}

impl KeyRef<'_> {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            KeyRef::Bytes(bytes) => bytes,
            KeyRef::Int(bytes, len) => &bytes[8 - *len as usize..],
            KeyRef::Composite(bytes) => bytes,
        }
    }
}

impl PartialEq for KeyRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

#[derive(Default)]
pub(super) struct KeyIndex {
    keys: KeyHasher,
    entries: HashTable<Entry>,
    /// How many entries the table's buckets take before it must grow: hashbrown's
    /// `capacity()` does not count the slots that removed entries leave marked.
    full_capacity: usize,
    /// How many entries were re-pointed (tests check that filling a segment moves none).
    #[cfg(test)]
    pub(super) relocated: usize,
}

/// Hashes keys, and the keys of the rows entries point at.
#[derive(Default)]
pub(super) struct KeyHasher {
    state: foldhash::fast::RandomState,
    /// Tests make every key hash alike, to exercise keys that share their hash.
    #[cfg(test)]
    pub(super) all_collide: bool,
}

impl KeyHasher {
    fn hash(&self, key: &[u8]) -> u64 {
        #[cfg(test)]
        if self.all_collide {
            return 0;
        }
        self.state.hash_one(key)
    }

    /// The hash of the key of the row `entry` points at. Every entry points at a live
    /// row, whose key can be read; 0 would only misplace an entry that broke that.
    fn rehash<'a>(&self, entry: &Entry, key_at: &impl Fn(RowId) -> Option<KeyRef<'a>>) -> u64 {
        let key = key_at(entry.at());
        debug_assert!(key.is_some(), "an index entry points at no row: {entry:?}");
        key.map_or(0, |key| self.hash(key.as_bytes()))
    }
}

impl KeyIndex {
    fn hash(&self, key: &[u8]) -> u64 {
        self.keys.hash(key)
    }

    /// Tests make every key hash alike, to exercise keys that share their hash.
    #[cfg(test)]
    pub(super) fn make_all_keys_collide(&mut self) {
        self.keys.all_collide = true;
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes the index's table takes (entries, including free ones, and control bytes).
    pub(super) fn memory_bytes(&self) -> usize {
        let buckets = match self.full_capacity {
            0 => 0,
            // hashbrown keeps buckets a power of two, filled to at most 7/8.
            capacity => (capacity * 8 / 7).next_power_of_two(),
        };
        buckets * (std::mem::size_of::<Entry>() + 1)
    }

    /// The entry of `key`; `key_at` reads a row's key.
    fn matches<'k, 'a>(
        key: &'k [u8],
        key_at: &'k impl Fn(RowId) -> Option<KeyRef<'a>>,
    ) -> impl FnMut(&Entry) -> bool + 'k {
        move |entry| key_at(entry.at()).is_some_and(|k| k.as_bytes() == key)
    }

    /// The row of `key`; `key_at` reads the key of a row.
    pub(super) fn get<'a>(
        &self,
        key: &[u8],
        key_at: impl Fn(RowId) -> Option<KeyRef<'a>>,
    ) -> Option<RowId> {
        self.entries
            .find(self.hash(key), Self::matches(key, &key_at))
            .map(Entry::at)
    }

    /// Points `key` at `at`; returns the row it pointed at before.
    pub(super) fn upsert<'a>(
        &mut self,
        key: &[u8],
        at: RowId,
        key_at: impl Fn(RowId) -> Option<KeyRef<'a>>,
    ) -> Option<RowId> {
        let hash = self.hash(key);
        if let Some(entry) = self.entries.find_mut(hash, Self::matches(key, &key_at)) {
            let before = entry.at();
            *entry = Entry::new(at);
            return Some(before);
        }
        if self.entries.len() == self.entries.capacity() {
            self.grow(&key_at);
        }
        // With room in the table, hashbrown does not call the hasher; it is given one
        // that would be right rather than one that panics.
        let keys = &self.keys;
        self.entries
            .insert_unique(hash, Entry::new(at), |e| keys.rehash(e, &key_at));
        None
    }

    /// Makes room for one more entry, as hashbrown would (the same number of buckets
    /// when removed entries' marks hold half of them, twice as many otherwise), but
    /// reading the keys to rehash in the order of their rows.
    fn grow<'a>(&mut self, key_at: &impl Fn(RowId) -> Option<KeyRef<'a>>) {
        let len = self.entries.len();
        let capacity = if len < self.full_capacity / 2 {
            self.full_capacity
        } else {
            (self.full_capacity + 1).max(len + 1)
        };
        // The old table is freed before the new one is made: at most the places and
        // one table are held at once.
        let mut places: Vec<Entry> = std::mem::take(&mut self.entries).into_iter().collect();
        places.sort_unstable_by_key(|entry| entry.0);
        let keys = &self.keys;
        let mut entries = HashTable::with_capacity(capacity);
        for entry in places {
            entries.insert_unique(keys.rehash(&entry, key_at), entry, |e| {
                keys.rehash(e, key_at)
            });
        }
        self.full_capacity = entries.capacity();
        self.entries = entries;
    }

    /// Forgets `key`; returns the row it pointed at.
    pub(super) fn remove<'a>(
        &mut self,
        key: &[u8],
        key_at: impl Fn(RowId) -> Option<KeyRef<'a>>,
    ) -> Option<RowId> {
        let found = self
            .entries
            .find_entry(self.hash(key), Self::matches(key, &key_at))
            .ok()?;
        Some(found.remove().0.at())
    }

    /// Moves `key` from row `from` to row `to` (compaction); no-op if it is elsewhere.
    /// The entry is found by its row: no key is read.
    pub(super) fn relocate(&mut self, key: &[u8], from: RowId, to: RowId) {
        #[cfg(test)]
        {
            self.relocated += 1;
        }
        if let Some(entry) = self.entries.find_mut(self.hash(key), |e| e.at() == from) {
            *entry = Entry::new(to);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_keeps_its_place_in_eight_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 8);
        for at in [
            RowId { segment: 0, row: 0 },
            RowId {
                segment: (1 << SEGMENT_BITS) - 1,
                row: (MAX_SEGMENT_ROWS - 1) as u32,
            },
            RowId {
                segment: 123_456_789,
                row: 65_535,
            },
        ] {
            assert_eq!(Entry::new(at).at(), at);
        }
    }

    /// Rows of one test: row `i` is in segment `i / 1000`, at `i % 1000`.
    fn row_id(i: usize) -> RowId {
        RowId {
            segment: (i / 1000) as u64,
            row: (i % 1000) as u32,
        }
    }

    fn key_of(rows: &[Vec<u8>], at: RowId) -> Option<KeyRef<'_>> {
        let i = at.segment as usize * 1000 + at.row as usize;
        rows.get(i).map(|key| KeyRef::Bytes(key))
    }

    /// Random upserts and removes against a map, through growth and the rebuilds
    /// that removed entries' marks cause; every key is looked up along the way.
    fn matches_a_map(collide: bool, keys: u64, steps: usize, seed: u64) {
        use rand::{Rng, SeedableRng};
        use std::collections::HashMap;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let mut index = KeyIndex::default();
        if collide {
            index.make_all_keys_collide();
        }
        let mut rows: Vec<Vec<u8>> = Vec::new();
        let mut model: HashMap<Vec<u8>, RowId> = HashMap::new();
        for step in 0..steps {
            let key = format!("k{}", rng.random_range(0..keys)).into_bytes();
            // Removes come in runs, so that the table fills with removed entries' marks.
            let removing = (step / 500) % 3 == 2 && rng.random_bool(0.8);
            let before = if removing {
                index.remove(&key, |at| key_of(&rows, at))
            } else {
                let at = row_id(rows.len());
                // The row is there before the index points at it, as in the table.
                rows.push(key.clone());
                index.upsert(&key, at, |at| key_of(&rows, at))
            };
            let expected = if removing {
                model.remove(&key)
            } else {
                model.insert(key, row_id(rows.len() - 1))
            };
            assert_eq!(before, expected, "step {step}");
            assert_eq!(index.len(), model.len());
            if step % 97 == 0 {
                for k in 0..keys {
                    let key = format!("k{k}").into_bytes();
                    let found = index.get(&key, |at| key_of(&rows, at));
                    assert_eq!(found, model.get(&key).copied(), "key {k} at step {step}");
                }
            }
        }
        assert!(index.memory_bytes() >= model.len() * 9);
    }

    #[test]
    fn upserts_and_removes_match_a_map_through_growth() {
        for seed in 0..4 {
            matches_a_map(false, 3_000, 6_000, seed);
        }
    }

    #[test]
    fn keys_that_share_a_hash_match_a_map_through_growth() {
        matches_a_map(true, 60, 3_000, 7);
    }
}

//! The key index of a columnar table: key → location of its live row.
//!
//! Keys are not stored here: each entry holds 32 bits of the key's hash and where its
//! row is, and the row's key column (already in the segment) settles whether a hit is
//! really that key, so keys whose hashes collide simply share a probe sequence. An
//! entry takes 12 bytes (against 24 for a map from a 64-bit hash to a `RowId`, and ~100
//! for a map owning a copy of each key): beside the Arrow data, the index is most of a
//! table's memory. Growing the table rehashes from the stored 32 bits, without reading
//! a key.
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

/// One entry: the high half of the key's 64-bit hash, and the row's place packed
/// into 64 bits as two halves (so that the entry is 12 bytes, aligned to 4).
#[derive(Debug, Clone, Copy)]
struct Entry {
    hash: u32,
    place: [u32; 2],
}

impl Entry {
    fn new(hash: u32, at: RowId) -> Self {
        debug_assert!(at.segment < 1 << SEGMENT_BITS && (at.row as usize) < MAX_SEGMENT_ROWS);
        let packed = (at.segment << ROW_BITS) | u64::from(at.row);
        Self {
            hash,
            place: [(packed >> 32) as u32, packed as u32],
        }
    }

    fn at(&self) -> RowId {
        let packed = (u64::from(self.place[0]) << 32) | u64::from(self.place[1]);
        RowId {
            segment: packed >> ROW_BITS,
            row: (packed & ((1 << ROW_BITS) - 1)) as u32,
        }
    }

    fn set(&mut self, at: RowId) {
        *self = Entry::new(self.hash, at);
    }
}

/// The table's hash of an entry with hash bits `hash`: the 32 bits spread over 64 (the
/// table takes its bucket from the low bits and a tag from the top seven), the same
/// when an entry is inserted, found and moved on growth.
fn spread(hash: u32) -> u64 {
    u64::from(hash).wrapping_mul(0x9E37_79B9_7F4A_7C15)
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
    hasher: foldhash::fast::RandomState,
    entries: HashTable<Entry>,
    /// Tests make every key hash alike, to exercise keys that share their hash.
    #[cfg(test)]
    pub(super) all_collide: bool,
    /// How many entries were re-pointed (tests check that filling a segment moves none).
    #[cfg(test)]
    pub(super) relocated: usize,
}

impl KeyIndex {
    fn hash(&self, key: &[u8]) -> u32 {
        #[cfg(test)]
        if self.all_collide {
            return 0;
        }
        (self.hasher.hash_one(key) >> 32) as u32
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes the index's table takes (entries, including free ones, and control bytes).
    pub(super) fn memory_bytes(&self) -> usize {
        let buckets = match self.entries.capacity() {
            0 => 0,
            // hashbrown keeps buckets a power of two, filled to at most 7/8.
            capacity => (capacity * 8 / 7).next_power_of_two(),
        };
        buckets * (std::mem::size_of::<Entry>() + 1)
    }

    /// The entry of `key`, whose hash bits are `hash`; `key_at` reads a row's key.
    fn matches<'k, 'a>(
        hash: u32,
        key: &'k [u8],
        key_at: &'k impl Fn(RowId) -> Option<KeyRef<'a>>,
    ) -> impl FnMut(&Entry) -> bool + 'k {
        move |entry| entry.hash == hash && key_at(entry.at()).is_some_and(|k| k.as_bytes() == key)
    }

    /// The row of `key`; `key_at` reads the key of a row.
    pub(super) fn get<'a>(
        &self,
        key: &[u8],
        key_at: impl Fn(RowId) -> Option<KeyRef<'a>>,
    ) -> Option<RowId> {
        let hash = self.hash(key);
        self.entries
            .find(spread(hash), Self::matches(hash, key, &key_at))
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
        if let Some(entry) = self
            .entries
            .find_mut(spread(hash), Self::matches(hash, key, &key_at))
        {
            let before = entry.at();
            entry.set(at);
            return Some(before);
        }
        self.entries
            .insert_unique(spread(hash), Entry::new(hash, at), |e| spread(e.hash));
        None
    }

    /// Forgets `key`; returns the row it pointed at.
    pub(super) fn remove<'a>(
        &mut self,
        key: &[u8],
        key_at: impl Fn(RowId) -> Option<KeyRef<'a>>,
    ) -> Option<RowId> {
        let hash = self.hash(key);
        let found = self
            .entries
            .find_entry(spread(hash), Self::matches(hash, key, &key_at))
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
        let hash = self.hash(key);
        if let Some(entry) = self
            .entries
            .find_mut(spread(hash), |e| e.hash == hash && e.at() == from)
        {
            entry.set(to);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_keeps_its_place_in_twelve_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 12);
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
            assert_eq!(Entry::new(7, at).at(), at);
        }
    }
}

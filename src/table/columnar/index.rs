//! The key index of a columnar table: key → location of its live row.
//!
//! Keys are not stored here: the index maps a 64-bit hash of the key to the row, and the
//! row's key column (already in the segment) settles whether a hit is really that key.
//! A key whose hash is held by a different key goes to a small overflow map keyed by
//! the key itself. A hash-keyed entry takes 24 bytes against ~100 for a map owning a
//! copy of each key, which is most of a table's memory beside its Arrow data.
//!
//! Keys are compared as bytes ([`KeyRef`]): the UTF-8 of a TEXT key, the big-endian
//! bytes of an INT or BIGINT key, so one index serves every key column type.

use std::collections::HashMap;
use std::hash::BuildHasher;

/// Where a row is: its segment and its position in that segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RowId {
    pub(super) segment: u64,
    pub(super) row: u32,
}

type Map<K> = HashMap<K, RowId, foldhash::fast::RandomState>;

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
    by_hash: Map<u64>,
    /// Keys whose hash another key holds in `by_hash`; almost always empty.
    collided: Map<Box<[u8]>>,
    /// Tests make every key collide to exercise the overflow map.
    #[cfg(test)]
    pub(super) all_collide: bool,
    /// How many entries were re-pointed (tests check that filling a segment moves none).
    #[cfg(test)]
    pub(super) relocated: usize,
}

impl KeyIndex {
    fn hash(&self, key: &[u8]) -> u64 {
        #[cfg(test)]
        if self.all_collide {
            return 0;
        }
        self.hasher.hash_one(key)
    }

    pub(super) fn len(&self) -> usize {
        self.by_hash.len() + self.collided.len()
    }

    /// Bytes the index's tables take (slots, including free ones, and control bytes).
    pub(super) fn memory_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(u64, RowId)>() + 1;
        self.by_hash.capacity() * slot
            + self
                .collided
                .keys()
                .map(|key| key.len() + slot + 16)
                .sum::<usize>()
    }

    /// The row of `key`; `key_at` reads the key of a row.
    pub(super) fn get<'a>(
        &self,
        key: &[u8],
        key_at: impl Fn(RowId) -> Option<KeyRef<'a>>,
    ) -> Option<RowId> {
        if let Some(&at) = self.by_hash.get(&self.hash(key)) {
            if key_at(at).is_some_and(|k| k.as_bytes() == key) {
                return Some(at);
            }
        }
        if self.collided.is_empty() {
            return None;
        }
        self.collided.get(key).copied()
    }

    /// Points `key` at `at`; returns the row it pointed at before.
    pub(super) fn upsert<'a>(
        &mut self,
        key: &[u8],
        at: RowId,
        key_at: impl Fn(RowId) -> Option<KeyRef<'a>>,
    ) -> Option<RowId> {
        if let Some(slot) = self.collided.get_mut(key) {
            return Some(std::mem::replace(slot, at));
        }
        let hash = self.hash(key);
        match self.by_hash.get_mut(&hash) {
            None => {
                self.by_hash.insert(hash, at);
                None
            }
            Some(slot) if key_at(*slot).is_some_and(|k| k.as_bytes() == key) => {
                Some(std::mem::replace(slot, at))
            }
            Some(_) => self.collided.insert(key.into(), at),
        }
    }

    /// Forgets `key`; returns the row it pointed at.
    pub(super) fn remove<'a>(
        &mut self,
        key: &[u8],
        key_at: impl Fn(RowId) -> Option<KeyRef<'a>>,
    ) -> Option<RowId> {
        let hash = self.hash(key);
        if let Some(&at) = self.by_hash.get(&hash) {
            if key_at(at).is_some_and(|k| k.as_bytes() == key) {
                return self.by_hash.remove(&hash);
            }
        }
        self.collided.remove(key)
    }

    /// Moves `key` from row `from` to row `to` (compaction); no-op if it is elsewhere.
    pub(super) fn relocate(&mut self, key: &[u8], from: RowId, to: RowId) {
        #[cfg(test)]
        {
            self.relocated += 1;
        }
        let hash = self.hash(key);
        if let Some(slot) = self.by_hash.get_mut(&hash) {
            if *slot == from {
                *slot = to;
                return;
            }
        }
        if let Some(slot) = self.collided.get_mut(key) {
            if *slot == from {
                *slot = to;
            }
        }
    }
}

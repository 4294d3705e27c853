//! The sink of a typed table: a keyed map of decoded values.
//!
//! The map hashes with foldhash rather than std's SipHash: keys come from the table's
//! own topic, and the faster hash took about 12% off the decode-and-insert cost per
//! record in a micro-benchmark (644 -> 566 ns for 200-byte JSON users, 100,000 keys).
//!
//! The map sits behind a `parking_lot::RwLock`: the writer holds it for one insert or
//! remove at a time (decoding happens before the lock is taken), so a reader waits at
//! most for one hash-map operation. `benches/lookup.rs` measures this against a plain
//! `HashMap` and against a sharded map under a 100,000 updates/s writer; see
//! `BENCHMARKS.md`. A single lock also keeps `snapshot()` consistent, which a sharded map
//! cannot without locking every shard.
//!
//! What an update or delete displaces (the old value, the spare copy of the key) is
//! not dropped on the applying thread but handed back to the decoding stage, which
//! drops it as it decodes its next batch. The decoding thread allocated those values;
//! freeing them there lets the allocator reuse them for the next batch's values, where
//! frees from the applying thread contended with those allocations (glibc's arena
//! lock: malloc and free were ~40% of a typed restore's profile; the typed restore
//! bench went from ~2.3 s to ~1.4 s, ~1.8 s of it with the drops in bulk rather than
//! one per record). It also keeps drops out of the write lock.
//!
//! Change feeds: a batch is applied under `apply_gate` (an uncontended mutex, taken
//! once per batch; readers never take it), and a subscription starts under it too, so
//! a subscriber's snapshot holds every change of a batch or none, and each batch
//! after it reaches the subscriber's log once it is applied.

use crate::changefeed::{ChangeBatch, ChangeLog};
use crate::kafka::FetchedRecord;
use crate::kafka::{Deserializer, SerializationError};
use crate::source::{Counters, Prepared, RecordSink, SinkError};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub(crate) type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One applied batch of a typed table: each key with its new value (`None`: deleted),
/// and each change's Kafka partition and offset.
pub(crate) struct TypedChanges<K, V> {
    pub(crate) changes: Vec<(K, Option<V>)>,
    pub(crate) positions: Vec<(i32, i64)>,
}

impl<K: Send + Sync + 'static, V: Send + Sync + 'static> ChangeBatch for TypedChanges<K, V> {
    fn positions(&self) -> &[(i32, i64)] {
        &self.positions
    }
}

pub(crate) struct MapSink<K, V> {
    pub(crate) map: RwLock<Map<K, V>>,
    pub(crate) apply_gate: Mutex<crate::changefeed::Offsets>,
    pub(crate) changes: Arc<ChangeLog<TypedChanges<K, V>>>,
    key_deserializer: Box<dyn Deserializer<K>>,
    value_deserializer: Box<dyn Deserializer<V>>,
    /// Entries were loaded from a checkpoint, whose offsets the change log does not
    /// hold (a resume from before them must be refused).
    loaded: AtomicBool,
    /// Keys and values that applied batches displaced, for the decoding stage to drop
    /// (see the module docs).
    displaced: Mutex<Displaced<K, V>>,
}

/// Keys and values an applied batch no longer holds.
struct Displaced<K, V> {
    keys: Vec<K>,
    values: Vec<V>,
}

impl<K, V> Default for Displaced<K, V> {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            values: Vec::new(),
        }
    }
}

impl<K: Eq + Hash, V> MapSink<K, V> {
    pub(crate) fn new(
        key_deserializer: impl Deserializer<K>,
        value_deserializer: impl Deserializer<V>,
    ) -> Self {
        Self {
            map: RwLock::new(Map::default()),
            apply_gate: Mutex::new(Default::default()),
            changes: Arc::new(ChangeLog::default()),
            key_deserializer: Box::new(key_deserializer),
            value_deserializer: Box::new(value_deserializer),
            loaded: AtomicBool::new(false),
            displaced: Mutex::new(Displaced::default()),
        }
    }
}

impl<K: Eq + Hash + 'static, V: 'static> MapSink<K, V> {
    pub(crate) fn decode_key(&self, bytes: &[u8]) -> Result<K, SerializationError> {
        self.key_deserializer.deserialize(bytes)
    }

    pub(crate) fn decode_value(&self, bytes: &[u8]) -> Result<V, SerializationError> {
        self.value_deserializer.deserialize(bytes)
    }

    /// Adds entries of a checkpoint.
    pub(crate) fn load(&self, entries: Vec<(K, V)>) {
        self.loaded.store(true, Ordering::Release);
        self.map.write().extend(entries);
    }

    /// Whether entries came from a checkpoint (see [`ChangeLog::start_capture`]).
    pub(crate) fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }
}

impl<K, V> RecordSink for MapSink<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn apply(&self, records: &[FetchedRecord<'_>], counters: &Counters) -> Result<(), SinkError> {
        self.prepare(records, counters)?(self)
    }

    /// Decodes keys and values here; the map's inserts and removes run in the returned
    /// step, each under the write lock alone.
    fn prepare(
        &self,
        records: &[FetchedRecord<'_>],
        counters: &Counters,
    ) -> Result<Prepared<Self>, SinkError> {
        // Dropped here, on the decoding thread: one key and value before each record
        // is decoded, so that its allocations reuse what was just freed (the
        // allocator's per-thread cache holds only a few blocks of each size).
        let mut displaced = std::mem::take(&mut *self.displaced.lock());
        let mut changes: Vec<(K, Option<V>)> = Vec::with_capacity(records.len());
        let mut positions: Vec<(i32, i64)> = Vec::with_capacity(records.len());
        // Counted here and added once: an atomic add per record showed in profiles.
        let (mut upserts, mut deletes, mut null_keys) = (0, 0, 0);
        for record in records {
            drop(displaced.keys.pop());
            drop(displaced.values.pop());
            let Some(key_bytes) = record.key() else {
                null_keys += 1;
                continue;
            };
            let key = match self.key_deserializer.deserialize(key_bytes) {
                Ok(key) => key,
                Err(error) => {
                    counters.reject(record, "key", &error);
                    continue;
                }
            };
            match record.value() {
                None => {
                    changes.push((key, None));
                    positions.push((record.partition(), record.offset()));
                    deletes += 1;
                }
                Some(value_bytes) => match self.value_deserializer.deserialize(value_bytes) {
                    Ok(value) => {
                        changes.push((key, Some(value)));
                        positions.push((record.partition(), record.offset()));
                        upserts += 1;
                    }
                    Err(error) => counters.reject(record, "value", &error),
                },
            }
        }
        drop(displaced);
        counters.upserted(upserts);
        counters.deleted(deletes);
        counters.null_key(null_keys);
        Ok(Box::new(move |sink: &Self| {
            // The offsets applied, kept under the gate (see the module docs).
            let mut applied = sink.apply_gate.lock();
            for &(partition, offset) in &positions {
                applied.insert(partition, offset);
            }
            let published = sink.changes.is_capturing().then(|| TypedChanges {
                changes: changes.clone(),
                positions,
            });
            let mut displaced = Displaced::default();
            for (key, value) in changes {
                let mut map = sink.map.write();
                match value {
                    Some(value) => match map.get_mut(&key) {
                        Some(held) => {
                            displaced.values.push(std::mem::replace(held, value));
                            displaced.keys.push(key);
                        }
                        None => {
                            map.insert(key, value);
                        }
                    },
                    None => {
                        if let Some((held_key, held)) = map.remove_entry(&key) {
                            displaced.keys.push(held_key);
                            displaced.values.push(held);
                        }
                        displaced.keys.push(key);
                    }
                }
            }
            let mut pending = sink.displaced.lock();
            pending.keys.append(&mut displaced.keys);
            pending.values.append(&mut displaced.values);
            if let Some(published) = published {
                sink.changes.push(published);
            }
            Ok(())
        }))
    }

    fn rows(&self) -> usize {
        self.map.read().len()
    }
}

//! A point-in-time report on a typed table.

use crate::source::{PartitionProgress, SourceStats};
use std::time::SystemTime;

/// What a table holds and how far it has read; see [`KTable::stats`](super::KTable::stats).
#[derive(Debug, Clone, PartialEq)]
pub struct KTableStats {
    /// The table's topic.
    pub topic: String,
    /// The consumer group id the table was configured with (used for identification;
    /// the table never commits offsets since it always restores from the earliest).
    pub group_id: String,
    /// Keys currently in the table.
    pub key_count: usize,
    /// Whether the consumer task is running.
    pub running: bool,
    /// Whether every partition has reached the high watermark seen at start.
    pub ready: bool,
    /// Offsets restored so far, over all partitions.
    pub offsets_done: u64,
    /// Offsets to restore, over all partitions (high minus low watermark at start).
    pub offsets_total: u64,
    /// Records that set a key's value.
    pub upserts: u64,
    /// Tombstones applied (each deletes its key, whether or not it was present).
    pub tombstones: u64,
    /// Records without a key: counted and dropped.
    pub null_keys: u64,
    /// Records whose key or value could not be decoded: counted, logged and skipped.
    pub bad_records: u64,
    /// When the last record was applied.
    pub last_updated: Option<SystemTime>,
    /// The last Kafka error the consumer reported, if any.
    pub last_error: Option<String>,
    /// Progress per partition.
    pub partitions: Vec<PartitionProgress>,
}

impl KTableStats {
    pub(crate) fn new(source: SourceStats, key_count: usize) -> Self {
        Self {
            topic: source.topic,
            group_id: source.group_id,
            key_count,
            running: source.running,
            ready: source.ready,
            offsets_done: source.offsets_done,
            offsets_total: source.offsets_total,
            upserts: source.upserts,
            tombstones: source.tombstones,
            null_keys: source.null_keys,
            bad_records: source.bad_records,
            last_updated: source.last_updated,
            last_error: source.last_error,
            partitions: source.partitions,
        }
    }
}

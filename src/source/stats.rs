//! A point-in-time report on a source.

use super::PartitionProgress;
use std::time::SystemTime;

/// How far a source has read and what it did with the records.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceStats {
    /// The source's topic.
    pub topic: String,
    /// The consumer group id the source was configured with (used for identification;
    /// sources never commit offsets since they always restore from the earliest).
    pub group_id: String,
    /// Rows the sink holds: the keys of a table, the retained records of a stream.
    pub rows: usize,
    /// Whether the consumer task is running.
    pub running: bool,
    /// Whether the source follows its topic: restored (every partition reached the
    /// high watermark seen at start) and Kafka reachable.
    pub ready: bool,
    /// Whether every partition has reached the high watermark seen at start, once in
    /// this run (stays true through a broker outage).
    pub restored: bool,
    /// Whether Kafka cannot be reached now: waiting to start, or every broker down
    /// while running. The sink keeps serving the state it has.
    pub kafka_unreachable: bool,
    /// Offsets restored so far, over all partitions.
    pub offsets_done: u64,
    /// Offsets to restore, over all partitions (high minus low watermark at start).
    pub offsets_total: u64,
    /// Records that set a key's value (for a stream: records appended).
    pub upserts: u64,
    /// Tombstones applied (each deletes its key, whether or not it was present).
    pub tombstones: u64,
    /// Records without a key: counted and dropped.
    pub null_keys: u64,
    /// Records that could not be decoded: counted, logged and skipped.
    pub bad_records: u64,
    /// When the last batch of records was applied.
    pub last_updated: Option<SystemTime>,
    /// The last Kafka error the consumer reported, if any.
    pub last_error: Option<String>,
    /// Progress per partition.
    pub partitions: Vec<PartitionProgress>,
    /// Where the current run's state came from.
    pub restored_from: RestoreOrigin,
}

/// Where a source's state came from when it started.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RestoreOrigin {
    /// Every partition was read from its earliest offset.
    #[default]
    Full,
    /// Every partition was read from its earliest offset although a checkpoint was
    /// configured: the reason the checkpoint was not used.
    FullInstead(String),
    /// A checkpoint written at this time was loaded and only the records after it read.
    Checkpoint(SystemTime),
}

impl SourceStats {
    /// Offsets not read yet, over all partitions (see [`PartitionProgress::lag`]).
    pub fn lag_offsets(&self) -> u64 {
        self.partitions.iter().map(PartitionProgress::lag).sum()
    }
}

impl RestoreOrigin {
    /// `"checkpoint"` or `"full"`, as `ktable_tables.restored_from` shows it.
    pub fn kind(&self) -> &'static str {
        match self {
            RestoreOrigin::Checkpoint(_) => "checkpoint",
            RestoreOrigin::Full | RestoreOrigin::FullInstead(_) => "full",
        }
    }

    /// Why a checkpoint was not used, if one was configured and not used.
    pub fn fallback_reason(&self) -> Option<&str> {
        match self {
            RestoreOrigin::FullInstead(reason) => Some(reason),
            _ => None,
        }
    }
}

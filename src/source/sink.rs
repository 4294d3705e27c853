//! Where a source's records go, and the counters of what became of them.

use super::bad_record_log::{BadRecordLine, BadRecordLog, LINE_INTERVAL};
use crate::kafka::FetchedRecord;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Applies a source's records to some state.
///
/// `apply` receives records in offset order within each partition (partitions may be
/// interleaved) and must account for every record in `counters`: an upsert, a
/// tombstone, a null key, or a bad record (see [`Counters::reject`]). It runs on the
/// source's own task or thread, one call at a time; readers of the sink's state run
/// concurrently.
pub trait RecordSink: Send + Sync + 'static {
    /// Applies `records`, in order. An error stops the source (the sink keeps what it
    /// applied); bad records are not errors, they are counted and skipped.
    fn apply(&self, records: &[FetchedRecord<'_>], counters: &Counters) -> Result<(), SinkError>;

    /// Does the part of applying `records` that needs the records themselves
    /// (decoding), and returns the rest, which the source runs on its applying thread
    /// while it fetches and prepares the next batch. Counting is done here, into
    /// counters of this batch that the source adds to its statistics only after the
    /// returned step has run. The default applies at once.
    fn prepare(
        &self,
        records: &[FetchedRecord<'_>],
        counters: &Counters,
    ) -> Result<Prepared<Self>, SinkError>
    where
        Self: Sized,
    {
        self.apply(records, counters)?;
        Ok(Box::new(|_: &Self| Ok(())))
    }

    /// Rows the sink holds now: the keys of a table, the retained records of a stream.
    fn rows(&self) -> usize;

    /// After `apply` failed: if the failure passes (a schema registry that does not
    /// answer), how long to wait before the same batch is applied again. `apply` must
    /// then have changed nothing. None (the default) stops the source.
    fn retry_after(&self) -> Option<std::time::Duration> {
        None
    }
}

/// The rest of applying a batch, made by [`RecordSink::prepare`] and run on the sink.
pub type Prepared<S> = Box<dyn FnOnce(&S) -> Result<(), SinkError> + Send>;

/// A sink that cannot go on: the source stops and reports it in its statistics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// What a source did with its records, for statistics. Sinks count through these.
#[derive(Debug, Default)]
pub struct Counters {
    upserts: AtomicU64,
    tombstones: AtomicU64,
    null_keys: AtomicU64,
    bad_records: AtomicU64,
    /// Only the sink's consumer task rejects records, so the lock is never contended.
    /// Shared with the source's per-batch counters, so that the log's pace is the
    /// source's.
    bad_record_log: Arc<Mutex<BadRecordLog>>,
}

impl Counters {
    /// Empty counters for one batch, logging bad records at this source's pace: the
    /// source adds them to its own with [`Counters::add`] once the batch is applied, so
    /// that its statistics never count a record whose change is not visible yet.
    pub(crate) fn for_batch(&self) -> Counters {
        Counters {
            bad_record_log: Arc::clone(&self.bad_record_log),
            ..Counters::default()
        }
    }

    /// Adds a batch's counts (see [`Counters::for_batch`]).
    pub(crate) fn add(&self, batch: &Counters) {
        self.upserted(batch.upserts());
        self.deleted(batch.tombstones());
        self.null_key(batch.null_keys());
        self.bad_records
            .fetch_add(batch.bad_records(), Ordering::Relaxed);
    }

    /// Counts `n` records that set a key's value (or, for a stream, were appended).
    pub fn upserted(&self, n: u64) {
        self.upserts.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` tombstones applied.
    pub fn deleted(&self, n: u64) {
        self.tombstones.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` records without a key, dropped.
    pub fn null_key(&self, n: u64) {
        self.null_keys.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a record that cannot be applied and logs it, the first few of a source in
    /// full and then at most one a while (see `bad_record_log`); `part` says what was
    /// wrong with it ("key", "value", ...).
    pub fn reject(&self, record: &FetchedRecord<'_>, part: &str, error: &dyn std::fmt::Display) {
        self.bad_records.fetch_add(1, Ordering::Relaxed);
        let BadRecordLine::Log {
            unlogged_before,
            limited_from_now,
        } = self.bad_record_log.lock().record(Instant::now())
        else {
            return;
        };
        let (topic, partition, offset) = (record.topic(), record.partition(), record.offset());
        if limited_from_now {
            tracing::warn!(
                topic, partition, offset, %error,
                "skipping record whose {part} cannot be decoded; further bad records of this \
                 source are counted (bad_records in ktable_tables) and logged at most once \
                 per {}",
                humantime::format_duration(LINE_INTERVAL),
            );
        } else if unlogged_before > 0 {
            tracing::warn!(
                topic, partition, offset, %error, unlogged_before,
                "skipping record whose {part} cannot be decoded, and {unlogged_before} more \
                 bad records of this source counted since the last such line",
            );
        } else {
            tracing::warn!(
                topic, partition, offset, %error,
                "skipping record whose {part} cannot be decoded",
            );
        }
    }

    pub(crate) fn upserts(&self) -> u64 {
        self.upserts.load(Ordering::Relaxed)
    }

    pub(crate) fn tombstones(&self) -> u64 {
        self.tombstones.load(Ordering::Relaxed)
    }

    pub(crate) fn null_keys(&self) -> u64 {
        self.null_keys.load(Ordering::Relaxed)
    }

    pub(crate) fn bad_records(&self) -> u64 {
        self.bad_records.load(Ordering::Relaxed)
    }
}

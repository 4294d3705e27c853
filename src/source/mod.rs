//! Sources: the consumer machinery every materialized topic shares.
//!
//! A source reads every partition of one topic from the earliest offset (whatever its
//! consumer group committed), hands records in batches to a [`RecordSink`] — the typed
//! map of a [`KTable`](crate::KTable), the columnar store of a SQL table, the retained
//! window of a stream — and tracks restore progress in offsets: it is *ready* once every
//! partition has reached the end it had when the source started.
//!
//! * `handle` — [`Source`], the cloneable handle: start, stop, readiness, statistics.
//! * `state` — what the consumer task and the handles share.
//! * `progress` — restore progress per partition, in offsets.
//! * `sink` — the [`RecordSink`] trait and the outcome counters sinks update.
//! * `bad_record_log` — how often bad records are logged (they are all counted).
//! * `worker` — the background task that consumes and feeds the sink.

mod bad_record_log;
mod error;
mod handle;
mod progress;
mod sink;
mod state;
mod stats;
mod worker;

pub use error::SourceError;
pub use handle::Source;
pub use progress::PartitionProgress;
pub use sink::{Counters, Prepared, RecordSink, SinkError};
pub use stats::{RestoreOrigin, SourceStats};
pub use worker::MAX_BATCH;

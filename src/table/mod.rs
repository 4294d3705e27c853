//! Tables: Kafka topics materialized as live keyed state.
//!
//! A table reads every partition of its topic from the earliest offset (whatever its
//! consumer group committed), applies records in offset order per partition — a value
//! upserts its key, a null value (tombstone) deletes it, a null key is counted and
//! dropped — and reports itself *ready* once every partition has reached the end it had
//! when the table started. After that it keeps applying new records as they arrive.
//!
//! * [`KTable`] is the handle users hold: cheap to clone, all clones share one state.
//! * `state` holds the keyed map and the counters readers see.
//! * `progress` tracks restore progress in offsets, per partition.
//! * `worker` is the background task that consumes and applies records.

mod error;
mod ktable;
mod progress;
mod state;
mod stats;
mod worker;

pub use error::KTableError;
pub use ktable::KTable;
pub use progress::PartitionProgress;
pub use stats::KTableStats;

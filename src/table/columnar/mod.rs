//! The keyed columnar store behind SQL tables.
//!
//! Rows live in immutable Arrow segments; a key index maps each key to the one live row
//! that holds its latest value; a per-segment liveness mask hides rows that were
//! replaced or deleted. An update appends its new row in a new segment and clears the
//! old row's bit; a delete clears the bit and drops the key from the index. Nothing is
//! rewritten per update, and scans hand DataFusion the segments' own Arrow arrays.
//!
//! * `store` — [`ColumnarTable`]: the segments, lookups, snapshots, compaction.
//! * `index` — the key index: a 64-bit hash of each key to its live row, checked
//!   against the row's key column.
//! * `sink` — [`ColumnarSink`]: decodes records of a batch into one segment and applies
//!   them to the store.
//! * `changes` — [`TableChanges`]: an applied batch as the change feed carries it.
//! * `budget` — [`MemoryBudget`]: the memory all tables may hold together.

mod budget;
mod changes;
mod index;
mod sink;
mod store;

pub use budget::MemoryBudget;
pub use changes::{Change, ChangeRows, TableChanges};
pub use sink::ColumnarSink;
pub(crate) use sink::{decode_values, needs_headers, RetryState};
pub use store::{is_key_type, ColumnarTable, SubscribeFrom, TableSnapshot, TableSubscription};

//! Tables: compacted topics as live keyed state, with Kafka's table semantics (a record
//! with a value upserts its key, a tombstone deletes it, a record without a key is
//! counted and dropped, a record that does not decode is counted and skipped).
//!
//! Two stores, one per kind of reader:
//! * [`KTable<K, V>`]: a typed `HashMap` of the user's Rust values, so an in-process
//!   lookup is one hash probe and a clone, with no decoding on the read path.
//! * [`columnar`]: Arrow segments plus a key index, for SQL: scans hand DataFusion the
//!   stored arrays and key lookups probe the index. Serving typed lookups from Arrow
//!   would decode a row back into `V` on every `get`, and serving SQL from the typed map
//!   would encode every row into Arrow on every scan, so each keeps its own.

pub mod columnar;
mod ktable;
mod map_sink;
mod stats;
mod typed_checkpoint;

pub use crate::source::{PartitionProgress, SourceError as KTableError};
pub use ktable::{KTable, TableChange};
pub use stats::KTableStats;

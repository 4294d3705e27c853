//! Streams: append-only topics whose recent records are queryable as a relation.
//!
//! A stream keeps a retained window of decoded rows — bounded by row count, bytes, or
//! the age of the records' Kafka timestamps — in Arrow batches, oldest first. A query
//! reads the window as it is at query time; joining a stream with a table reads the
//! table's state at that same time.

mod sink;
mod store;

pub use sink::StreamSink;
pub use store::{Retention, StreamChanges, StreamStore, StreamSubscription};

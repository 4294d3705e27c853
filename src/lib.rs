//! # ktable
//!
//! Kafka topics as live, keyed, queryable tables.
//!
//! Data flows one way through the modules:
//!
//! * [`kafka`] — typed configuration, producers, consumers, serializers and messages
//!   over librdkafka (optional keys, tombstones, headers, partitions, offsets).
//! * [`table`] — a compacted topic materialized as a keyed table with Kafka's table
//!   semantics: latest value per key, tombstones delete, restore from the earliest offset,
//!   then live; readiness and progress measured in offsets.
//!
//! [`demo`] holds the embedded default cluster that `ktable serve` runs on without brokers.
//!
//! The typed entry point is [`KTable`].

pub mod demo;
pub mod kafka;
pub mod table;

pub use table::{KTable, KTableError, KTableStats};

//! # ktable
//!
//! Kafka topics as live, keyed, queryable tables.
//!
//! Data flows one way through the modules:
//!
//! * [`kafka`] — typed configuration, producers, consumers, serializers and messages
//!   over librdkafka (optional keys, tombstones, headers, partitions, offsets).
//! * [`source`] — the consumer machinery every materialized topic shares: restore from
//!   the earliest offset of every partition, then live; readiness and progress measured
//!   in offsets; records handed in batches to a sink.
//! * [`format`] — decoding records into Arrow rows of a declared schema (JSON).
//! * [`table`] — compacted topics as keyed tables with Kafka's table semantics: the
//!   typed [`KTable`] for in-process lookups, and the columnar store behind SQL tables.
//! * [`state`] — checkpoints of a table's store and offsets, so a restart reads only
//!   the records written since.
//! * [`stream`] — append-only topics as a retained window of Arrow rows.
//! * [`changefeed`] — what tables and streams applied, with partitions and offsets,
//!   for subscribers (`SUBSCRIBE`, [`KTable::subscribe`]), in bounded logs that never
//!   hold back ingestion.
//! * [`sql`] — the [`sql::Engine`]: its statement front end (every statement parsed
//!   and classified once, `Engine::prepare` / `Engine::execute`; point lookups read
//!   from the key index without planning), DDL, DataFusion `TableProvider`s, the
//!   `ktable_tables` system table, and PostgreSQL compatibility for clients.
//! * [`server`] — the PostgreSQL wire protocol over the engine: connections, logins,
//!   limits, and the engine's results encoded for the wire.
//! * [`ops`] — the HTTP endpoint operators use: `/metrics` (Prometheus), `/healthz`,
//!   `/readyz`, read from the engine and the server.
//!
//! [`demo`] holds the embedded default cluster that `ktable serve` runs on without brokers.

pub mod changefeed;
pub mod config;
pub mod demo;
pub mod format;
pub mod kafka;
pub mod ops;
pub mod server;
pub mod source;
pub mod sql;
pub mod state;
pub mod stream;
pub mod table;

pub use table::{KTable, KTableError, KTableStats, TableChange};

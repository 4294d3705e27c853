//! A point-in-time report on a typed table.

/// What a table holds and how far it has read; see [`KTable::stats`](super::KTable::stats).
/// Its `rows` is the number of keys.
pub type KTableStats = crate::source::SourceStats;

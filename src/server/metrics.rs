//! What the server counts for operators: connections, statements by kind and
//! outcome, how long they took, and lookups answered on the fast path.
//!
//! Plain relaxed atomics, written where the event happens and read only when
//! something scrapes them (`ops::metrics` encodes them for Prometheus): a prepared
//! lookup, answered in a few microseconds, pays three uncontended `fetch_add`s and
//! one clock read, no lock and no map lookup. That is why this is not a
//! `prometheus_client` `Family` (a read lock and a hash per increment) nor its
//! `Histogram` (a mutex per observation), and why the server does not depend on the
//! encoding crate at all.

use crate::sql::StatementKind;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Upper bounds of the statement duration buckets, in seconds: from a fast-path
/// lookup (tens of microseconds) to a long aggregate.
pub const DURATION_BUCKETS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0, 60.0,
];

/// How a statement is labelled: its [`StatementKind`], or `Invalid` when it failed
/// before it could be classified (a syntax error, a refused statement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementLabel {
    /// Failed to parse, plan or pass the engine's limits.
    Invalid,
    /// Ran as this kind of statement.
    Kind(StatementKind),
}

impl StatementLabel {
    /// Every label, in the order they are stored and reported.
    pub const ALL: [StatementLabel; 8] = [
        StatementLabel::Invalid,
        StatementLabel::Kind(StatementKind::Empty),
        StatementLabel::Kind(StatementKind::Savepoint),
        StatementLabel::Kind(StatementKind::SourceDdl),
        StatementLabel::Kind(StatementKind::Session),
        StatementLabel::Kind(StatementKind::PointLookup),
        StatementLabel::Kind(StatementKind::Query),
        StatementLabel::Kind(StatementKind::Subscribe),
    ];

    fn index(self) -> usize {
        match self {
            StatementLabel::Invalid => 0,
            StatementLabel::Kind(StatementKind::Empty) => 1,
            StatementLabel::Kind(StatementKind::Savepoint) => 2,
            StatementLabel::Kind(StatementKind::SourceDdl) => 3,
            StatementLabel::Kind(StatementKind::Session) => 4,
            StatementLabel::Kind(StatementKind::PointLookup) => 5,
            StatementLabel::Kind(StatementKind::Query) => 6,
            StatementLabel::Kind(StatementKind::Subscribe) => 7,
        }
    }

    /// The `kind` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            StatementLabel::Invalid => "invalid",
            StatementLabel::Kind(StatementKind::Empty) => "empty",
            StatementLabel::Kind(StatementKind::Savepoint) => "savepoint",
            StatementLabel::Kind(StatementKind::SourceDdl) => "source_ddl",
            StatementLabel::Kind(StatementKind::Session) => "session",
            StatementLabel::Kind(StatementKind::PointLookup) => "point_lookup",
            StatementLabel::Kind(StatementKind::Query) => "query",
            StatementLabel::Kind(StatementKind::Subscribe) => "subscribe",
        }
    }
}

impl From<StatementKind> for StatementLabel {
    fn from(kind: StatementKind) -> Self {
        StatementLabel::Kind(kind)
    }
}

/// One kind's statement counts and durations.
#[derive(Debug, Default)]
struct KindCounters {
    ok: AtomicU64,
    error: AtomicU64,
    /// Statements per duration bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    /// Sum of durations, in nanoseconds.
    duration_ns: AtomicU64,
}

/// A point-in-time copy of one kind's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct KindSnapshot {
    /// The statement kind.
    pub label: StatementLabel,
    /// Statements that succeeded.
    pub ok: u64,
    /// Statements that failed.
    pub error: u64,
    /// `(upper bound in seconds, statements)` per bucket, not cumulative; the last
    /// bound is `f64::INFINITY`.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of durations, in seconds.
    pub duration_sum: f64,
}

/// The server's counters; one per server, shared by every connection.
#[derive(Debug, Default)]
pub struct ServerMetrics {
    connections_open: AtomicU64,
    connections_accepted: AtomicU64,
    connections_refused: AtomicU64,
    fast_path_lookups: AtomicU64,
    kinds: [KindCounters; StatementLabel::ALL.len()],
}

impl ServerMetrics {
    /// Fresh counters, to share between a server and whatever reports them.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A connection was accepted; the guard counts it open until dropped.
    pub(crate) fn connection_opened(self: &Arc<Self>) -> OpenConnection {
        self.connections_accepted.fetch_add(1, Relaxed);
        self.connections_open.fetch_add(1, Relaxed);
        OpenConnection(Arc::clone(self))
    }

    /// A connection was refused for a connection limit (answered 53300 or closed).
    pub(crate) fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Relaxed);
    }

    /// A statement of `label` ran for `elapsed`, successfully or not.
    pub(crate) fn statement(&self, label: StatementLabel, ok: bool, elapsed: Duration) {
        let counters = &self.kinds[label.index()];
        if ok {
            counters.ok.fetch_add(1, Relaxed);
        } else {
            counters.error.fetch_add(1, Relaxed);
        }
        let seconds = elapsed.as_secs_f64();
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(DURATION_BUCKETS.len());
        counters.buckets[bucket].fetch_add(1, Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        counters.duration_ns.fetch_add(nanos, Relaxed);
    }

    /// A point lookup was answered from the key index on the connection's task.
    pub(crate) fn fast_path_lookup(&self, ok: bool, elapsed: Duration) {
        self.fast_path_lookups.fetch_add(1, Relaxed);
        self.statement(StatementKind::PointLookup.into(), ok, elapsed);
    }

    /// Connections open now.
    pub fn connections_open(&self) -> u64 {
        self.connections_open.load(Relaxed)
    }

    /// Connections accepted since start.
    pub fn connections_accepted(&self) -> u64 {
        self.connections_accepted.load(Relaxed)
    }

    /// Connections refused for a connection limit since start.
    pub fn connections_refused(&self) -> u64 {
        self.connections_refused.load(Relaxed)
    }

    /// Point lookups answered on the fast path since start (also counted as
    /// `point_lookup` statements).
    pub fn fast_path_lookups(&self) -> u64 {
        self.fast_path_lookups.load(Relaxed)
    }

    /// Every kind's counters, in [`StatementLabel::ALL`] order.
    pub fn statements(&self) -> Vec<KindSnapshot> {
        StatementLabel::ALL
            .iter()
            .map(|&label| {
                let counters = &self.kinds[label.index()];
                let buckets = DURATION_BUCKETS
                    .iter()
                    .copied()
                    .chain([f64::INFINITY])
                    .zip(counters.buckets.iter().map(|b| b.load(Relaxed)))
                    .collect();
                KindSnapshot {
                    label,
                    ok: counters.ok.load(Relaxed),
                    error: counters.error.load(Relaxed),
                    buckets,
                    duration_sum: counters.duration_ns.load(Relaxed) as f64 / 1e9,
                }
            })
            .collect()
    }
}

/// Counts a connection open while it lives.
pub(crate) struct OpenConnection(Arc<ServerMetrics>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_land_in_their_kind_outcome_and_bucket() {
        let metrics = ServerMetrics::new();
        metrics.statement(StatementKind::Query.into(), true, Duration::from_millis(3));
        metrics.statement(StatementKind::Query.into(), false, Duration::from_secs(100));
        metrics.fast_path_lookup(true, Duration::from_micros(20));
        let snapshot = metrics.statements();
        let query = &snapshot[StatementLabel::Kind(StatementKind::Query).index()];
        assert_eq!((query.ok, query.error), (1, 1));
        // 3 ms falls in the (2.5 ms, 5 ms] bucket; 100 s past the last bound.
        let counted: Vec<(f64, u64)> = query
            .buckets
            .iter()
            .copied()
            .filter(|(_, n)| *n > 0)
            .collect();
        assert_eq!(counted, vec![(0.005, 1), (f64::INFINITY, 1)]);
        assert!((query.duration_sum - 100.003).abs() < 1e-6);
        let lookup = &snapshot[StatementLabel::Kind(StatementKind::PointLookup).index()];
        assert_eq!(lookup.ok, 1);
        assert_eq!(metrics.fast_path_lookups(), 1);
        assert_eq!(snapshot.len(), StatementLabel::ALL.len());
        for (i, kind) in snapshot.iter().enumerate() {
            assert_eq!(kind.label.index(), i);
        }
    }

    #[test]
    fn open_connections_are_counted_until_dropped() {
        let metrics = ServerMetrics::new();
        let first = metrics.connection_opened();
        let second = metrics.connection_opened();
        drop(first);
        assert_eq!(metrics.connections_open(), 1);
        assert_eq!(metrics.connections_accepted(), 2);
        drop(second);
        assert_eq!(metrics.connections_open(), 0);
    }
}

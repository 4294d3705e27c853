//! `SUBSCRIBE`: a table's or stream's changes as an unbounded stream of Arrow rows.
//!
//! A subscription reads one source through its change log (`crate::changefeed`):
//! first the rows at a consistent cut (unless `SNAPSHOT = false`, or resuming `AS OF
//! OFFSETS`), then every change after the cut, in order per partition. Its query is one
//! source with a `WHERE` and a select list, planned by DataFusion once; the filter and
//! the select list run as DataFusion physical expressions on each batch of changes,
//! which costs no planning per batch and keeps the semantics DataFusion's.
//!
//! Every row starts with three columns, then the selected ones:
//!
//! | column             | type   | meaning                                                |
//! |--------------------|--------|--------------------------------------------------------|
//! | `ktable_partition` | INT    | the Kafka partition of the change (NULL for snapshot rows) |
//! | `ktable_offset`    | BIGINT | its offset in the partition (NULL for snapshot rows)   |
//! | `ktable_op`        | TEXT   | `snapshot`, `upsert`, `delete`, `insert` or `progress` |
//!
//! * `snapshot`: a row of the table (or of the stream's window) at the cut;
//! * `upsert`: the key now has this row; `delete`: the key has no row (the key column
//!   is set, the others are NULL). With a `WHERE`, an upsert whose new row does not
//!   match arrives as a delete of its key: the key is not (or no longer) in the result.
//!   A table subscription must select the key column, so every change names its key;
//! * `insert`: a stream's new record;
//! * `progress` (with `PROGRESS = true`): every change of `ktable_partition` up to
//!   `ktable_offset` was delivered; sent after the snapshot (the cut), after each
//!   batch of changes (also when the filter let none of them through), and again
//!   after each second without changes, so an idle client knows the feed is alive
//!   and a streaming server notices a client that left. The selected columns are
//!   NULL.
//!
//! To resume, subscribe again `AS OF OFFSETS (p:o, ...)` with the last offset seen per
//! partition; the changes after them follow, if the source's change log still holds
//! them (else an error says from where it does).

mod rows;

use super::engine::Engine;
use super::registry::SourceHandle;
use super::subscribe_syntax::SubscribeSyntax;
use super::SqlError;
use crate::changefeed::{FellBehind, LogReader, NotRetained, Offsets, ReadError};
use crate::stream::StreamChanges;
use crate::table::columnar::{SubscribeFrom, TableChanges};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use futures::stream::BoxStream;
use futures::StreamExt;
pub(crate) use rows::SubscriptionRows;
use rows::{progress_rows, snapshot_rows, stream_rows, table_rows};
use std::collections::VecDeque;
use std::sync::Arc;

/// Why a subscription cannot start or go on.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The statement is not valid `SUBSCRIBE` syntax.
    #[error("SUBSCRIBE: {0}")]
    Syntax(String),
    /// The query is not one source with a filter and a select list.
    #[error("SUBSCRIBE: {0}")]
    Unsupported(String),
    /// The relation is not a Kafka table or stream of the engine.
    #[error("SUBSCRIBE: \"{0}\" is not a Kafka table or stream")]
    NotASource(String),
    /// The subscriber fell behind its bounded buffer and was ended.
    #[error(transparent)]
    FellBehind(#[from] FellBehind),
    /// `AS OF OFFSETS` asked for changes no longer held.
    #[error(transparent)]
    NotRetained(#[from] NotRetained),
    /// The cursor statement names no cursor of the session.
    #[error("cursor \"{0}\" does not exist")]
    NoCursor(String),
    /// A cursor of that name exists already.
    #[error("cursor \"{0}\" already exists")]
    CursorExists(String),
    /// The session holds as many subscription cursors as it may.
    #[error(
        "too many subscription cursors: a session may hold {0}; CLOSE one before declaring another"
    )]
    TooManyCursors(usize),
}

impl SubscribeError {
    /// The SQLSTATE clients see.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            SubscribeError::Syntax(_) => "42601",      // syntax_error
            SubscribeError::Unsupported(_) => "0A000", // feature_not_supported
            SubscribeError::NotASource(_) => "42809",  // wrong_object_type
            // configuration_limit_exceeded: the subscriber's buffer was exceeded.
            SubscribeError::FellBehind(_) => "53400",
            // object_not_in_prerequisite_state: the log no longer holds the offsets.
            SubscribeError::NotRetained(_) => "55000",
            SubscribeError::NoCursor(_) => "34000", // invalid_cursor_name
            SubscribeError::CursorExists(_) => "42P03", // duplicate_cursor
            SubscribeError::TooManyCursors(_) => "53400", // configuration_limit_exceeded
        }
    }
}

/// The first three columns of every subscription row.
pub const PARTITION_COLUMN: &str = "ktable_partition";
/// See [`PARTITION_COLUMN`].
pub const OFFSET_COLUMN: &str = "ktable_offset";
/// See [`PARTITION_COLUMN`].
pub const OP_COLUMN: &str = "ktable_op";

/// A `SUBSCRIBE` planned once: its source, filter and select list as physical
/// expressions, and its options.
pub struct SubscribePlan {
    source: String,
    filter: Option<Arc<dyn PhysicalExpr>>,
    projection: Vec<Arc<dyn PhysicalExpr>>,
    /// For a table: the output columns (among the selected) holding the key, one per
    /// key column in key order (more than one for a composite key).
    key_output: Option<Vec<usize>>,
    /// The rows' columns (the three `ktable_` ones, then the selected).
    schema: SchemaRef,
    snapshot: bool,
    progress: bool,
    as_of: Option<Offsets>,
}

impl std::fmt::Debug for SubscribePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscribePlan")
            .field("source", &self.source)
            .field("schema", &self.schema)
            .finish()
    }
}

impl SubscribePlan {
    /// The subscription's rows.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The table or stream subscribed to.
    pub fn source(&self) -> &str {
        &self.source
    }
}

fn unsupported(message: impl Into<String>) -> SqlError {
    SqlError::Subscribe(SubscribeError::Unsupported(message.into()))
}

/// The parts of a plan a subscription can run: select list, filter, source.
struct Shape<'a> {
    projection: &'a [Expr],
    filter: Option<&'a Expr>,
    input_schema: DFSchemaRef,
    table: String,
}

fn shape_of(plan: &LogicalPlan) -> Result<Shape<'_>, SqlError> {
    const WHAT: &str = "only one table or stream with WHERE and a select list can be \
                        subscribed to (no joins, aggregates, ORDER BY, LIMIT or DISTINCT)";
    let LogicalPlan::Projection(projection) = plan else {
        return Err(unsupported(WHAT));
    };
    let (filter, mut below) = match projection.input.as_ref() {
        LogicalPlan::Filter(filter) => (Some(&filter.predicate), filter.input.as_ref()),
        other => (None, other),
    };
    if let LogicalPlan::SubqueryAlias(alias) = below {
        below = alias.input.as_ref();
    }
    let LogicalPlan::TableScan(scan) = below else {
        return Err(unsupported(WHAT));
    };
    if scan.projection.is_some() || !scan.filters.is_empty() || scan.fetch.is_some() {
        return Err(unsupported(WHAT));
    }
    Ok(Shape {
        projection: &projection.expr,
        filter,
        input_schema: Arc::clone(projection.input.schema()),
        table: scan.table_name.table().to_string(),
    })
}

impl Engine {
    /// Plans a `SUBSCRIBE` on `ctx`.
    pub(super) async fn plan_subscription(
        &self,
        ctx: &SessionContext,
        syntax: SubscribeSyntax,
    ) -> Result<SubscribePlan, SqlError> {
        // Refused here if it nests too deep or parses too long; a syntax error is
        // reported by the parse below, with the PostgreSQL rewrites.
        let _syntax_checked_below = self.config.guard.parse(&syntax.query)?;
        let statement = self
            .parse(&syntax.query)?
            .ok_or_else(|| SqlError::Subscribe(SubscribeError::Syntax("no query".into())))?;
        self.config.guard.check_statement(&statement)?;
        let plan = ctx.state().statement_to_plan(statement).await?;
        let shape = shape_of(&plan)?;
        let source = self
            .registry
            .get(&shape.table)
            .ok_or_else(|| SqlError::Subscribe(SubscribeError::NotASource(shape.table.clone())))?;
        let is_table = matches!(source.handle, SourceHandle::Table { .. });
        let physical = |expr: &Expr| ctx.create_physical_expr(expr.clone(), &shape.input_schema);
        let filter = shape.filter.map(physical).transpose()?;
        let projection = shape
            .projection
            .iter()
            .map(physical)
            .collect::<Result<Vec<_>, _>>()?;
        let key_output = match &source.handle {
            SourceHandle::Table { table, .. } => {
                // A delete carries only its key, so every key column must be selected
                // for a delete row to say which row went.
                let positions = table
                    .key_columns()
                    .iter()
                    .map(|&column| {
                        let key_name = table.schema().field(column).name().clone();
                        shape
                            .projection
                            .iter()
                            .position(|expr| {
                                matches!(expr.clone().unalias(), Expr::Column(c) if c.name == key_name)
                            })
                            .ok_or_else(|| {
                                unsupported(format!(
                                    "a table subscription must select the key column {key_name}"
                                ))
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Some(positions)
            }
            SourceHandle::Stream { .. } => None,
        };
        let mut fields = vec![
            Field::new(PARTITION_COLUMN, DataType::Int32, true),
            Field::new(OFFSET_COLUMN, DataType::Int64, true),
            Field::new(OP_COLUMN, DataType::Utf8, false),
        ];
        fields.extend(
            plan.schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true)),
        );
        Ok(SubscribePlan {
            source: shape.table,
            filter,
            projection,
            key_output,
            schema: Arc::new(Schema::new(fields)),
            snapshot: syntax.snapshot.unwrap_or(is_table) && syntax.as_of.is_none(),
            progress: syntax.progress,
            as_of: syntax.as_of,
        })
    }

    /// Starts a subscription: its snapshot is cut now, its changes follow without end.
    /// Dropping the stream ends the subscription and frees what it held.
    pub fn start_subscription(
        &self,
        plan: &Arc<SubscribePlan>,
    ) -> Result<SendableRecordBatchStream, SqlError> {
        let rows = self
            .start_shared_subscription(plan)?
            .map(|rows| rows.map(|rows| rows.rows));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&plan.schema),
            rows,
        )))
    }

    /// [`start_subscription`](Self::start_subscription), each batch with what the
    /// source's other subscribers of the same query share of it (its encoding for
    /// the wire).
    pub(crate) fn start_shared_subscription(
        &self,
        plan: &Arc<SubscribePlan>,
    ) -> Result<BoxStream<'static, Result<SubscriptionRows, DataFusionError>>, SqlError> {
        let source = self
            .registry
            .get(&plan.source)
            .ok_or_else(|| SqlError::Subscribe(SubscribeError::NotASource(plan.source.clone())))?;
        let buffer = self.config.subscribe_buffer;
        let (first, offsets, reader) = match &source.handle {
            SourceHandle::Table { table, .. } => {
                table.changes().set_capacity(buffer);
                let from = match (&plan.as_of, plan.snapshot) {
                    (Some(offsets), _) => SubscribeFrom::Offsets(offsets.clone()),
                    (None, true) => SubscribeFrom::Snapshot,
                    (None, false) => SubscribeFrom::Now,
                };
                let start = table.subscribe(from).map_err(SubscribeError::from)?;
                let rows = match &start.snapshot {
                    Some(snapshot) => snapshot
                        .batches()
                        .map_err(|e| DataFusionError::Execution(e.to_string()))?,
                    None => Vec::new(),
                };
                (rows, start.offsets, Reader::Table(start.reader))
            }
            SourceHandle::Stream { store, .. } => {
                store.changes().set_capacity(buffer);
                let start = store
                    .subscribe(plan.snapshot, plan.as_of.clone())
                    .map_err(SubscribeError::from)?;
                (
                    start.window.unwrap_or_default(),
                    start.offsets,
                    Reader::Stream(start.reader),
                )
            }
        };
        tracing::debug!(source = %plan.source, ?offsets, "subscription started");
        let mut pending = VecDeque::new();
        for batch in first {
            let rows = plan.rows(&batch)?;
            if rows.num_rows() > 0 {
                pending.push_back(SubscriptionRows::own(snapshot_rows(plan, rows)?));
            }
        }
        if plan.progress {
            pending.push_back(SubscriptionRows::own(progress_rows(plan, &offsets)?));
        }
        let state = Subscription {
            plan: Arc::clone(plan),
            reader: Some(reader),
            pending,
            seen: offsets,
        };
        Ok(futures::stream::unfold(state, |mut state| async move {
            let batch = state.next().await?;
            Some((batch, state))
        })
        .boxed())
    }

    /// Runs `SUBSCRIBE ...` on the engine's context: see [`start_subscription`](Self::start_subscription).
    ///
    /// ```no_run
    /// # async fn run(engine: &ktable::sql::Engine) -> Result<(), ktable::sql::SqlError> {
    /// use futures::StreamExt;
    /// let mut changes = engine.subscribe("SUBSCRIBE (SELECT id, name FROM users WHERE age >= 18)").await?;
    /// while let Some(batch) = changes.next().await {
    ///     println!("{} changes", batch?.num_rows());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn subscribe(&self, sql: &str) -> Result<SendableRecordBatchStream, SqlError> {
        self.subscribe_on(self.context(), sql).await
    }

    /// [`subscribe`](Self::subscribe) on `ctx`.
    pub async fn subscribe_on(
        &self,
        ctx: &SessionContext,
        sql: &str,
    ) -> Result<SendableRecordBatchStream, SqlError> {
        let prepared = self.prepare(ctx, sql).await?;
        match prepared.subscription() {
            Some(plan) => self.start_subscription(plan),
            None => Err(SqlError::Subscribe(SubscribeError::Syntax(
                "expected SUBSCRIBE".into(),
            ))),
        }
    }
}

/// How long a subscription with `PROGRESS = true` stays silent before it repeats
/// its progress rows.
pub const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// `work`, or `None` if it takes longer than `limit`.
async fn within<T>(
    limit: Option<std::time::Duration>,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, work).await.ok(),
        None => Some(work.await),
    }
}

enum Reader {
    Table(LogReader<TableChanges>),
    Stream(LogReader<StreamChanges>),
}

/// A running subscription: rows to send, then the reader.
struct Subscription {
    plan: Arc<SubscribePlan>,
    /// `None` once it ended with an error.
    reader: Option<Reader>,
    pending: VecDeque<SubscriptionRows>,
    /// The last offset taken from the log, per partition.
    seen: Offsets,
}

impl Subscription {
    async fn next(&mut self) -> Option<Result<SubscriptionRows, DataFusionError>> {
        loop {
            if let Some(batch) = self.pending.pop_front() {
                return Some(Ok(batch));
            }
            let heartbeat = self.plan.progress.then_some(PROGRESS_INTERVAL);
            let read = match self.reader.as_mut()? {
                Reader::Table(reader) => within(heartbeat, reader.next()).await.map(|read| {
                    read.map(|batches| {
                        batches
                            .iter()
                            .map(|b| table_rows(&self.plan, b, &mut self.seen))
                            .collect::<Result<Vec<_>, _>>()
                    })
                }),
                Reader::Stream(reader) => within(heartbeat, reader.next()).await.map(|read| {
                    read.map(|batches| {
                        batches
                            .iter()
                            .map(|b| stream_rows(&self.plan, b, &mut self.seen))
                            .collect::<Result<Vec<_>, _>>()
                    })
                }),
            };
            let Some(read) = read else {
                // Idle: say how far the feed is (and, over the wire, find out whether
                // the client is still there).
                if !self.seen.is_empty() {
                    match progress_rows(&self.plan, &self.seen) {
                        Ok(progress) => self.pending.push_back(SubscriptionRows::own(progress)),
                        Err(error) => return Some(Err(error)),
                    }
                }
                continue;
            };
            match read {
                Ok(Ok(batches)) => {
                    for (rows, touched) in batches {
                        if rows.rows.num_rows() > 0 {
                            self.pending.push_back(rows);
                        }
                        if self.plan.progress && !touched.is_empty() {
                            match progress_rows(&self.plan, &touched) {
                                Ok(progress) => {
                                    self.pending.push_back(SubscriptionRows::own(progress))
                                }
                                Err(error) => return Some(Err(error)),
                            }
                        }
                    }
                }
                Ok(Err(error)) => {
                    self.reader = None;
                    return Some(Err(error));
                }
                Err(ReadError::Closed) => {
                    tracing::debug!(source = %self.plan.source, "subscription ended: its source was dropped or stopped");
                    return None;
                }
                Err(ReadError::Evicted { capacity }) => {
                    self.reader = None;
                    let error = SubscribeError::FellBehind(FellBehind {
                        capacity,
                        resume_from: self.seen.clone(),
                    });
                    tracing::info!(source = %self.plan.source, %error, "subscription ended");
                    return Some(Err(DataFusionError::External(Box::new(error))));
                }
            }
        }
    }
}

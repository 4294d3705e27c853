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

use super::engine::Engine;
use super::registry::SourceHandle;
use super::subscribe_syntax::SubscribeSyntax;
use super::SqlError;
use crate::changefeed::{FellBehind, LogReader, NotRetained, Offsets, ReadError};
use crate::stream::StreamChanges;
use crate::table::columnar::{Change, SubscribeFrom, TableChanges};
use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, Int32Array, Int64Array, RecordBatch,
    StringArray, UInt32Array,
};
use arrow::compute::{filter_record_batch, interleave, prep_null_mask_filter, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
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
        self.config.guard.check_depth(&syntax.query)?;
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
            let rows = plan.rows(&batch, None)?;
            if rows.num_rows() > 0 {
                pending.push_back(snapshot_rows(plan, rows)?);
            }
        }
        if plan.progress {
            pending.push_back(progress_rows(plan, &offsets)?);
        }
        let state = Subscription {
            plan: Arc::clone(plan),
            reader: Some(reader),
            pending,
            seen: offsets,
        };
        let stream = futures::stream::unfold(state, |mut state| async move {
            let batch = state.next().await?;
            Some((batch, state))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&plan.schema),
            stream,
        )))
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
    pending: VecDeque<RecordBatch>,
    /// The last offset taken from the log, per partition.
    seen: Offsets,
}

impl Subscription {
    async fn next(&mut self) -> Option<Result<RecordBatch, DataFusionError>> {
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
                        Ok(progress) => self.pending.push_back(progress),
                        Err(error) => return Some(Err(error)),
                    }
                }
                continue;
            };
            match read {
                Ok(Ok(batches)) => {
                    for (rows, touched) in batches {
                        if rows.num_rows() > 0 {
                            self.pending.push_back(rows);
                        }
                        if self.plan.progress && !touched.is_empty() {
                            match progress_rows(&self.plan, &touched) {
                                Ok(progress) => self.pending.push_back(progress),
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
                    tracing::debug!(source = %self.plan.source, "subscription ended: source dropped");
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

impl SubscribePlan {
    /// The selected columns of the rows of `values` (the source's columns) that pass
    /// the filter; with `matched`, the filter's verdict per row is given back instead
    /// of dropping rows.
    fn rows(
        &self,
        values: &RecordBatch,
        matched: Option<&mut Vec<bool>>,
    ) -> Result<RecordBatch, DataFusionError> {
        let mask = match &self.filter {
            Some(filter) => {
                let verdict = filter.evaluate(values)?.into_array(values.num_rows())?;
                let verdict = verdict.as_boolean_opt().ok_or_else(|| {
                    DataFusionError::Plan("the WHERE of a SUBSCRIBE is not a condition".into())
                })?;
                Some(if verdict.null_count() > 0 {
                    prep_null_mask_filter(verdict)
                } else {
                    verdict.clone()
                })
            }
            None => None,
        };
        let values = match (&mask, matched) {
            (Some(mask), Some(matched)) => {
                matched.extend(mask.values().iter());
                values.clone()
            }
            (Some(mask), None) => filter_record_batch(values, mask)?,
            (None, Some(matched)) => {
                matched.extend(std::iter::repeat_n(true, values.num_rows()));
                values.clone()
            }
            (None, None) => values.clone(),
        };
        let columns = self
            .projection
            .iter()
            .map(|expr| expr.evaluate(&values)?.into_array(values.num_rows()))
            .collect::<Result<Vec<_>, _>>()?;
        let selected = Arc::new(Schema::new(self.schema.fields()[3..].to_vec()));
        let options =
            arrow::array::RecordBatchOptions::new().with_row_count(Some(values.num_rows()));
        Ok(RecordBatch::try_new_with_options(
            selected, columns, &options,
        )?)
    }
}

/// Rows with the three `ktable_` columns in front of `selected`.
fn with_meta(
    plan: &SubscribePlan,
    partitions: Int32Array,
    offsets: Int64Array,
    ops: StringArray,
    selected: Vec<ArrayRef>,
) -> Result<RecordBatch, DataFusionError> {
    let mut columns: Vec<ArrayRef> = vec![Arc::new(partitions), Arc::new(offsets), Arc::new(ops)];
    columns.extend(selected);
    Ok(RecordBatch::try_new(Arc::clone(&plan.schema), columns)?)
}

fn snapshot_rows(plan: &SubscribePlan, rows: RecordBatch) -> Result<RecordBatch, DataFusionError> {
    let n = rows.num_rows();
    with_meta(
        plan,
        Int32Array::new_null(n),
        Int64Array::new_null(n),
        StringArray::from_iter_values(std::iter::repeat_n("snapshot", n)),
        rows.columns().to_vec(),
    )
}

/// One progress row per partition of `offsets`.
fn progress_rows(plan: &SubscribePlan, offsets: &Offsets) -> Result<RecordBatch, DataFusionError> {
    let n = offsets.len();
    let selected = plan.schema.fields()[3..]
        .iter()
        .map(|f| new_null_array(f.data_type(), n))
        .collect();
    with_meta(
        plan,
        Int32Array::from_iter_values(offsets.keys().copied()),
        Int64Array::from_iter_values(offsets.values().copied()),
        StringArray::from_iter_values(std::iter::repeat_n("progress", n)),
        selected,
    )
}

/// Whether the change at `position` is new to a subscriber that has seen `seen`;
/// records it as seen.
fn take_position(seen: &mut Offsets, (partition, offset): (i32, i64)) -> bool {
    if seen.get(&partition).is_some_and(|&last| offset <= last) {
        return false;
    }
    seen.insert(partition, offset);
    true
}

/// A table's applied batch as subscription rows, and the last offset per partition
/// it moved the subscriber to.
fn table_rows(
    plan: &SubscribePlan,
    batch: &TableChanges,
    seen: &mut Offsets,
) -> Result<(RecordBatch, Offsets), DataFusionError> {
    let key_output = plan.key_output.as_deref().ok_or_else(|| {
        DataFusionError::Internal("a table subscription without a key column".into())
    })?;
    let mut touched = Offsets::new();
    // The new changes, in order: an upsert's row in the batch, or a deleted key.
    let mut upserts: Vec<u32> = Vec::new();
    let mut kept: Vec<(&Change, (i32, i64))> = Vec::new();
    for (change, &position) in batch.changes.iter().zip(&batch.positions) {
        if !take_position(seen, position) {
            continue;
        }
        touched.insert(position.0, position.1);
        if let Change::Upsert { row } = change {
            upserts.push(*row);
        }
        kept.push((change, position));
    }
    let values = take_record_batch(&batch.rows, &UInt32Array::from(upserts))?;
    let mut matched = Vec::with_capacity(values.num_rows());
    let selected = plan.rows(&values, Some(&mut matched))?;
    // Where each output row comes from: source 0 is the selected upserts, source 1
    // the delete rows (the deleted keys, every other column NULL). An upsert the
    // filter turned away is a delete that keeps its own key value, whatever its type.
    // A deleted key comes as its text (a composite key's: the JSON array of its
    // parts), one list of texts per key column.
    let mut delete_keys: Vec<Vec<String>> = vec![Vec::new(); key_output.len()];
    let mut deletes = 0;
    let mut key_picks: Vec<(usize, usize)> = Vec::with_capacity(kept.len());
    let mut value_picks: Vec<(usize, usize)> = Vec::with_capacity(kept.len());
    let mut ops: Vec<&str> = Vec::with_capacity(kept.len());
    let mut upsert_index = 0;
    for (change, _) in &kept {
        match change {
            Change::Upsert { .. } => {
                let row = upsert_index;
                upsert_index += 1;
                key_picks.push((0, row));
                if matched.get(row).copied().unwrap_or(false) {
                    value_picks.push((0, row));
                    ops.push("upsert");
                } else {
                    value_picks.push((1, 0));
                    ops.push("delete");
                }
            }
            Change::Delete { key } => {
                let parts = crate::format::key_parts(key, key_output.len()).ok_or_else(|| {
                    DataFusionError::Internal(format!(
                        "deleted key {key:?} does not have {} parts",
                        key_output.len()
                    ))
                })?;
                for (texts, part) in delete_keys.iter_mut().zip(parts) {
                    texts.push(part);
                }
                key_picks.push((1, deletes));
                deletes += 1;
                value_picks.push((1, 0));
                ops.push("delete");
            }
        }
    }
    // At least one NULL for the turned-away upserts to point at.
    let null_rows = deletes.max(1);
    let mut columns = Vec::with_capacity(selected.num_columns());
    for (i, column) in selected.columns().iter().enumerate() {
        let column = column.as_ref();
        let merged = match key_output.iter().position(|&output| output == i) {
            Some(part) => {
                let texts: ArrayRef =
                    Arc::new(StringArray::from(std::mem::take(&mut delete_keys[part])));
                let keys = arrow::compute::cast(&texts, column.data_type())?;
                interleave(&[column, keys.as_ref()], &key_picks)?
            }
            None => {
                let nulls = new_null_array(column.data_type(), null_rows);
                interleave(&[column, nulls.as_ref()], &value_picks)?
            }
        };
        columns.push(merged);
    }
    let rows = with_meta(
        plan,
        Int32Array::from_iter_values(kept.iter().map(|(_, p)| p.0)),
        Int64Array::from_iter_values(kept.iter().map(|(_, p)| p.1)),
        StringArray::from(ops),
        columns,
    )?;
    Ok((rows, touched))
}

/// A stream's appended batch as subscription rows, and the last offset per partition
/// it moved the subscriber to.
fn stream_rows(
    plan: &SubscribePlan,
    batch: &StreamChanges,
    seen: &mut Offsets,
) -> Result<(RecordBatch, Offsets), DataFusionError> {
    let mut touched = Offsets::new();
    let new: Vec<bool> = batch
        .positions
        .iter()
        .map(|&position| {
            let new = take_position(seen, position);
            if new {
                touched.insert(position.0, position.1);
            }
            new
        })
        .collect();
    let all_new = new.iter().all(|n| *n);
    let keep = BooleanArray::from(new);
    let values = if all_new {
        batch.rows.clone()
    } else {
        filter_record_batch(&batch.rows, &keep)?
    };
    let positions: Vec<(i32, i64)> = batch
        .positions
        .iter()
        .zip(keep.values().iter())
        .filter(|(_, keep)| *keep)
        .map(|(p, _)| *p)
        .collect();
    let mut matched = Vec::with_capacity(values.num_rows());
    let selected = plan.rows(&values, Some(&mut matched))?;
    let mask = BooleanArray::from(matched);
    let n = selected.num_rows();
    let rows = with_meta(
        plan,
        Int32Array::from_iter_values(positions.iter().map(|p| p.0)),
        Int64Array::from_iter_values(positions.iter().map(|p| p.1)),
        StringArray::from_iter_values(std::iter::repeat_n("insert", n)),
        selected.columns().to_vec(),
    )?;
    Ok((filter_record_batch(&rows, &mask)?, touched))
}

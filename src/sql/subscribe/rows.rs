//! A subscription's rows: the source's applied batches through the subscription's
//! filter and select list, with the three `ktable_` columns in front.
//!
//! What every subscriber of a source would compute alike (a table batch's changes as
//! rows, the position columns, which changes are new) is made once per batch by the
//! store (`TableChanges::as_rows`, `StreamChanges::position_columns`); per subscriber
//! remain its filter, its select list and the op column, so a hundred subscribers cost
//! ingestion little more than one. Subscribers of the same query share those too, and
//! the encoding of the rows for the wire (`SubscriptionRows::encoded`), when they
//! receive the whole batch (a subscriber that resumed mid-batch makes its own).

use super::SubscribePlan;
use crate::changefeed::{Offsets, PositionColumns, SharedResults};
use crate::stream::StreamChanges;
use crate::table::columnar::{ChangeRows, TableChanges};
use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use arrow::compute::kernels::boolean::{not, or};
use arrow::compute::kernels::nullif::nullif;
use arrow::compute::{filter, filter_record_batch, prep_null_mask_filter};
use arrow::datatypes::Schema;
use datafusion::error::DataFusionError;
use std::sync::{Arc, OnceLock};

/// A batch of a subscription's rows, with what the subscribers of the same query
/// share of it.
pub(crate) struct SubscriptionRows {
    /// The rows.
    pub(crate) rows: RecordBatch,
    shared: Option<Arc<SharedRows>>,
}

/// One change batch's rows for one query, kept in the batch for every subscriber of
/// that query, with the encodings made of them.
struct SharedRows {
    plan: Arc<SubscribePlan>,
    rows: OnceLock<Result<RecordBatch, String>>,
    encodings: SharedResults,
}

/// One encoding of shared rows, for the format `F` it was made in.
struct Encoding<F, T> {
    format: F,
    encoded: OnceLock<Arc<T>>,
}

impl SubscriptionRows {
    /// Rows of this subscriber's own (a snapshot, progress, a partly seen batch).
    pub(super) fn own(rows: RecordBatch) -> Self {
        Self { rows, shared: None }
    }

    /// `encode(rows)`: made once per `format` by the first subscriber of this query
    /// that asks, then shared with the others that receive the same batch.
    pub(crate) fn encoded<F, T>(&self, format: &F, encode: impl FnOnce(&RecordBatch) -> T) -> Arc<T>
    where
        F: PartialEq + Clone + Send + Sync + 'static,
        T: Send + Sync + 'static,
    {
        let Some(shared) = &self.shared else {
            return Arc::new(encode(&self.rows));
        };
        let encoding = shared.encodings.entry(
            |e: &Encoding<F, T>| e.format == *format,
            || Encoding {
                format: format.clone(),
                encoded: OnceLock::new(),
            },
        );
        Arc::clone(
            encoding
                .encoded
                .get_or_init(|| Arc::new(encode(&self.rows))),
        )
    }
}

/// `make`'s rows, or those another subscriber of the same query made of the batch
/// whose shared results are `shared`.
fn shared_rows(
    plan: &Arc<SubscribePlan>,
    shared: &SharedResults,
    make: impl FnOnce() -> Result<RecordBatch, DataFusionError>,
) -> Result<SubscriptionRows, DataFusionError> {
    let entry = shared.entry(
        |e: &SharedRows| e.plan.same_rows(plan),
        || SharedRows {
            plan: Arc::clone(plan),
            rows: OnceLock::new(),
            encodings: SharedResults::default(),
        },
    );
    let rows = entry
        .rows
        .get_or_init(|| make().map_err(|e| e.to_string()))
        .clone()
        .map_err(DataFusionError::Execution)?;
    Ok(SubscriptionRows {
        rows,
        shared: Some(entry),
    })
}

/// The rows `rows_of` makes of the changes at `positions` that the subscriber has not
/// seen, and the last offset per partition they move it to. When it has seen none of
/// them (the usual case), the rows are those every subscriber of its query shares.
fn unseen_rows(
    plan: &Arc<SubscribePlan>,
    positions: &PositionColumns,
    shared: &SharedResults,
    seen: &mut Offsets,
    rows_of: impl Fn(Option<&BooleanArray>) -> Result<RecordBatch, DataFusionError>,
) -> Result<(SubscriptionRows, Offsets), DataFusionError> {
    let mut touched = Offsets::new();
    let rows = match positions.take_unseen(seen, &mut touched) {
        None => shared_rows(plan, shared, || rows_of(None))?,
        Some(new) => SubscriptionRows::own(rows_of(Some(&new))?),
    };
    Ok((rows, touched))
}

impl SubscribePlan {
    /// Whether `other` makes the same rows of the same changes: the same source,
    /// filter, select list and columns (its options, which decide where it starts,
    /// do not matter).
    fn same_rows(&self, other: &SubscribePlan) -> bool {
        self.source == other.source
            && self.schema == other.schema
            && self.key_output == other.key_output
            && self.filter == other.filter
            && self.projection == other.projection
    }

    /// The filter's verdict on each row of `values` (NULL counts as no); `None`
    /// without a filter.
    fn verdict(&self, values: &RecordBatch) -> Result<Option<BooleanArray>, DataFusionError> {
        let Some(filter) = &self.filter else {
            return Ok(None);
        };
        let verdict = filter.evaluate(values)?.into_array(values.num_rows())?;
        let verdict = verdict.as_boolean_opt().ok_or_else(|| {
            DataFusionError::Plan("the WHERE of a SUBSCRIBE is not a condition".into())
        })?;
        Ok(Some(if verdict.null_count() > 0 {
            prep_null_mask_filter(verdict)
        } else {
            verdict.clone()
        }))
    }

    /// The select list evaluated on `values`.
    fn project(&self, values: &RecordBatch) -> Result<Vec<ArrayRef>, DataFusionError> {
        self.projection
            .iter()
            .map(|expr| expr.evaluate(values)?.into_array(values.num_rows()))
            .collect()
    }

    /// The selected columns of the rows of `values` (the source's columns) that pass
    /// the filter.
    pub(super) fn rows(&self, values: &RecordBatch) -> Result<RecordBatch, DataFusionError> {
        let values = match self.verdict(values)? {
            Some(pass) => filter_record_batch(values, &pass)?,
            None => values.clone(),
        };
        let selected = Arc::new(Schema::new(self.schema.fields()[3..].to_vec()));
        let options =
            arrow::array::RecordBatchOptions::new().with_row_count(Some(values.num_rows()));
        Ok(RecordBatch::try_new_with_options(
            selected,
            self.project(&values)?,
            &options,
        )?)
    }
}

/// Rows with the three `ktable_` columns in front of `selected`.
fn with_meta(
    plan: &SubscribePlan,
    partitions: ArrayRef,
    offsets: ArrayRef,
    ops: ArrayRef,
    selected: Vec<ArrayRef>,
) -> Result<RecordBatch, DataFusionError> {
    let mut columns = vec![partitions, offsets, ops];
    columns.extend(selected);
    Ok(RecordBatch::try_new(Arc::clone(&plan.schema), columns)?)
}

fn ops(n: usize, op: impl Fn(usize) -> &'static str) -> ArrayRef {
    Arc::new(StringArray::from_iter_values((0..n).map(op)))
}

/// The rows of a snapshot: the selected columns of the source's rows at the cut.
pub(super) fn snapshot_rows(
    plan: &SubscribePlan,
    rows: RecordBatch,
) -> Result<RecordBatch, DataFusionError> {
    let n = rows.num_rows();
    with_meta(
        plan,
        Arc::new(Int32Array::new_null(n)),
        Arc::new(Int64Array::new_null(n)),
        ops(n, |_| "snapshot"),
        rows.columns().to_vec(),
    )
}

/// One progress row per partition of `offsets`.
pub(super) fn progress_rows(
    plan: &SubscribePlan,
    offsets: &Offsets,
) -> Result<RecordBatch, DataFusionError> {
    let n = offsets.len();
    let selected = plan.schema.fields()[3..]
        .iter()
        .map(|f| new_null_array(f.data_type(), n))
        .collect();
    with_meta(
        plan,
        Arc::new(Int32Array::from_iter_values(offsets.keys().copied())),
        Arc::new(Int64Array::from_iter_values(offsets.values().copied())),
        ops(n, |_| "progress"),
        selected,
    )
}

/// The position columns of the changes `keep` says (all of them when `None`).
fn position_rows(
    positions: &PositionColumns,
    keep: Option<&BooleanArray>,
) -> Result<(ArrayRef, ArrayRef), DataFusionError> {
    Ok(match keep {
        Some(keep) => (
            filter(&positions.partitions, keep)?,
            filter(&positions.offsets, keep)?,
        ),
        None => (
            Arc::new(positions.partitions.clone()),
            Arc::new(positions.offsets.clone()),
        ),
    })
}

/// A table's applied batch as subscription rows, and the last offset per partition
/// it moved the subscriber to.
pub(super) fn table_rows(
    plan: &Arc<SubscribePlan>,
    batch: &TableChanges,
    seen: &mut Offsets,
) -> Result<(SubscriptionRows, Offsets), DataFusionError> {
    let changes = batch.as_rows()?;
    unseen_rows(plan, &changes.positions, batch.shared(), seen, |new| {
        table_rows_of(plan, changes, new)
    })
}

/// The rows of the changes `new` says (all when `None`) of a table's batch.
fn table_rows_of(
    plan: &SubscribePlan,
    changes: &ChangeRows,
    new: Option<&BooleanArray>,
) -> Result<RecordBatch, DataFusionError> {
    let key_output = plan.key_output.as_deref().ok_or_else(|| {
        DataFusionError::Internal("a table subscription without a key column".into())
    })?;
    let (rows, deleted) = match new {
        None => (changes.rows.clone(), changes.deleted.clone()),
        Some(new) => (
            filter_record_batch(&changes.rows, new)?,
            filter(&changes.deleted, new)?.as_boolean().clone(),
        ),
    };
    let (partitions, offsets) = position_rows(&changes.positions, new)?;
    // An upsert whose row the filter turns away is a delete of its key: the key is
    // not (or no longer) in the subscription's rows.
    let removed = match plan.verdict(&rows)? {
        Some(pass) => or(&deleted, &not(&pass)?)?,
        None => deleted,
    };
    let any_removed = removed.true_count() > 0;
    let columns = plan
        .project(&rows)?
        .into_iter()
        .enumerate()
        .map(|(i, column)| {
            // A removed row keeps its key and nothing else.
            if any_removed && !key_output.contains(&i) {
                nullif(&column, &removed)
            } else {
                Ok(column)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ops = ops(removed.len(), |i| {
        if removed.value(i) {
            "delete"
        } else {
            "upsert"
        }
    });
    with_meta(plan, partitions, offsets, ops, columns)
}

/// A stream's appended batch as subscription rows, and the last offset per partition
/// it moved the subscriber to.
pub(super) fn stream_rows(
    plan: &Arc<SubscribePlan>,
    batch: &StreamChanges,
    seen: &mut Offsets,
) -> Result<(SubscriptionRows, Offsets), DataFusionError> {
    unseen_rows(
        plan,
        batch.position_columns(),
        batch.shared(),
        seen,
        |new| stream_rows_of(plan, batch, new),
    )
}

/// The rows of the records `new` says (all when `None`) of a stream's batch.
fn stream_rows_of(
    plan: &SubscribePlan,
    batch: &StreamChanges,
    new: Option<&BooleanArray>,
) -> Result<RecordBatch, DataFusionError> {
    let positions = batch.position_columns();
    let values = match new {
        None => batch.rows.clone(),
        Some(new) => filter_record_batch(&batch.rows, new)?,
    };
    let (partitions, offsets) = position_rows(positions, new)?;
    let pass = plan.verdict(&values)?;
    let (values, partitions, offsets) = match &pass {
        Some(pass) => (
            filter_record_batch(&values, pass)?,
            filter(&partitions, pass)?,
            filter(&offsets, pass)?,
        ),
        None => (values, partitions, offsets),
    };
    let n = values.num_rows();
    let columns = plan.project(&values)?;
    with_meta(plan, partitions, offsets, ops(n, |_| "insert"), columns)
}

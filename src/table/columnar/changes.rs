//! What a table's change feed carries: each applied batch's changes, and the same
//! changes as rows of the table's columns, built once by the first subscriber that
//! reads the batch and shared by all the others (a hundred subscribers to one table
//! must not convert every batch a hundred times).

use crate::changefeed::{ChangeBatch, PositionColumns, SharedResults};
use arrow::array::{
    new_null_array, Array, ArrayRef, BooleanArray, RecordBatch, StringArray, UInt32Array,
};
use arrow::compute::{cast, interleave, take};
use arrow::error::ArrowError;
use std::sync::{Arc, OnceLock};

/// One change, in record order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The key of row `row` of the batch being applied now has that row's value.
    Upsert {
        /// The row in the applied batch.
        row: u32,
    },
    /// The key is deleted.
    Delete {
        /// The deleted key, as text (an integer key in decimal; a composite key's parts
        /// as a JSON array of texts).
        key: String,
    },
}

/// One applied batch, as the change feed carries it: the batch's rows, its changes in
/// order, and each change's Kafka partition and offset.
pub struct TableChanges {
    /// The rows `Change::Upsert` refers to (the segment the batch added).
    pub rows: RecordBatch,
    /// The changes, in record order.
    pub changes: Vec<Change>,
    /// The partition and offset of each change.
    pub positions: Vec<(i32, i64)>,
    key_columns: Arc<[usize]>,
    as_rows: OnceLock<Result<ChangeRows, String>>,
    shared: SharedResults,
}

/// A batch's changes as rows of the table's columns, one per change, in order: an
/// upsert's row as it was applied; for a delete, the deleted key in the key columns
/// and NULL in the others.
#[derive(Debug)]
pub struct ChangeRows {
    /// The rows, in the table's schema.
    pub rows: RecordBatch,
    /// True where the change is a delete.
    pub deleted: BooleanArray,
    /// How many deletes.
    pub deletes: usize,
    /// Each change's partition and offset.
    pub positions: PositionColumns,
}

impl ChangeBatch for TableChanges {
    fn positions(&self) -> &[(i32, i64)] {
        &self.positions
    }
}

impl TableChanges {
    /// The changes of a batch applied to a table keyed by `key_columns`.
    pub(crate) fn new(
        rows: RecordBatch,
        changes: Vec<Change>,
        positions: Vec<(i32, i64)>,
        key_columns: Arc<[usize]>,
    ) -> Self {
        Self {
            rows,
            changes,
            positions,
            key_columns,
            as_rows: OnceLock::new(),
            shared: SharedResults::default(),
        }
    }

    /// What subscribers make of this batch and share (see [`SharedResults`]).
    pub fn shared(&self) -> &SharedResults {
        &self.shared
    }

    /// The changes as rows (see [`ChangeRows`]), made by the first caller.
    pub fn as_rows(&self) -> Result<&ChangeRows, ArrowError> {
        self.as_rows
            .get_or_init(|| self.build_rows().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|message| ArrowError::ComputeError(message.clone()))
    }

    fn build_rows(&self) -> Result<ChangeRows, ArrowError> {
        let key_count = self.key_columns.len();
        // Where each row comes from: source 0 is the batch's rows, source 1 the
        // deleted keys (one list of texts per key column) or a NULL.
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(self.changes.len());
        let mut deleted_keys: Vec<Vec<String>> = vec![Vec::new(); key_count];
        let mut deleted = Vec::with_capacity(self.changes.len());
        for change in &self.changes {
            match change {
                Change::Upsert { row } => {
                    picks.push((0, *row as usize));
                    deleted.push(false);
                }
                Change::Delete { key } => {
                    let parts = crate::format::key_parts(key, key_count).ok_or_else(|| {
                        ArrowError::InvalidArgumentError(format!(
                            "deleted key {key:?} does not have {key_count} parts"
                        ))
                    })?;
                    for (texts, part) in deleted_keys.iter_mut().zip(parts) {
                        texts.push(part);
                    }
                    picks.push((1, deleted_keys[0].len() - 1));
                    deleted.push(true);
                }
            }
        }
        let deletes = deleted_keys.first().map_or(0, Vec::len);
        // During a restore nearly every batch is upserts of its own rows in order: the
        // rows are then the batch itself, shared rather than copied.
        let in_order = deletes == 0
            && picks.len() == self.rows.num_rows()
            && picks.iter().enumerate().all(|(i, &(_, row))| row == i);
        let rows = if in_order {
            self.rows.clone()
        } else {
            let upserts_only: Option<UInt32Array> =
                (deletes == 0).then(|| picks.iter().map(|&(_, row)| row as u32).collect());
            let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.rows.num_columns());
            for (i, column) in self.rows.columns().iter().enumerate() {
                let column = match &upserts_only {
                    Some(indices) => take(column.as_ref(), indices, None)?,
                    None => {
                        let other = match self.key_columns.iter().position(|&k| k == i) {
                            Some(part) => {
                                let texts =
                                    StringArray::from(std::mem::take(&mut deleted_keys[part]));
                                cast(&texts, column.data_type())?
                            }
                            // Every delete points at its own index: NULLs enough.
                            None => new_null_array(column.data_type(), deletes),
                        };
                        interleave(&[column.as_ref(), other.as_ref()], &picks)?
                    }
                };
                columns.push(column);
            }
            RecordBatch::try_new_with_options(
                self.rows.schema(),
                columns,
                &arrow::array::RecordBatchOptions::new().with_row_count(Some(picks.len())),
            )?
        };
        Ok(ChangeRows {
            rows,
            deleted: BooleanArray::from(deleted),
            deletes,
            positions: PositionColumns::of(&self.positions),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int32Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema};

    fn batch(ids: Vec<i64>, tenants: Vec<&str>, values: Vec<i32>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("tenant", DataType::Utf8, false),
            Field::new("v", DataType::Int32, true),
            Field::new("id", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(tenants)),
                Arc::new(Int32Array::from(values)),
                Arc::new(Int64Array::from(ids)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn upserts_in_order_share_the_batch() {
        let rows = batch(vec![1, 2], vec!["a", "b"], vec![10, 20]);
        let changes = TableChanges::new(
            rows.clone(),
            vec![Change::Upsert { row: 0 }, Change::Upsert { row: 1 }],
            vec![(0, 5), (0, 6)],
            Arc::from(vec![0, 2]),
        );
        let as_rows = changes.as_rows().unwrap();
        assert_eq!(as_rows.rows, rows);
        assert_eq!(as_rows.deletes, 0);
        assert_eq!(as_rows.positions.offsets.values().to_vec(), vec![5, 6]);
        let again = changes.as_rows().unwrap();
        assert!(std::ptr::eq(as_rows, again), "made once");
    }

    #[test]
    fn a_delete_carries_its_composite_key_typed_and_nulls_elsewhere() {
        // Row 0 is superseded by row 1 within the batch: only row 1 is upserted.
        let rows = batch(vec![1, 1], vec!["a", "a"], vec![10, 11]);
        let changes = TableChanges::new(
            rows,
            vec![
                Change::Delete {
                    key: r#"["b","7"]"#.into(),
                },
                Change::Upsert { row: 1 },
            ],
            vec![(1, 3), (0, 4)],
            Arc::from(vec![0, 2]),
        );
        let as_rows = changes.as_rows().unwrap();
        let rows = &as_rows.rows;
        assert_eq!(rows.num_rows(), 2);
        let tenants: Vec<_> = rows.column(0).as_string::<i32>().iter().collect();
        assert_eq!(tenants, vec![Some("b"), Some("a")]);
        let values: Vec<_> = rows.column(1).as_primitive::<Int32Type>().iter().collect();
        assert_eq!(values, vec![None, Some(11)]);
        let ids: Vec<_> = rows.column(2).as_primitive::<Int64Type>().iter().collect();
        assert_eq!(ids, vec![Some(7), Some(1)]);
        assert_eq!(
            as_rows.deleted.values().iter().collect::<Vec<_>>(),
            vec![true, false]
        );
    }

    #[test]
    fn a_deleted_key_without_its_parts_is_an_error_every_time() {
        let changes = TableChanges::new(
            batch(vec![], vec![], vec![]),
            vec![Change::Delete { key: "7".into() }],
            vec![(0, 1)],
            Arc::from(vec![0, 2]),
        );
        assert!(changes.as_rows().is_err());
        assert!(changes.as_rows().is_err());
    }
}

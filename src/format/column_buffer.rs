//! A column being filled record by record, for the decoders that read a record at a
//! time and write its values straight into columns (Avro's direct reader): values in
//! a flat buffer of the column's kind, which can be cut back to a row count when a
//! record turns out not to fit after some of its values were written. [`Cell`]s from
//! the general path go into the same buffer, so both paths build one batch.

use super::cells::Cell;
use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int16Array, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
    TimestampMillisecondArray,
};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::error::ArrowError;
use std::fmt::Write as _;
use std::sync::Arc;

/// The values of one column, in the representation its Arrow type is built from.
enum Values {
    Bool(Vec<bool>),
    /// Every integer, date and timestamp type: checked against the type's range when
    /// pushed, narrowed when built.
    Int(Vec<i64>),
    Float(Vec<f64>),
    /// UTF-8 text: each value's end in `data`.
    Text {
        ends: Vec<usize>,
        data: String,
    },
    Binary {
        ends: Vec<usize>,
        data: Vec<u8>,
    },
    Decimal(Vec<i128>),
    /// A type the buffer has no flat form for: its cells, built as `cells::build` does.
    Cells(Vec<Cell>),
}

/// One column's values and validity, filled a row at a time.
pub(super) struct ColumnBuffer {
    data_type: DataType,
    valid: Vec<bool>,
    values: Values,
}

impl ColumnBuffer {
    /// An empty column of `data_type`, with room for `rows`.
    pub(super) fn new(data_type: &DataType, rows: usize) -> Self {
        let values = match data_type {
            DataType::Boolean => Values::Bool(Vec::with_capacity(rows)),
            DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Date32
            | DataType::Timestamp(TimeUnit::Millisecond | TimeUnit::Microsecond, _) => {
                Values::Int(Vec::with_capacity(rows))
            }
            DataType::Float32 | DataType::Float64 => Values::Float(Vec::with_capacity(rows)),
            DataType::Utf8 => Values::Text {
                ends: Vec::with_capacity(rows),
                data: String::with_capacity(rows * 16),
            },
            DataType::Binary => Values::Binary {
                ends: Vec::with_capacity(rows),
                data: Vec::new(),
            },
            DataType::Decimal128(_, _) => Values::Decimal(Vec::with_capacity(rows)),
            _ => Values::Cells(Vec::with_capacity(rows)),
        };
        Self {
            data_type: data_type.clone(),
            valid: Vec::with_capacity(rows),
            values,
        }
    }

    /// The rows written so far.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.valid.len()
    }

    /// Drops every row from `rows` on: what a record that did not fit had written.
    pub(super) fn truncate(&mut self, rows: usize) {
        if rows >= self.valid.len() {
            return;
        }
        self.valid.truncate(rows);
        match &mut self.values {
            Values::Bool(v) => v.truncate(rows),
            Values::Int(v) => v.truncate(rows),
            Values::Float(v) => v.truncate(rows),
            Values::Decimal(v) => v.truncate(rows),
            Values::Cells(v) => v.truncate(rows),
            Values::Text { ends, data } => {
                ends.truncate(rows);
                data.truncate(ends.last().copied().unwrap_or(0));
            }
            Values::Binary { ends, data } => {
                ends.truncate(rows);
                data.truncate(ends.last().copied().unwrap_or(0));
            }
        }
    }

    /// A NULL.
    pub(super) fn push_null(&mut self) {
        self.valid.push(false);
        match &mut self.values {
            Values::Bool(v) => v.push(false),
            Values::Int(v) => v.push(0),
            Values::Float(v) => v.push(0.0),
            Values::Decimal(v) => v.push(0),
            Values::Cells(v) => v.push(Cell::Null),
            Values::Text { ends, data } => ends.push(data.len()),
            Values::Binary { ends, data } => ends.push(data.len()),
        }
    }

    /// A boolean (NULL in a column of another kind, as `cells::build` makes it).
    pub(super) fn push_bool(&mut self, value: bool) {
        match &mut self.values {
            Values::Bool(v) => v.push(value),
            Values::Cells(v) => v.push(Cell::Bool(value)),
            _ => return self.push_null(),
        }
        self.valid.push(true);
    }

    /// An integer, date or timestamp, already checked against the column's range.
    pub(super) fn push_int(&mut self, value: i64) {
        match &mut self.values {
            Values::Int(v) => v.push(value),
            Values::Cells(v) => v.push(Cell::Int(value)),
            _ => return self.push_null(),
        }
        self.valid.push(true);
    }

    pub(super) fn push_float(&mut self, value: f64) {
        match &mut self.values {
            Values::Float(v) => v.push(value),
            Values::Cells(v) => v.push(Cell::Float(value)),
            _ => return self.push_null(),
        }
        self.valid.push(true);
    }

    pub(super) fn push_decimal(&mut self, value: i128) {
        match &mut self.values {
            Values::Decimal(v) => v.push(value),
            Values::Cells(v) => v.push(Cell::Decimal(value)),
            _ => return self.push_null(),
        }
        self.valid.push(true);
    }

    pub(super) fn push_text(&mut self, value: &str) {
        match &mut self.values {
            Values::Text { ends, data } => {
                data.push_str(value);
                ends.push(data.len());
            }
            Values::Cells(v) => v.push(Cell::Text(value.to_string())),
            _ => return self.push_null(),
        }
        self.valid.push(true);
    }

    /// A value's text form (`Display`), written in place.
    pub(super) fn push_display(&mut self, value: impl std::fmt::Display) {
        match &mut self.values {
            Values::Text { ends, data } => {
                // Writing into a String cannot fail.
                let _ = write!(data, "{value}");
                ends.push(data.len());
                self.valid.push(true);
            }
            _ => self.push_text(&value.to_string()),
        }
    }

    pub(super) fn push_bytes(&mut self, value: &[u8]) {
        match &mut self.values {
            Values::Binary { ends, data } => {
                data.extend_from_slice(value);
                ends.push(data.len());
            }
            Values::Cells(v) => v.push(Cell::Bytes(value.to_vec())),
            _ => return self.push_null(),
        }
        self.valid.push(true);
    }

    /// A cell of the general path.
    pub(super) fn push_cell(&mut self, cell: Cell) {
        match cell {
            Cell::Null => self.push_null(),
            Cell::Bool(b) => self.push_bool(b),
            Cell::Int(i) => self.push_int(i),
            Cell::Float(f) => self.push_float(f),
            Cell::Decimal(d) => self.push_decimal(d),
            Cell::Text(s) => match &mut self.values {
                Values::Cells(v) => {
                    v.push(Cell::Text(s));
                    self.valid.push(true);
                }
                _ => self.push_text(&s),
            },
            Cell::Bytes(b) => match &mut self.values {
                Values::Cells(v) => {
                    v.push(Cell::Bytes(b));
                    self.valid.push(true);
                }
                _ => self.push_bytes(&b),
            },
        }
    }
}

impl super::cells::IntoColumn for ColumnBuffer {
    fn into_column(self, _data_type: &DataType) -> Result<ArrayRef, ArrowError> {
        let nulls = (!self.valid.iter().all(|v| *v)).then(|| NullBuffer::from(self.valid));
        let data_type = self.data_type;
        Ok(match self.values {
            Values::Cells(cells) => super::cells::build(&data_type, cells)?,
            Values::Bool(values) => Arc::new(BooleanArray::new(values.into(), nulls)),
            Values::Float(values) => match data_type {
                DataType::Float32 => Arc::new(Float32Array::new(
                    values.into_iter().map(|f| f as f32).collect(),
                    nulls,
                )),
                _ => Arc::new(Float64Array::new(values.into(), nulls)),
            },
            Values::Decimal(values) => match data_type {
                DataType::Decimal128(p, s) => Arc::new(
                    Decimal128Array::new(values.into(), nulls).with_precision_and_scale(p, s)?,
                ),
                other => return Err(unexpected(&other)),
            },
            Values::Int(values) => int_array(&data_type, values, nulls)?,
            Values::Text { ends, data } => Arc::new(StringArray::try_new(
                offsets(&ends)?,
                Buffer::from_vec(data.into_bytes()),
                nulls,
            )?),
            Values::Binary { ends, data } => Arc::new(BinaryArray::try_new(
                offsets(&ends)?,
                Buffer::from_vec(data),
                nulls,
            )?),
        })
    }
}

fn int_array(
    data_type: &DataType,
    values: Vec<i64>,
    nulls: Option<NullBuffer>,
) -> Result<ArrayRef, ArrowError> {
    // Values were range-checked when pushed: the narrowing casts keep them.
    let narrow32 =
        |values: Vec<i64>| -> ScalarBuffer<i32> { values.into_iter().map(|i| i as i32).collect() };
    Ok(match data_type {
        DataType::Int16 => Arc::new(Int16Array::new(
            values.into_iter().map(|i| i as i16).collect(),
            nulls,
        )),
        DataType::Int32 => Arc::new(Int32Array::new(narrow32(values), nulls)),
        DataType::Date32 => Arc::new(Date32Array::new(narrow32(values), nulls)),
        DataType::Int64 => Arc::new(Int64Array::new(values.into(), nulls)),
        DataType::Timestamp(TimeUnit::Millisecond, tz) => Arc::new(
            TimestampMillisecondArray::new(values.into(), nulls).with_timezone_opt(tz.clone()),
        ),
        DataType::Timestamp(TimeUnit::Microsecond, tz) => Arc::new(
            TimestampMicrosecondArray::new(values.into(), nulls).with_timezone_opt(tz.clone()),
        ),
        other => return Err(unexpected(other)),
    })
}

fn offsets(ends: &[usize]) -> Result<OffsetBuffer<i32>, ArrowError> {
    let mut offsets = Vec::with_capacity(ends.len() + 1);
    offsets.push(0i32);
    for end in ends {
        offsets.push(i32::try_from(*end).map_err(|_| {
            ArrowError::ComputeError("a batch's text column is over 2 GiB".to_string())
        })?);
    }
    Ok(OffsetBuffer::new(offsets.into()))
}

fn unexpected(data_type: &DataType) -> ArrowError {
    ArrowError::NotYetImplemented(format!("values in a {data_type} column"))
}

#[cfg(test)]
mod tests {
    use super::super::cells::{build, IntoColumn};
    use super::*;

    /// Every kind of column, filled through the typed pushes with a row cut back in
    /// the middle, builds the same array as the cells of the rows that stayed.
    #[test]
    fn a_buffer_builds_what_its_cells_build() {
        let kinds = [
            (DataType::Boolean, Cell::Bool(true)),
            (DataType::Int16, Cell::Int(-7)),
            (DataType::Int32, Cell::Int(70_000)),
            (DataType::Int64, Cell::Int(1 << 40)),
            (DataType::Date32, Cell::Int(19_000)),
            (
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                Cell::Int(1_700_000_000_000),
            ),
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                Cell::Int(5),
            ),
            (DataType::Float32, Cell::Float(1.5)),
            (DataType::Float64, Cell::Float(-2.25)),
            (DataType::Utf8, Cell::Text("héllo".into())),
            (DataType::Binary, Cell::Bytes(vec![0, 255])),
            (DataType::Decimal128(10, 2), Cell::Decimal(12_345)),
            (DataType::LargeUtf8, Cell::Text("general path".into())),
        ];
        for (data_type, cell) in kinds {
            let mut buffer = ColumnBuffer::new(&data_type, 4);
            buffer.push_cell(cell.clone());
            buffer.push_null();
            buffer.push_cell(cell.clone());
            buffer.truncate(2);
            buffer.push_cell(cell.clone());
            assert_eq!(buffer.len(), 3);
            let cells = vec![cell.clone(), Cell::Null, cell];
            match (buffer.into_column(&data_type), build(&data_type, cells)) {
                (Ok(built), Ok(expected)) => assert_eq!(&built, &expected, "{data_type}"),
                (Err(built), Err(expected)) => {
                    assert_eq!(built.to_string(), expected.to_string())
                }
                (built, expected) => panic!("{data_type}: {built:?} against {expected:?}"),
            }
        }
    }

    #[test]
    fn a_value_of_another_kind_is_null_as_in_cells() {
        let mut buffer = ColumnBuffer::new(&DataType::Int64, 2);
        buffer.push_text("not a number");
        buffer.push_display(5);
        let built = buffer.into_column(&DataType::Int64).expect("built");
        assert_eq!(built.null_count(), 2);
    }
}

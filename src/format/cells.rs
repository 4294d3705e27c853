//! Converted cells of one column, shared by the record-at-a-time decoders (Avro and
//! Protobuf): a record's cells are converted first and appended only when all of them
//! fit, so that a rejected record leaves no half row; [`build`] turns a column's cells
//! into its Arrow array.

use arrow::array::timezone::Tz;
use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int16Array, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
    TimestampMillisecondArray,
};
use arrow::compute::kernels::cast_utils::{parse_decimal, string_to_datetime, Parser};
use arrow::datatypes::{DataType, Date32Type, Decimal128Type, Float64Type, Int64Type, TimeUnit};
use arrow::error::ArrowError;
use std::sync::{Arc, LazyLock};

/// One converted cell.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Decimal(i128),
    Bytes(Vec<u8>),
}

pub(super) fn in_unit(value: i64, from: TimeUnit, to: &TimeUnit) -> i64 {
    let per_second = |u: &TimeUnit| match u {
        TimeUnit::Second => 1i64,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    let (f, t) = (per_second(&from), per_second(to));
    if t >= f {
        value.saturating_mul(t / f)
    } else {
        value.div_euclid(f / t)
    }
}

/// A timestamp written as text, in `unit`: read by arrow's parser as the JSON format
/// reads one (RFC 3339, or ISO 8601 with a space; text without an offset is UTC), so
/// Debezium's `ZonedTimestamp` reads alike in JSON and Avro events.
fn timestamp_of_text(text: &str, unit: &TimeUnit) -> Option<i64> {
    // Parsed once: this runs for every such cell.
    static UTC: LazyLock<Option<Tz>> = LazyLock::new(|| "+00:00".parse().ok());
    let at = string_to_datetime(UTC.as_ref()?, text).ok()?;
    match unit {
        TimeUnit::Second => Some(at.timestamp()),
        TimeUnit::Millisecond => Some(at.timestamp_millis()),
        TimeUnit::Microsecond => Some(at.timestamp_micros()),
        TimeUnit::Nanosecond => at.timestamp_nanos_opt(),
    }
}

/// A date written as text (`2024-02-29`), in days since the epoch, as the JSON format
/// reads one.
fn date_of_text(text: &str) -> Option<i64> {
    Date32Type::parse(text).map(i64::from)
}

/// Text in a column of a type [`cell_of_text`] reads from text.
pub(super) fn is_read_from_text(data_type: &DataType) -> bool {
    use DataType as D;
    matches!(
        data_type,
        D::Int16
            | D::Int32
            | D::Int64
            | D::Float32
            | D::Float64
            | D::Decimal128(..)
            | D::Timestamp(..)
            | D::Date32
    )
}

/// Text in a number, DECIMAL, DATE or TIMESTAMP column (Debezium's
/// `decimal.handling.mode = string` and `ZonedTimestamp`, decimals in Protobuf string
/// fields), read by arrow's parsers as the JSON format reads it; None when it does not
/// fit the column, or the column takes no text this way.
pub(super) fn cell_of_text(text: &str, data_type: &DataType) -> Option<Cell> {
    use DataType as D;
    let int_within = |min: i64, max: i64| int_of_text(text).filter(|i| (min..=max).contains(i));
    match data_type {
        D::Int16 => int_within(i16::MIN.into(), i16::MAX.into()).map(Cell::Int),
        D::Int32 => int_within(i32::MIN.into(), i32::MAX.into()).map(Cell::Int),
        D::Int64 => int_of_text(text).map(Cell::Int),
        D::Float32 | D::Float64 => float_of_text(text).map(Cell::Float),
        D::Decimal128(precision, scale) => {
            decimal_of_text(text, *precision, *scale).map(Cell::Decimal)
        }
        D::Timestamp(unit, _) => timestamp_of_text(text, unit).map(Cell::Int),
        D::Date32 => date_of_text(text).map(Cell::Int),
        _ => None,
    }
}

/// An integer written as text.
fn int_of_text(text: &str) -> Option<i64> {
    Int64Type::parse(text)
}

/// A float written as text.
fn float_of_text(text: &str) -> Option<f64> {
    Float64Type::parse(text)
}

/// A decimal written as text, as its unscaled value at `scale`; None past `precision`.
fn decimal_of_text(text: &str, precision: u8, scale: i8) -> Option<i128> {
    if super::decimal_exponent::exponent_too_large(text) {
        return None;
    }
    parse_decimal::<Decimal128Type>(text, precision, scale).ok()
}

/// The decimal `unscaled` × 10^-`scale` written out (`-12.34`), as PostgreSQL prints a
/// NUMERIC.
pub(super) fn decimal_digits(unscaled: i128, scale: u32) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{whole}.{fraction}")
}

/// `unscaled` at scale `from` as an unscaled value at scale `to`, if exact.
pub(super) fn rescale(unscaled: i128, from: i64, to: i64) -> Option<i128> {
    if to >= from {
        unscaled.checked_mul(10i128.checked_pow((to - from) as u32)?)
    } else {
        let divisor = 10i128.checked_pow((from - to) as u32)?;
        (unscaled % divisor == 0).then(|| unscaled / divisor)
    }
}

/// One record's row, column by column from `cell_of(column, field)`: under
/// `on_error = 'null'` a value that does not fit is NULL; otherwise the first that does
/// not fit rejects the record, the reason naming its column. Written to `columns` only
/// when every cell fits, so a rejected record leaves no half row.
pub(super) fn push_record(
    fields: &[arrow::datatypes::FieldRef],
    policy: super::ErrorPolicy,
    columns: &mut [super::column_buffer::ColumnBuffer],
    mut cell_of: impl FnMut(usize, &arrow::datatypes::Field) -> Result<Cell, String>,
) -> Result<(), String> {
    let mut cells = Vec::with_capacity(fields.len());
    for (c, field) in fields.iter().enumerate() {
        match cell_of(c, field) {
            Ok(cell) => cells.push(cell),
            Err(_) if policy == super::ErrorPolicy::Null => cells.push(Cell::Null),
            Err(reason) => return Err(format!("column {}: {reason}", field.name())),
        }
    }
    for (column, cell) in columns.iter_mut().zip(cells) {
        column.push_cell(cell);
    }
    Ok(())
}

/// A value column of a record-at-a-time decoder, ready to become its Arrow array.
pub(super) trait IntoColumn {
    /// The array of type `data_type`.
    fn into_column(self, data_type: &DataType) -> Result<ArrayRef, ArrowError>;
}

impl IntoColumn for Vec<Cell> {
    fn into_column(self, data_type: &DataType) -> Result<ArrayRef, ArrowError> {
        build(data_type, self)
    }
}

pub(super) fn build(data_type: &DataType, cells: Vec<Cell>) -> Result<ArrayRef, ArrowError> {
    let ints = |cells: &[Cell]| -> Vec<Option<i64>> {
        cells
            .iter()
            .map(|c| match c {
                Cell::Int(i) => Some(*i),
                _ => None,
            })
            .collect()
    };
    Ok(match data_type {
        DataType::Boolean => Arc::new(BooleanArray::from_iter(cells.iter().map(|c| match c {
            Cell::Bool(b) => Some(*b),
            _ => None,
        }))),
        DataType::Int16 => Arc::new(Int16Array::from_iter(
            ints(&cells).into_iter().map(|i| i.map(|i| i as i16)),
        )),
        DataType::Int32 => Arc::new(Int32Array::from_iter(
            ints(&cells).into_iter().map(|i| i.map(|i| i as i32)),
        )),
        DataType::Int64 => Arc::new(Int64Array::from_iter(ints(&cells))),
        DataType::Date32 => Arc::new(Date32Array::from_iter(
            ints(&cells).into_iter().map(|i| i.map(|i| i as i32)),
        )),
        DataType::Float32 => Arc::new(Float32Array::from_iter(cells.iter().map(|c| match c {
            Cell::Float(f) => Some(*f as f32),
            _ => None,
        }))),
        DataType::Float64 => Arc::new(Float64Array::from_iter(cells.iter().map(|c| match c {
            Cell::Float(f) => Some(*f),
            _ => None,
        }))),
        DataType::Utf8 => Arc::new(StringArray::from_iter(cells.into_iter().map(|c| match c {
            Cell::Text(s) => Some(s),
            _ => None,
        }))),
        DataType::Binary => Arc::new(BinaryArray::from_iter(cells.iter().map(|c| match c {
            Cell::Bytes(b) => Some(b.as_slice()),
            _ => None,
        }))),
        DataType::Decimal128(p, s) => Arc::new(
            Decimal128Array::from_iter(cells.iter().map(|c| match c {
                Cell::Decimal(d) => Some(*d),
                _ => None,
            }))
            .with_precision_and_scale(*p, *s)?,
        ),
        DataType::Timestamp(TimeUnit::Millisecond, tz) => {
            Arc::new(TimestampMillisecondArray::from(ints(&cells)).with_timezone_opt(tz.clone()))
        }
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            Arc::new(TimestampMicrosecondArray::from(ints(&cells)).with_timezone_opt(tz.clone()))
        }
        other => {
            return Err(ArrowError::NotYetImplemented(format!(
                "values in a {other} column"
            )))
        }
    })
}

/// The decoded batch of a record-at-a-time decoder: the value columns from `columns`
/// (one cell per accepted record), the key and metadata columns read from `records`
/// themselves, for the rows in `accepted`.
pub(super) fn assemble(
    schema: &super::SourceSchema,
    records: &[super::RawRecord<'_>],
    columns: Vec<impl IntoColumn>,
    accepted: Vec<usize>,
    rejected: Vec<(usize, String)>,
    deletes: Vec<usize>,
) -> Result<super::DecodeOutcome, super::DecodeError> {
    use super::ColumnSource;
    use arrow::array::{RecordBatch, RecordBatchOptions};
    let key_types = schema.key_types();
    let fields = schema.arrow().fields();
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(fields.len());
    let mut key_part = 0;
    for ((source, field), cells) in schema.sources().iter().zip(fields).zip(columns) {
        let array = match source {
            ColumnSource::Key => {
                key_part += 1;
                super::key::key_column(&key_types, key_part - 1, records, &accepted)
            }
            ColumnSource::Metadata(meta) => super::json::metadata_column(*meta, records, &accepted),
            _ => cells.into_column(field.data_type())?,
        };
        arrays.push(array);
    }
    let batch = RecordBatch::try_new_with_options(
        Arc::clone(schema.arrow()),
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(accepted.len())),
    )?;
    Ok(super::DecodeOutcome {
        batch,
        accepted,
        rejected,
        deletes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_dates_are_read_from_text() {
        // Debezium's ZonedTimestamp: ISO 8601 with an offset, up to nanoseconds.
        let micros = timestamp_of_text("2021-05-01T12:00:00.123456+02:00", &TimeUnit::Microsecond);
        assert_eq!(micros, Some(1_619_863_200_123_456));
        let millis = timestamp_of_text("2021-05-01T10:00:00.123456Z", &TimeUnit::Millisecond);
        assert_eq!(millis, Some(1_619_863_200_123));
        // No offset: UTC. Before the epoch and past 2262 (no nanosecond count) too.
        assert_eq!(
            timestamp_of_text("1969-12-31 23:59:59", &TimeUnit::Millisecond),
            Some(-1_000)
        );
        assert!(timestamp_of_text("9999-12-31T00:00:00Z", &TimeUnit::Microsecond).is_some());
        assert_eq!(timestamp_of_text("yesterday", &TimeUnit::Millisecond), None);
        assert_eq!(date_of_text("1970-01-02"), Some(1));
        assert_eq!(date_of_text("2024-02-30"), None);
    }

    #[test]
    fn numbers_are_read_from_text() {
        assert_eq!(int_of_text("-42"), Some(-42));
        assert_eq!(int_of_text("4.2"), None);
        assert_eq!(float_of_text("-12.5e1"), Some(-125.0));
        assert_eq!(decimal_of_text("-12.34", 10, 3), Some(-12_340));
        assert_eq!(
            decimal_of_text("1234567.8", 5, 1),
            None,
            "past the precision"
        );
        assert_eq!(decimal_of_text("twelve", 10, 2), None);
    }

    #[test]
    fn decimals_rescale_exactly() {
        assert_eq!(rescale(1234, 2, 4), Some(123_400));
        assert_eq!(rescale(123_400, 4, 2), Some(1234));
        assert_eq!(rescale(123_401, 4, 2), None);
        assert_eq!(
            in_unit(1_500, TimeUnit::Millisecond, &TimeUnit::Microsecond),
            1_500_000
        );
        assert_eq!(
            in_unit(-1, TimeUnit::Microsecond, &TimeUnit::Millisecond),
            -1
        );
    }
}

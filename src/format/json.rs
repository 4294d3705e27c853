//! JSON values into Arrow, a batch of records at a time.
//!
//! The fast path feeds every value of a batch to one arrow-json decoder and flushes one
//! `RecordBatch`: no per-row `serde_json::Value` trees. If anything in the batch does
//! not fit (broken JSON, a value that is not one object, a type that does not convert),
//! the batch is decoded again record by record, so that only the bad records are
//! rejected. Bad batches are rare; they pay, good ones do not.

use super::{ColumnSource, ErrorPolicy, MetadataField, SourceSchema};
use arrow::array::{
    new_null_array, ArrayRef, Int32Builder, Int64Builder, RecordBatch, RecordBatchOptions,
    StringBuilder, TimestampMillisecondBuilder,
};
use arrow::compute::concat_batches;
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use arrow::json::reader::{Decoder, ReaderBuilder};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

/// One Kafka record to decode, independent of rdkafka.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    /// The record key.
    pub key: Option<&'a [u8]>,
    /// The record value (tombstones are never decoded).
    pub value: &'a [u8],
    /// The record's partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
    /// The record's timestamp in milliseconds since the epoch.
    pub timestamp: Option<i64>,
    /// The record's headers as a JSON object, when the schema has a `_headers` column.
    pub headers: Option<&'a str>,
}

#[cfg(test)]
impl<'a> RawRecord<'a> {
    /// A record of `key` and `value` at partition 0, offset 0, without timestamp or
    /// headers: what the decoders' tests feed them.
    pub(crate) fn keyed(key: &'a [u8], value: &'a [u8]) -> Self {
        Self {
            key: Some(key),
            value,
            partition: 0,
            offset: 0,
            timestamp: None,
            headers: None,
        }
    }
}

/// The rows decoded from a batch of records, and the records that were rejected.
#[derive(Debug)]
pub struct DecodeOutcome {
    /// One row per accepted record, in input order.
    pub batch: RecordBatch,
    /// The input index of each row of `batch`.
    pub accepted: Vec<usize>,
    /// The input index of each rejected record and why it was rejected.
    pub rejected: Vec<(usize, String)>,
    /// The input index of each record whose envelope says it deletes its key
    /// (a Debezium `d` event); these have no row.
    pub deletes: Vec<usize>,
}

/// Decodes JSON records into rows of a [`SourceSchema`].
pub struct JsonDecoder {
    schema: Arc<SourceSchema>,
    /// Reused across batches on the fast path.
    decoder: Option<Decoder>,
    /// Whether a value field is a DECIMAL (at any depth), so that values are first
    /// checked for exponents arrow's decimal parser cannot read.
    reads_decimals: bool,
}

impl super::RecordDecoder for JsonDecoder {
    fn decode(&mut self, records: &[RawRecord<'_>]) -> Result<DecodeOutcome, super::DecodeError> {
        JsonDecoder::decode(self, records).map_err(super::DecodeError::from)
    }
}

impl JsonDecoder {
    /// A decoder for `schema`.
    pub fn new(schema: Arc<SourceSchema>) -> Self {
        let reads_decimals = schema
            .field_schema()
            .fields()
            .iter()
            .any(|field| holds_decimal(field.data_type()));
        Self {
            schema,
            decoder: None,
            reads_decimals,
        }
    }

    /// Whether the schema reads a value field named `name`.
    pub(super) fn reads_field(&self, name: &str) -> bool {
        self.schema.field_schema().field_with_name(name).is_ok()
    }

    fn new_decoder(&self, batch_size: usize) -> Result<Decoder, ArrowError> {
        ReaderBuilder::new(Arc::clone(self.schema.field_schema()))
            .with_batch_size(batch_size.max(1))
            .with_ignore_type_conflicts(self.schema.on_error() == ErrorPolicy::Null)
            .build_decoder()
    }

    /// Decodes `records`. Errors only if Arrow itself fails; bad records are reported in
    /// the outcome's `rejected`.
    pub fn decode(&mut self, records: &[RawRecord<'_>]) -> Result<DecodeOutcome, ArrowError> {
        let mut rejected = Vec::new();
        let mut candidates = Vec::with_capacity(records.len());
        let key_types = self.schema.key_types();
        let key_type = (!key_types.is_empty()).then_some(key_types.as_slice());
        let mut key_part = 0;
        for (i, record) in records.iter().enumerate() {
            let Some(key_type) = key_type else {
                candidates.push(i);
                continue;
            };
            match record.key.map(std::str::from_utf8) {
                Some(Err(e)) => rejected.push((i, format!("key is not UTF-8: {e}"))),
                None => rejected.push((i, "record has no key".to_string())),
                Some(Ok(key)) => match super::key::key_fits(key_type, key) {
                    Ok(()) => candidates.push(i),
                    Err(reason) => rejected.push((i, reason)),
                },
            }
        }

        let (fields, mut accepted) = self.decode_fields(records, candidates, &mut rejected)?;
        let raw_json = self.raw_json_columns(records, &mut accepted, &mut rejected);
        let fields = match &fields {
            Some(batch) if accepted.len() != batch.num_rows() => {
                // Raw-JSON parsing rejected some rows the field decoder accepted.
                Some(keep_rows(batch, &raw_json.kept)?)
            }
            _ => fields,
        };

        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.sources().len());
        let mut field_column = 0;
        let mut raw_column = 0;
        for (source, field) in self
            .schema
            .sources()
            .iter()
            .zip(self.schema.arrow().fields())
        {
            let column: ArrayRef = match source {
                // Checked above: accepted records have keys that fit the column.
                ColumnSource::Key => {
                    key_part += 1;
                    super::key::key_column(&key_types, key_part - 1, records, &accepted)
                }
                ColumnSource::Field => {
                    let column = match &fields {
                        Some(batch) => Arc::clone(batch.column(field_column)),
                        None => new_null_array(field.data_type(), accepted.len()),
                    };
                    field_column += 1;
                    column
                }
                ColumnSource::RawJson => {
                    let column = Arc::clone(&raw_json.columns[raw_column]);
                    raw_column += 1;
                    column
                }
                ColumnSource::Metadata(meta) => metadata_column(*meta, records, &accepted),
            };
            columns.push(column);
        }
        let batch = RecordBatch::try_new_with_options(
            Arc::clone(self.schema.arrow()),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(accepted.len())),
        )?;
        rejected.sort_by_key(|(i, _)| *i);
        Ok(DecodeOutcome {
            batch,
            accepted,
            rejected,
            deletes: Vec::new(),
        })
    }

    /// Decodes the JSON fields of `candidates`; returns the field columns (None when the
    /// schema has no field columns) and the candidates that decoded.
    fn decode_fields(
        &mut self,
        records: &[RawRecord<'_>],
        candidates: Vec<usize>,
        rejected: &mut Vec<(usize, String)>,
    ) -> Result<(Option<RecordBatch>, Vec<usize>), ArrowError> {
        if self.schema.field_schema().fields().is_empty() || candidates.is_empty() {
            return Ok((None, candidates));
        }
        let candidates = if self.reads_decimals {
            without_too_large_exponents(records, candidates, rejected)
        } else {
            candidates
        };
        let mut decoder = match self.decoder.take() {
            Some(decoder) => decoder,
            None => self.new_decoder(crate::source::MAX_BATCH)?,
        };
        // arrow-json panics on some inputs (arrow-cast 59 overflows an i16 on a decimal
        // exponent like `1e99999`): a batch that makes it panic is read again record
        // by record, without the decoder it left in an unknown state.
        let fast = panic::catch_unwind(AssertUnwindSafe(|| {
            fast_path(&mut decoder, records, &candidates)
        }));
        if let Ok(Some(batch)) = fast {
            self.decoder = Some(decoder);
            return Ok((Some(batch), candidates));
        }
        // The decoder may hold half a record: start the next batch with a fresh one.
        let mut single_rows = Vec::new();
        let mut accepted = Vec::new();
        for i in candidates {
            let mut decoder = self.new_decoder(1)?;
            let one = panic::catch_unwind(AssertUnwindSafe(|| {
                decode_one(&mut decoder, records[i].value)
            }))
            .unwrap_or_else(|panicked| {
                Err(format!(
                    "the JSON reader failed: {}",
                    panic_text(&*panicked)
                ))
            });
            match one {
                Ok(row) => {
                    single_rows.push(row);
                    accepted.push(i);
                }
                Err(reason) => rejected.push((i, reason)),
            }
        }
        let batch = concat_batches(self.schema.field_schema(), &single_rows)?;
        Ok((Some(batch), accepted))
    }

    /// Extracts raw-JSON columns; drops from `accepted` the records whose value is not a
    /// JSON object.
    fn raw_json_columns(
        &self,
        records: &[RawRecord<'_>],
        accepted: &mut Vec<usize>,
        rejected: &mut Vec<(usize, String)>,
    ) -> RawJsonColumns {
        let names: Vec<&str> = self
            .schema
            .sources()
            .iter()
            .zip(self.schema.arrow().fields())
            .filter(|(source, _)| **source == ColumnSource::RawJson)
            .map(|(_, field)| field.name().as_str())
            .collect();
        if names.is_empty() {
            return RawJsonColumns {
                columns: Vec::new(),
                kept: (0..accepted.len()).collect(),
            };
        }
        let mut builders: Vec<StringBuilder> = names.iter().map(|_| StringBuilder::new()).collect();
        let mut kept = Vec::with_capacity(accepted.len());
        let mut still_accepted = Vec::with_capacity(accepted.len());
        for (row, &i) in accepted.iter().enumerate() {
            match serde_json::from_slice::<HashMap<&str, &RawValue>>(records[i].value) {
                Ok(object) => {
                    for (builder, name) in builders.iter_mut().zip(&names) {
                        builder.append_option(
                            object
                                .get(name)
                                .map(|raw| raw.get())
                                .filter(|raw| *raw != "null"),
                        );
                    }
                    kept.push(row);
                    still_accepted.push(i);
                }
                Err(e) => rejected.push((i, format!("value is not a JSON object: {e}"))),
            }
        }
        *accepted = still_accepted;
        RawJsonColumns {
            columns: builders
                .into_iter()
                .map(|mut b| Arc::new(b.finish()) as ArrayRef)
                .collect(),
            kept,
        }
    }
}

struct RawJsonColumns {
    columns: Vec<ArrayRef>,
    /// Rows (indices into the field batch) that survived raw-JSON parsing.
    kept: Vec<usize>,
}

/// Decodes every candidate with one decoder; None if any record does not fit exactly
/// one row.
fn fast_path(
    decoder: &mut Decoder,
    records: &[RawRecord<'_>],
    candidates: &[usize],
) -> Option<RecordBatch> {
    for (n, &i) in candidates.iter().enumerate() {
        let value = records[i].value;
        match decoder.decode(value) {
            Ok(read) if read == value.len() => {}
            _ => return None,
        }
        if decoder.has_partial_record() || decoder.len() != n + 1 {
            return None;
        }
    }
    decoder.flush().ok().flatten()
}

/// Whether `data_type` is, or nests, a DECIMAL.
fn holds_decimal(data_type: &DataType) -> bool {
    match data_type {
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => true,
        DataType::Struct(fields) => fields.iter().any(|f| holds_decimal(f.data_type())),
        DataType::List(field)
        | DataType::LargeList(field)
        | DataType::FixedSizeList(field, _)
        | DataType::Map(field, _) => holds_decimal(field.data_type()),
        _ => false,
    }
}

/// `candidates` less the records holding a number arrow's decimal parser would misread
/// (see [`super::decimal_exponent`]), which are rejected.
fn without_too_large_exponents(
    records: &[RawRecord<'_>],
    candidates: Vec<usize>,
    rejected: &mut Vec<(usize, String)>,
) -> Vec<usize> {
    let mut kept = candidates;
    kept.retain(|&i| {
        let too_large = super::decimal_exponent::json_has_too_large_exponent(records[i].value);
        if too_large {
            rejected.push((i, super::decimal_exponent::TOO_LARGE.to_string()));
        }
        !too_large
    });
    kept
}

/// What a caught panic said.
fn panic_text(panicked: &(dyn std::any::Any + Send)) -> &str {
    panicked
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panicked.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic")
}

fn decode_one(decoder: &mut Decoder, value: &[u8]) -> Result<RecordBatch, String> {
    let read = decoder.decode(value).map_err(|e| e.to_string())?;
    if read != value.len() || decoder.has_partial_record() {
        return Err("value is not one complete JSON object".to_string());
    }
    if decoder.len() != 1 {
        return Err(format!(
            "value holds {} JSON values, not one object",
            decoder.len()
        ));
    }
    match decoder.flush() {
        Ok(Some(row)) if row.num_rows() == 1 => Ok(row),
        Ok(_) => Err("value is not a JSON object".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn keep_rows(batch: &RecordBatch, rows: &[usize]) -> Result<RecordBatch, ArrowError> {
    let indices = arrow::array::UInt32Array::from_iter_values(rows.iter().map(|&r| r as u32));
    arrow::compute::take_record_batch(batch, &indices)
}

pub(super) fn metadata_column(
    meta: MetadataField,
    records: &[RawRecord<'_>],
    rows: &[usize],
) -> ArrayRef {
    match meta {
        MetadataField::Key => {
            let mut b = StringBuilder::new();
            rows.iter().for_each(|&i| {
                b.append_option(records[i].key.and_then(|k| std::str::from_utf8(k).ok()))
            });
            Arc::new(b.finish())
        }
        MetadataField::Partition => {
            let mut b = Int32Builder::with_capacity(rows.len());
            rows.iter()
                .for_each(|&i| b.append_value(records[i].partition));
            Arc::new(b.finish())
        }
        MetadataField::Offset => {
            let mut b = Int64Builder::with_capacity(rows.len());
            rows.iter().for_each(|&i| b.append_value(records[i].offset));
            Arc::new(b.finish())
        }
        MetadataField::Timestamp => {
            let mut b = TimestampMillisecondBuilder::with_capacity(rows.len());
            rows.iter()
                .for_each(|&i| b.append_option(records[i].timestamp));
            Arc::new(b.finish())
        }
        MetadataField::Headers => {
            let mut b = StringBuilder::new();
            rows.iter()
                .for_each(|&i| b.append_option(records[i].headers));
            Arc::new(b.finish())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::ColumnSource;
    use arrow::array::{Array, Decimal128Array};

    #[test]
    fn decimals_with_exponents_arrow_would_misread_are_rejected_not_wrapped() {
        let columns = vec![
            ("id".to_string(), DataType::Utf8, ColumnSource::Key),
            (
                "price".to_string(),
                DataType::Decimal128(10, 2),
                ColumnSource::Field,
            ),
            ("sku".to_string(), DataType::Utf8, ColumnSource::Field),
        ];
        let schema = Arc::new(SourceSchema::new(columns, ErrorPolicy::Skip).expect("schema"));
        let mut decoder = JsonDecoder::new(schema);
        // `1e65537` wraps to `1e1` in a release build of arrow-cast 59.
        let values: [&[u8]; 4] = [
            br#"{"price": 1.25, "sku": "SKU-9E1234"}"#,
            br#"{"price": 1e65537}"#,
            br#"{"price": "1e99999"}"#,
            br#"{"price": 3e2}"#,
        ];
        let records: Vec<RawRecord<'_>> =
            values.iter().map(|v| RawRecord::keyed(b"k", v)).collect();
        let outcome = decoder.decode(&records).expect("decode");
        assert_eq!(outcome.accepted, vec![0, 3]);
        let rejected: Vec<usize> = outcome.rejected.iter().map(|(i, _)| *i).collect();
        assert_eq!(rejected, vec![1, 2], "{:?}", outcome.rejected);
        assert!(
            outcome.rejected[0].1.contains("exponent"),
            "{:?}",
            outcome.rejected
        );
        let prices = outcome
            .batch
            .column(1)
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .expect("decimals");
        assert_eq!((prices.value(0), prices.value(1)), (125, 30_000));
    }
}

//! `format = 'json_sr'`: JSON values in Confluent's wire format (JSON Schema).
//!
//! Confluent's `JSONSerializer` (and every client built on its registry) writes a JSON
//! value after the magic byte 0 and the 4-byte schema id of its JSON Schema. The JSON
//! itself is the same JSON the `json` format reads, and the declared columns say what
//! is kept of it, so the schema needs no fetching: this decoder checks and removes the
//! framing, then hands the payloads to the JSON decoder (or the Debezium envelope
//! around it). A value without the framing is a bad record, counted and skipped as the
//! source's `on_error` says.

use super::json::{DecodeOutcome, RawRecord};
use super::registry::split_framing;
use super::{DecodeError, RecordDecoder};

/// Removes Confluent's framing before the inner decoder reads the values.
pub struct FramedDecoder<D> {
    inner: D,
}

impl<D: RecordDecoder> FramedDecoder<D> {
    /// Reads framed values with `inner`.
    pub fn new(inner: D) -> Self {
        Self { inner }
    }
}

impl<D: RecordDecoder> RecordDecoder for FramedDecoder<D> {
    fn decode(&mut self, records: &[RawRecord<'_>]) -> Result<DecodeOutcome, DecodeError> {
        let mut payloads = Vec::with_capacity(records.len());
        // Input index of each payload handed to the inner decoder.
        let mut input_of = Vec::with_capacity(records.len());
        let mut rejected = Vec::new();
        for (input, record) in records.iter().enumerate() {
            match split_framing(record.value) {
                Ok((_schema_id, payload)) => {
                    payloads.push(RawRecord {
                        value: payload,
                        ..*record
                    });
                    input_of.push(input);
                }
                Err(reason) => rejected.push((input, reason)),
            }
        }
        let inner = self.inner.decode(&payloads)?;
        rejected.extend(
            inner
                .rejected
                .into_iter()
                .map(|(i, reason)| (input_of[i], reason)),
        );
        // The sinks read rejections in input order.
        rejected.sort_by_key(|(input, _)| *input);
        Ok(DecodeOutcome {
            batch: inner.batch,
            accepted: inner.accepted.into_iter().map(|i| input_of[i]).collect(),
            rejected,
            deletes: inner.deletes.into_iter().map(|i| input_of[i]).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{ColumnSource, ErrorPolicy, JsonDecoder, SourceSchema};
    use arrow::array::{Array, Int32Array, StringArray};
    use arrow::datatypes::DataType;
    use std::sync::Arc;

    fn record(value: &[u8]) -> RawRecord<'_> {
        RawRecord::keyed(b"k", value)
    }

    fn framed(json: &str) -> Vec<u8> {
        let mut bytes = vec![0, 0, 0, 0, 7];
        bytes.extend_from_slice(json.as_bytes());
        bytes
    }

    #[test]
    fn framed_values_are_read_and_unframed_ones_rejected_in_order() {
        let columns = vec![
            ("id".to_string(), DataType::Utf8, ColumnSource::Key),
            ("n".to_string(), DataType::Int32, ColumnSource::Field),
        ];
        let schema = Arc::new(SourceSchema::new(columns, ErrorPolicy::Skip).expect("schema"));
        let mut decoder = FramedDecoder::new(JsonDecoder::new(schema));
        let good = framed(r#"{"n": 1}"#);
        let plain = br#"{"n": 2}"#.to_vec();
        let bad_json = framed("{not json");
        let short = vec![0, 0, 1];
        let also_good = framed(r#"{"n": 5}"#);
        let values = [&good, &plain, &bad_json, &short, &also_good];
        let records: Vec<RawRecord<'_>> = values.iter().map(|v| record(v)).collect();
        let outcome = decoder.decode(&records).expect("decode");
        assert_eq!(outcome.accepted, vec![0, 4]);
        let rejected: Vec<usize> = outcome.rejected.iter().map(|(i, _)| *i).collect();
        assert_eq!(rejected, vec![1, 2, 3]);
        assert!(
            outcome.rejected[0].1.contains("magic byte"),
            "{:?}",
            outcome.rejected
        );
        let n = outcome
            .batch
            .column(1)
            .as_any()
            .downcast_ref::<Int32Array>()
            .expect("ints");
        assert_eq!((n.value(0), n.value(1)), (1, 5));
        let ids = outcome
            .batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("keys");
        assert_eq!(ids.len(), 2);
    }
}

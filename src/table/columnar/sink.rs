//! [`ColumnarSink`]: a source's records into a [`ColumnarTable`].

use super::store::{Change, ColumnarTable};
use crate::format::{DecodeOutcome, ErrorPolicy, JsonDecoder, RawRecord, SourceSchema};
use crate::source::{Counters, Prepared, RecordSink, SinkError};
use parking_lot::Mutex;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::Message as _;
use std::sync::Arc;

/// Decodes each batch of records into one segment of rows and applies upserts and
/// tombstones to the table in record order.
pub struct ColumnarSink {
    schema: Arc<SourceSchema>,
    table: Arc<ColumnarTable>,
    decoder: Mutex<JsonDecoder>,
    needs_headers: bool,
    memory_limit: Option<usize>,
}

impl ColumnarSink {
    /// A sink into `table`, whose rows follow `schema` (which must have a key column).
    pub fn new(schema: Arc<SourceSchema>, table: Arc<ColumnarTable>) -> Self {
        Self {
            decoder: Mutex::new(JsonDecoder::new(Arc::clone(&schema))),
            needs_headers: needs_headers(&schema),
            schema,
            table,
            memory_limit: None,
        }
    }

    /// Stops the source, with the reason in its `last_error`, once the table holds more
    /// than `bytes` (see [`ColumnarTable::memory_bytes`]). The check follows each
    /// applied batch, so the table may pass the limit by one batch; what it holds stays
    /// queryable.
    pub fn memory_limit(mut self, bytes: Option<usize>) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// The table the sink fills.
    pub fn table(&self) -> &Arc<ColumnarTable> {
        &self.table
    }
}

/// Whether a schema has a `_headers` column (headers are only rendered then).
pub(crate) fn needs_headers(schema: &SourceSchema) -> bool {
    schema
        .sources()
        .contains(&crate::format::ColumnSource::Metadata(
            crate::format::MetadataField::Headers,
        ))
}

/// Renders a record's headers as a JSON object (values as UTF-8, lossy; null kept).
fn headers_json(record: &BorrowedMessage<'_>) -> Option<String> {
    let headers = record.headers()?;
    let object: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|h| {
            let value = h
                .value
                .map(|v| serde_json::Value::String(String::from_utf8_lossy(v).into_owned()))
                .unwrap_or(serde_json::Value::Null);
            (h.key.to_string(), value)
        })
        .collect();
    Some(serde_json::Value::Object(object).to_string())
}

/// Decodes the values of `records` (no tombstones among them) into rows, rendering
/// headers only when the schema has a `_headers` column. Shared by the table and
/// stream sinks.
pub(crate) fn decode_values(
    decoder: &Mutex<JsonDecoder>,
    needs_headers: bool,
    records: &[&BorrowedMessage<'_>],
) -> Result<DecodeOutcome, SinkError> {
    let headers: Vec<Option<String>> = if needs_headers {
        records.iter().map(|r| headers_json(r)).collect()
    } else {
        Vec::new()
    };
    let inputs = raw_records(records.iter().copied(), &headers);
    decoder
        .lock()
        .decode(&inputs)
        .map_err(|e| SinkError(format!("decoding into Arrow failed: {e}")))
}

/// Turns rdkafka records into decoder input.
fn raw_records<'a>(
    records: impl Iterator<Item = &'a BorrowedMessage<'a>>,
    headers: &'a [Option<String>],
) -> Vec<RawRecord<'a>> {
    records
        .enumerate()
        .map(|(i, record)| RawRecord {
            key: record.key(),
            value: record.payload().unwrap_or_default(),
            partition: record.partition(),
            offset: record.offset(),
            timestamp: record.timestamp().to_millis(),
            headers: headers.get(i).and_then(|h| h.as_deref()),
        })
        .collect()
}

impl RecordSink for ColumnarSink {
    fn apply(&self, records: &[BorrowedMessage<'_>], counters: &Counters) -> Result<(), SinkError> {
        self.prepare(records, counters)?(self)
    }

    /// Decodes and plans here; the store's index updates run in the returned step.
    fn prepare(
        &self,
        records: &[BorrowedMessage<'_>],
        counters: &Counters,
    ) -> Result<Prepared<Self>, SinkError> {
        // Record order decides: `plan` holds, per record, a tombstone's key or the index
        // of the record among those to decode.
        enum Planned {
            Decode(usize),
            Delete(String),
        }
        let mut plan = Vec::with_capacity(records.len());
        let mut to_decode = Vec::with_capacity(records.len());
        for record in records {
            let Some(key) = record.key() else {
                counters.null_key(1);
                continue;
            };
            if record.payload().is_none() {
                match std::str::from_utf8(key) {
                    Ok(key) => plan.push((record, Planned::Delete(key.to_string()))),
                    Err(e) => counters.reject(record, "key", &e),
                }
                continue;
            }
            plan.push((record, Planned::Decode(to_decode.len())));
            to_decode.push(record);
        }

        let outcome = decode_values(&self.decoder, self.needs_headers, &to_decode)?;
        // Row of each decoded record, or None if it was rejected.
        let mut row_of = vec![None; to_decode.len()];
        for (row, &input) in outcome.accepted.iter().enumerate() {
            row_of[input] = Some(row as u32);
        }
        let mut reasons = outcome.rejected.into_iter().peekable();

        let mut changes = Vec::with_capacity(plan.len());
        // The partition and offset of each change, for the change feed.
        let mut positions = Vec::with_capacity(plan.len());
        let mut failure = None;
        for (record, planned) in plan {
            match planned {
                Planned::Delete(key) => {
                    counters.deleted(1);
                    changes.push(Change::Delete { key });
                    positions.push((record.partition(), record.offset()));
                }
                Planned::Decode(input) => match row_of[input] {
                    Some(row) => {
                        counters.upserted(1);
                        changes.push(Change::Upsert { row });
                        positions.push((record.partition(), record.offset()));
                    }
                    None => {
                        let reason = match reasons.peek() {
                            Some((i, _)) if *i == input => reasons.next().map(|(_, r)| r),
                            _ => None,
                        }
                        .unwrap_or_else(|| "rejected".to_string());
                        counters.reject(record, "value", &reason);
                        if self.schema.on_error() == ErrorPolicy::Fail {
                            // Keep what came before the bad record, then stop.
                            failure = Some(SinkError(format!(
                                "record at {}/{} offset {} does not fit the declared columns: {reason}",
                                record.topic(),
                                record.partition(),
                                record.offset()
                            )));
                            break;
                        }
                    }
                },
            }
        }
        let batch = outcome.batch;
        Ok(Box::new(move |sink: &Self| {
            sink.table
                .apply_at(batch, &changes, &positions)
                .map_err(|e| SinkError(format!("applying rows failed: {e}")))?;
            if let Some(limit) = sink.memory_limit {
                let held = sink.table.memory_bytes();
                if held > limit {
                    return Err(SinkError(format!(
                        "memory limit reached: the table holds {} of its table_memory_limit {}; \
                         ingestion stopped, queries on the rows it holds still work",
                        bytesize::ByteSize::b(held as u64),
                        bytesize::ByteSize::b(limit as u64),
                    )));
                }
            }
            failure.map_or(Ok(()), Err)
        }))
    }

    fn rows(&self) -> usize {
        self.table.len()
    }
}

//! [`ColumnarSink`]: a source's records into a [`ColumnarTable`].

use super::budget::MemoryBudget;
use super::changes::Change;
use super::store::ColumnarTable;
use crate::format::{
    decoder_for, key_decoder_for, DecodeError, DecodeOutcome, ErrorPolicy, KeyDecoder, KeyError,
    RawRecord, RecordDecoder, SourceSchema,
};
use crate::kafka::FetchedRecord;
use crate::source::{Counters, Prepared, RecordSink, SinkError};
use parking_lot::Mutex;
use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Decodes each batch of records into one segment of rows and applies upserts and
/// tombstones to the table in record order.
pub struct ColumnarSink {
    schema: Arc<SourceSchema>,
    table: Arc<ColumnarTable>,
    decoder: Mutex<Box<dyn RecordDecoder>>,
    keys: Option<KeyDecoder>,
    needs_headers: bool,
    memory_limit: Option<usize>,
    budget: Option<Arc<MemoryBudget>>,
    /// The table's size as last reported to `budget`.
    counted: AtomicUsize,
    retry: RetryState,
}

impl ColumnarSink {
    /// A sink into `table`, whose rows follow `schema` (which must have a key column).
    pub fn new(schema: Arc<SourceSchema>, table: Arc<ColumnarTable>) -> Self {
        Self {
            decoder: Mutex::new(decoder_for(&schema)),
            keys: key_decoder_for(&schema),
            needs_headers: needs_headers(&schema),
            retry: RetryState::default(),
            schema,
            table,
            memory_limit: None,
            budget: None,
            counted: AtomicUsize::new(0),
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

    /// Counts the table in `budget`, which all the tables of a server share; the table
    /// stops ingesting, with the reason in its `last_error`, when it grows while the
    /// tables together hold more than the budget's limit.
    pub fn memory_budget(mut self, budget: Option<Arc<MemoryBudget>>) -> Self {
        self.budget = budget;
        self
    }

    /// Checks the table's size against its own limit and the shared budget, after a
    /// batch was applied.
    fn check_memory(&self) -> Result<(), SinkError> {
        if self.memory_limit.is_none() && self.budget.is_none() {
            return Ok(());
        }
        let held = self.table.memory_bytes();
        let size = |bytes: usize| bytesize::ByteSize::b(bytes as u64);
        // The budget first, so that it counts the table's size whichever limit stops it.
        if let Some(budget) = &self.budget {
            let before = self.counted.swap(held, Ordering::Relaxed);
            let together = budget.record(before, held);
            if held > before && together > budget.limit() {
                return Err(SinkError(format!(
                    "memory limit reached: the tables hold {} of the server's \
                     tables_memory_limit {} (this one {}); ingestion stopped, queries on \
                     the rows it holds still work",
                    size(together),
                    size(budget.limit()),
                    size(held),
                )));
            }
        }
        if let Some(limit) = self.memory_limit {
            if held > limit {
                return Err(SinkError(format!(
                    "memory limit reached: the table holds {} of its memory limit {} \
                     (memory_limit, or the server's table_memory_limit); ingestion stopped, \
                     queries on the rows it holds still work",
                    size(held),
                    size(limit),
                )));
            }
        }
        Ok(())
    }

    /// The table the sink fills.
    pub fn table(&self) -> &Arc<ColumnarTable> {
        &self.table
    }
}

impl Drop for ColumnarSink {
    fn drop(&mut self) {
        // The source ended (dropped, or the server stops): its table no longer grows,
        // and is about to be freed unless a query still reads it.
        if let Some(budget) = &self.budget {
            budget.record(*self.counted.get_mut(), 0);
        }
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

/// Whether the last batch failed for a passing reason (an unreachable schema registry)
/// and should be applied again; shared by the table and stream sinks.
#[derive(Default)]
pub(crate) struct RetryState {
    pending: Mutex<Option<Duration>>,
}

impl RetryState {
    /// Turns a decode failure into the sink's error, remembering a passing one.
    pub(crate) fn fail(&self, error: DecodeError) -> SinkError {
        if let DecodeError::Registry(registry) = &error {
            if registry.is_transient() {
                *self.pending.lock() = Some(Duration::from_millis(100));
            }
        }
        SinkError(error.to_string())
    }

    /// Remembers a passing key failure.
    pub(crate) fn fail_key(&self, error: &KeyError) -> SinkError {
        *self.pending.lock() = Some(Duration::from_millis(100));
        SinkError(error.to_string())
    }

    /// Clears the state at the start of an attempt.
    pub(crate) fn start(&self) {
        *self.pending.lock() = None;
    }

    /// How long to wait before applying the failed batch again, if it may succeed.
    pub(crate) fn retry_after(
        &self,
        registry: Option<&crate::format::SchemaRegistry>,
    ) -> Option<Duration> {
        let pending = (*self.pending.lock())?;
        Some(
            registry
                .and_then(|r| r.retry_after())
                .unwrap_or(pending)
                .max(Duration::from_millis(10)),
        )
    }
}

/// Decodes the values of `records` (no tombstones among them) into rows, rendering
/// headers only when the schema has a `_headers` column. `keys`, when given, are the
/// records' decoded keys (see `format::KeyDecoder`), used instead of the raw ones.
/// Shared by the table and stream sinks.
pub(crate) fn decode_values(
    decoder: &Mutex<Box<dyn RecordDecoder>>,
    needs_headers: bool,
    records: &[&FetchedRecord<'_>],
    keys: Option<&[Cow<'_, str>]>,
) -> Result<DecodeOutcome, DecodeError> {
    let headers: Vec<Option<String>> = if needs_headers {
        records.iter().map(|r| r.headers_json()).collect()
    } else {
        Vec::new()
    };
    let inputs = raw_records(records.iter().copied(), &headers, keys);
    decoder.lock().decode(&inputs)
}

/// Turns rdkafka records into decoder input.
fn raw_records<'a>(
    records: impl Iterator<Item = &'a FetchedRecord<'a>>,
    headers: &'a [Option<String>],
    keys: Option<&'a [Cow<'a, str>]>,
) -> Vec<RawRecord<'a>> {
    records
        .enumerate()
        .map(|(i, record)| RawRecord {
            key: match keys {
                Some(keys) => keys.get(i).map(|key| key.as_bytes()),
                None => record.key(),
            },
            value: record.value().unwrap_or_default(),
            partition: record.partition(),
            offset: record.offset(),
            timestamp: record.timestamp(),
            headers: headers.get(i).and_then(|h| h.as_deref()),
        })
        .collect()
}

impl RecordSink for ColumnarSink {
    fn apply(&self, records: &[FetchedRecord<'_>], counters: &Counters) -> Result<(), SinkError> {
        self.prepare(records, counters)?(self)
    }

    /// Decodes and plans here; the store's index updates run in the returned step.
    fn prepare(
        &self,
        records: &[FetchedRecord<'_>],
        counters: &Counters,
    ) -> Result<Prepared<Self>, SinkError> {
        // Record order decides: `plan` holds, per record, a tombstone's key or the index
        // of the record among those to decode.
        enum Planned {
            Decode(usize),
            Delete(String),
        }
        self.retry.start();
        // Keys first: a key whose schema cannot be fetched yet fails the batch before
        // anything is counted, so that it can be applied again.
        let mut decoded_keys = Vec::with_capacity(records.len());
        for record in records {
            decoded_keys.push(match (record.key(), &self.keys) {
                (None, _) => None,
                (Some(key), Some(keys)) => match keys.decode_borrowed(key) {
                    Err(KeyError::Registry(e)) if e.is_transient() => {
                        return Err(self.retry.fail_key(&KeyError::Registry(e)))
                    }
                    other => Some(other),
                },
                // A text key is read in place: no copy per record.
                (Some(key), None) => Some(
                    std::str::from_utf8(key)
                        .map(Cow::Borrowed)
                        .map_err(|e| KeyError::Bad(format!("key is not UTF-8: {e}"))),
                ),
            });
        }
        let mut plan = Vec::with_capacity(records.len());
        let mut to_decode = Vec::with_capacity(records.len());
        let mut keys_to_decode = Vec::with_capacity(records.len());
        let mut rejected_keys = Vec::new();
        let mut null_keys = 0;
        for (record, key) in records.iter().zip(decoded_keys) {
            let key = match key {
                None => {
                    null_keys += 1;
                    continue;
                }
                Some(Err(e)) => {
                    rejected_keys.push((record, e));
                    continue;
                }
                Some(Ok(key)) => key,
            };
            if record.value().is_none() {
                plan.push((record, Planned::Delete(key.into_owned())));
                continue;
            }
            plan.push((record, Planned::Decode(to_decode.len())));
            to_decode.push(record);
            keys_to_decode.push(key);
        }

        let outcome = decode_values(
            &self.decoder,
            self.needs_headers,
            &to_decode,
            Some(&keys_to_decode),
        )
        .map_err(|e| self.retry.fail(e))?;
        // Counted only now: a batch that failed to decode above is prepared again.
        counters.null_key(null_keys);
        for (record, e) in rejected_keys {
            counters.reject(record, "key", &e);
        }
        let mut deletes = vec![false; to_decode.len()];
        for &input in &outcome.deletes {
            deletes[input] = true;
        }
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
                Planned::Decode(input) if deletes[input] => {
                    counters.deleted(1);
                    changes.push(Change::Delete {
                        key: keys_to_decode[input].to_string(),
                    });
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
            sink.check_memory()?;
            failure.map_or(Ok(()), Err)
        }))
    }

    fn rows(&self) -> usize {
        self.table.len()
    }

    fn retry_after(&self) -> Option<Duration> {
        self.retry
            .retry_after(self.schema.format().registry.as_deref())
    }
}

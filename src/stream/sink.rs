//! [`StreamSink`]: a source's records appended to a [`StreamStore`].

use super::StreamStore;
use crate::format::{decoder_for, ErrorPolicy, RecordDecoder, SourceSchema};
use crate::kafka::FetchedRecord;
use crate::source::{Counters, RecordSink, SinkError};
use crate::table::columnar::{decode_values, RetryState};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

/// Decodes records into rows and appends them to a stream's window. A record without a
/// value has nothing to append: it is counted as a tombstone and skipped.
pub struct StreamSink {
    schema: Arc<SourceSchema>,
    store: Arc<StreamStore>,
    decoder: Mutex<Box<dyn RecordDecoder>>,
    needs_headers: bool,
    retry: RetryState,
}

impl StreamSink {
    /// A sink appending to `store`, whose rows follow `schema`.
    pub fn new(schema: Arc<SourceSchema>, store: Arc<StreamStore>) -> Self {
        Self {
            decoder: Mutex::new(decoder_for(&schema)),
            needs_headers: crate::table::columnar::needs_headers(&schema),
            retry: RetryState::default(),
            schema,
            store,
        }
    }

    /// The stream's store.
    pub fn store(&self) -> &Arc<StreamStore> {
        &self.store
    }
}

/// The partition and offset of each accepted record, for the change feed.
fn positions(records: &[&FetchedRecord<'_>], accepted: &[usize]) -> Vec<(i32, i64)> {
    accepted
        .iter()
        .map(|&i| (records[i].partition(), records[i].offset()))
        .collect()
}

impl RecordSink for StreamSink {
    fn apply(&self, records: &[FetchedRecord<'_>], counters: &Counters) -> Result<(), SinkError> {
        self.retry.start();
        let with_values: Vec<&FetchedRecord<'_>> =
            records.iter().filter(|r| r.value().is_some()).collect();
        let outcome = decode_values(&self.decoder, self.needs_headers, &with_values, None)
            .map_err(|e| self.retry.fail(e))?;
        // Debezium deletes have nothing to append either.
        counters.deleted((records.len() - with_values.len() + outcome.deletes.len()) as u64);
        for (input, reason) in &outcome.rejected {
            counters.reject(with_values[*input], "value", reason);
        }
        let newest = outcome
            .accepted
            .iter()
            .filter_map(|&i| with_values[i].timestamp())
            .max();
        let first_rejected = outcome
            .rejected
            .first()
            .map(|(i, reason)| (*i, reason.clone()));
        if let (ErrorPolicy::Fail, Some((input, reason))) = (self.schema.on_error(), first_rejected)
        {
            // Keep the rows before the bad record, then stop.
            let before = outcome.accepted.iter().take_while(|&&i| i < input).count();
            counters.upserted(before as u64);
            let positions = positions(&with_values, &outcome.accepted[..before]);
            self.store
                .append_at(outcome.batch.slice(0, before), newest, &positions);
            let record = with_values[input];
            return Err(SinkError(format!(
                "record at {}/{} offset {} does not fit the declared columns: {reason}",
                record.topic(),
                record.partition(),
                record.offset()
            )));
        }
        counters.upserted(outcome.accepted.len() as u64);
        let positions = positions(&with_values, &outcome.accepted);
        self.store.append_at(outcome.batch, newest, &positions);
        Ok(())
    }

    fn rows(&self) -> usize {
        self.store.len()
    }

    fn retry_after(&self) -> Option<Duration> {
        self.retry
            .retry_after(self.schema.format().registry.as_deref())
    }
}

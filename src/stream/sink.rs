//! [`StreamSink`]: a source's records appended to a [`StreamStore`].

use super::StreamStore;
use crate::format::{ErrorPolicy, JsonDecoder, SourceSchema};
use crate::source::{Counters, RecordSink, SinkError};
use crate::table::columnar::decode_values;
use parking_lot::Mutex;
use rdkafka::message::BorrowedMessage;
use rdkafka::Message as _;
use std::sync::Arc;

/// Decodes records into rows and appends them to a stream's window. A record without a
/// value has nothing to append: it is counted as a tombstone and skipped.
pub struct StreamSink {
    schema: Arc<SourceSchema>,
    store: Arc<StreamStore>,
    decoder: Mutex<JsonDecoder>,
    needs_headers: bool,
}

impl StreamSink {
    /// A sink appending to `store`, whose rows follow `schema`.
    pub fn new(schema: Arc<SourceSchema>, store: Arc<StreamStore>) -> Self {
        Self {
            decoder: Mutex::new(JsonDecoder::new(Arc::clone(&schema))),
            needs_headers: crate::table::columnar::needs_headers(&schema),
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
fn positions(records: &[&BorrowedMessage<'_>], accepted: &[usize]) -> Vec<(i32, i64)> {
    accepted
        .iter()
        .map(|&i| (records[i].partition(), records[i].offset()))
        .collect()
}

impl RecordSink for StreamSink {
    fn apply(&self, records: &[BorrowedMessage<'_>], counters: &Counters) -> Result<(), SinkError> {
        let with_values: Vec<&BorrowedMessage<'_>> =
            records.iter().filter(|r| r.payload().is_some()).collect();
        counters.deleted((records.len() - with_values.len()) as u64);
        let outcome = decode_values(&self.decoder, self.needs_headers, &with_values)?;
        for (input, reason) in &outcome.rejected {
            counters.reject(with_values[*input], "value", reason);
        }
        let newest = outcome
            .accepted
            .iter()
            .filter_map(|&i| with_values[i].timestamp().to_millis())
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
}

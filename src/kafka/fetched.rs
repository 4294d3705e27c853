//! [`FetchedRecord`]: a record as the consumer fetched it, what sources hand to sinks.
//!
//! Sinks decode records by the batch straight from librdkafka's buffers, so the type
//! borrows them rather than copying keys and values out; it wraps rdkafka's
//! `BorrowedMessage` so that rdkafka stays inside `kafka/` and sinks see only Kafka's
//! own notions: key, value, partition, offset, timestamp, headers.

use rdkafka::message::{BorrowedMessage, Headers as _};
use rdkafka::Message as _;

/// One fetched record, its bytes borrowed from the consumer until the batch ends.
pub struct FetchedRecord<'a>(BorrowedMessage<'a>);

impl<'a> FetchedRecord<'a> {
    pub(crate) fn new(message: BorrowedMessage<'a>) -> Self {
        Self(message)
    }

    /// The record key; `None` for a record produced without one.
    pub fn key(&self) -> Option<&[u8]> {
        self.0.key()
    }

    /// The record value; `None` for a tombstone.
    pub fn value(&self) -> Option<&[u8]> {
        self.0.payload()
    }

    /// The topic the record was read from.
    pub fn topic(&self) -> &str {
        self.0.topic()
    }

    /// The partition the record was read from.
    pub fn partition(&self) -> i32 {
        self.0.partition()
    }

    /// The record's offset in its partition.
    pub fn offset(&self) -> i64 {
        self.0.offset()
    }

    /// The record's timestamp in milliseconds since the epoch, if it has one.
    pub fn timestamp(&self) -> Option<i64> {
        self.0.timestamp().to_millis()
    }

    /// The record's headers as a JSON object (values as UTF-8, lossy; a null value
    /// kept as null), or `None` without headers.
    pub fn headers_json(&self) -> Option<String> {
        let headers = self.0.headers()?;
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
}

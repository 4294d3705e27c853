//! A decoded Kafka record with everything Kafka stores about it.

/// One record header. Kafka allows duplicate header keys and null header values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header name.
    pub key: String,
    /// The header value; `None` is a null value, distinct from an empty one.
    pub value: Option<Vec<u8>>,
}

/// A record read from Kafka, with its key and value decoded.
///
/// `key()` is `None` for a record produced without a key; `value()` is `None` for a
/// tombstone (the record that deletes a key from a compacted topic).
#[derive(Debug, Clone, PartialEq)]
pub struct Message<K, V> {
    pub(crate) key: Option<K>,
    pub(crate) value: Option<V>,
    pub(crate) headers: Vec<Header>,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) timestamp: Option<i64>,
}

impl<K, V> Message<K, V> {
    /// The decoded key, if the record has one.
    pub fn key(&self) -> Option<&K> {
        self.key.as_ref()
    }

    /// The decoded value; `None` for a tombstone.
    pub fn value(&self) -> Option<&V> {
        self.value.as_ref()
    }

    /// True when the record has no value: in a table it deletes its key.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// Record headers in the order Kafka returned them.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The topic the record was read from.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition the record was read from.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The record's offset in its partition.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Milliseconds since the Unix epoch (create or log-append time), when Kafka has one.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// Moves the key and value out of the message.
    pub fn into_key_value(self) -> (Option<K>, Option<V>) {
        (self.key, self.value)
    }
}

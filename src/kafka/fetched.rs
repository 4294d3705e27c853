//! [`FetchedRecord`]: a record as the consumer fetched it, what sources hand to sinks.
//!
//! Sinks decode records by the batch straight from librdkafka's buffers, so the type
//! borrows them rather than copying keys and values out. It wraps librdkafka's message
//! (taken from a [`RecordQueue`](super::RecordQueue), or rdkafka's `BorrowedMessage`)
//! so that rdkafka stays inside `kafka/` and sinks see only Kafka's own notions: key,
//! value, partition, offset, timestamp, headers.

use rdkafka::bindings as rd;
use rdkafka::message::BorrowedMessage;
use std::ffi::CStr;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// One fetched record, its bytes borrowed from the consumer until the batch ends.
pub struct FetchedRecord<'a> {
    /// The record; valid while `owner` is, read-only.
    message: NonNull<rd::rd_kafka_message_t>,
    owner: Owner<'a>,
}

/// Who frees the record's message.
enum Owner<'a> {
    /// Taken from a [`RecordQueue`](super::RecordQueue): this record destroys the
    /// message.
    Taken(PhantomData<&'a ()>),
    /// rdkafka's message (from `recv`), kept only to free it when dropped.
    Borrowed { _message: BorrowedMessage<'a> },
}

// The message is only read (librdkafka never changes a message it handed out) and may be
// destroyed from any thread, as rdkafka's own `BorrowedMessage` is.
unsafe impl Send for FetchedRecord<'_> {}
unsafe impl Sync for FetchedRecord<'_> {}

impl Drop for FetchedRecord<'_> {
    fn drop(&mut self) {
        if let Owner::Taken(_) = self.owner {
            // SAFETY: a message taken from a queue, owned by this record alone.
            unsafe { rd::rd_kafka_message_destroy(self.message.as_ptr()) };
        }
    }
}

/// `len` bytes at `data`, or `None` for a null pointer (no key, a tombstone).
///
/// # Safety
/// `data` must be null or point to `len` bytes that live as long as `'a`.
unsafe fn bytes<'a>(data: *const std::ffi::c_void, len: usize) -> Option<&'a [u8]> {
    if data.is_null() {
        None
    } else if len == 0 {
        Some(&[])
    } else {
        // SAFETY: see the function's contract.
        Some(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
    }
}

impl<'a> FetchedRecord<'a> {
    pub(crate) fn new(message: BorrowedMessage<'a>) -> Self {
        // rdkafka keeps its messages behind a non-null pointer.
        let pointer = NonNull::new(message.ptr()).expect("rdkafka messages are never null");
        Self {
            message: pointer,
            owner: Owner::Borrowed { _message: message },
        }
    }

    /// A message taken from a queue, without an error.
    ///
    /// # Safety
    /// `message` must be a message librdkafka handed out to its receiver, of a client
    /// that outlives `'a`.
    pub(crate) unsafe fn taken(message: NonNull<rd::rd_kafka_message_t>) -> Self {
        Self {
            message,
            owner: Owner::Taken(PhantomData),
        }
    }

    fn raw(&self) -> &rd::rd_kafka_message_t {
        // SAFETY: the message lives as long as `self` (see `owner`).
        unsafe { self.message.as_ref() }
    }

    /// The record key; `None` for a record produced without one.
    pub fn key(&self) -> Option<&[u8]> {
        let raw = self.raw();
        // SAFETY: librdkafka's key pointer and length, alive with the message.
        unsafe { bytes(raw.key, raw.key_len) }
    }

    /// The record value; `None` for a tombstone.
    pub fn value(&self) -> Option<&[u8]> {
        let raw = self.raw();
        // SAFETY: librdkafka's payload pointer and length, alive with the message.
        unsafe { bytes(raw.payload, raw.len) }
    }

    /// The topic the record was read from.
    pub fn topic(&self) -> &str {
        // SAFETY: the topic handle of a live message; its name is NUL-terminated and
        // lives as long as the handle, which the message holds.
        let name = unsafe { CStr::from_ptr(rd::rd_kafka_topic_name(self.raw().rkt)) };
        // Kafka topic names are ASCII.
        name.to_str().unwrap_or_default()
    }

    /// The partition the record was read from.
    pub fn partition(&self) -> i32 {
        self.raw().partition
    }

    /// The record's offset in its partition.
    pub fn offset(&self) -> i64 {
        self.raw().offset
    }

    /// The record's timestamp in milliseconds since the epoch, if it has one.
    pub fn timestamp(&self) -> Option<i64> {
        let mut kind = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: a live message; `kind` is written by librdkafka.
        let millis = unsafe { rd::rd_kafka_message_timestamp(self.message.as_ptr(), &mut kind) };
        let available = kind != rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        (available && millis != -1).then_some(millis)
    }

    /// The record's headers as a JSON object (names and values as UTF-8, lossy; a null
    /// value kept as null), or `None` without headers.
    pub fn headers_json(&self) -> Option<String> {
        let mut headers: *mut rd::rd_kafka_headers_t = std::ptr::null_mut();
        // SAFETY: a live message; librdkafka parses its headers once and keeps them
        // with the message.
        let found = unsafe { rd::rd_kafka_message_headers(self.message.as_ptr(), &mut headers) };
        if found != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || headers.is_null() {
            return None;
        }
        let mut object = serde_json::Map::new();
        for index in 0.. {
            let (mut name, mut value, mut size) = (std::ptr::null(), std::ptr::null(), 0);
            // SAFETY: `headers` belongs to the live message; the out-pointers are ours.
            let at = unsafe {
                rd::rd_kafka_header_get_all(headers, index, &mut name, &mut value, &mut size)
            };
            if at != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
                break;
            }
            // SAFETY: a NUL-terminated name and `size` value bytes, alive with the message.
            let name = unsafe { CStr::from_ptr(name) }
                .to_string_lossy()
                .into_owned();
            let value = match unsafe { bytes(value, size) } {
                Some(value) => {
                    serde_json::Value::String(String::from_utf8_lossy(value).into_owned())
                }
                None => serde_json::Value::Null,
            };
            object.insert(name, value);
        }
        Some(serde_json::Value::Object(object).to_string())
    }
}

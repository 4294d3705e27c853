//! Partition errors that librdkafka only logs when records are taken a batch at a time.
//!
//! [`RecordQueue`](super::RecordQueue) takes fetched records with
//! `rd_kafka_consume_batch_queue`, one call per batch (event by event was ~16% slower
//! on a 10M-record restore). That call serves a partition's *error* events itself: with
//! no error callback configured (rdkafka uses events instead) librdkafka logs them as
//! `[thrd:app]: <client>: <topic> [<partition>]: <reason> (<error>)` at facility
//! `ERROR` and drops them. Those events say that a topic or partition went away (deleted, shrunk, no
//! longer authorized), which a table must report. rdkafka hands the log line to
//! [`KafkaContext`](super::KafkaContext), which passes it here; the queue of that
//! client (registered while it lives) takes it back as the consumer error it was,
//! and is woken if it is waiting for records.

use parking_lot::Mutex;
use rdkafka::bindings as rd;
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use tokio::sync::Notify;

/// One logged partition error.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LoggedError {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) code: RDKafkaErrorCode,
}

impl LoggedError {
    /// The error as the consumer reports a partition's error event.
    pub(crate) fn to_consumer_error(&self) -> RdKafkaError {
        RdKafkaError::MessageConsumption(self.code)
    }
}

/// A client whose record queue takes its logged errors.
struct Watched {
    errors: Vec<LoggedError>,
    wake: Arc<Notify>,
}

/// Watched clients by librdkafka's client name (unique in the process).
static WATCHED: LazyLock<Mutex<HashMap<String, Watched>>> = LazyLock::new(Default::default);
/// Whether any watched client has errors waiting: the record queue's check per batch
/// is one load while there are none.
static PENDING: AtomicBool = AtomicBool::new(false);

/// Keeps the logged partition errors of `client` for [`take`], and wakes `wake` for
/// each.
pub(crate) fn watch(client: &str, wake: Arc<Notify>) {
    WATCHED.lock().insert(
        client.to_string(),
        Watched {
            errors: Vec::new(),
            wake,
        },
    );
}

/// Stops keeping the errors of `client`, unless a newer queue of the same client
/// watches it now (its `wake` is another).
pub(crate) fn unwatch(client: &str, wake: &Arc<Notify>) {
    let mut watched = WATCHED.lock();
    if watched
        .get(client)
        .is_some_and(|w| Arc::ptr_eq(&w.wake, wake))
    {
        watched.remove(client);
    }
}

/// The errors logged for `client` since the last call.
pub(crate) fn take(client: &str) -> Vec<LoggedError> {
    if !PENDING.load(Ordering::Acquire) {
        return Vec::new();
    }
    let mut watched = WATCHED.lock();
    let taken = watched
        .get_mut(client)
        .map(|w| std::mem::take(&mut w.errors))
        .unwrap_or_default();
    PENDING.store(
        watched.values().any(|w| !w.errors.is_empty()),
        Ordering::Release,
    );
    taken
}

/// A line librdkafka logged at facility `ERROR`: kept if it is a partition error of a
/// watched client. Returns whether it was. An error already waiting is not kept
/// twice, so a queue nobody takes from holds at most one per partition and code.
pub(crate) fn note(line: &str) -> bool {
    let mut watched = WATCHED.lock();
    for (client, w) in watched.iter_mut() {
        if let Some(error) = parse(client, line) {
            if !w.errors.contains(&error) {
                w.errors.push(error);
            }
            w.wake.notify_one();
            PENDING.store(true, Ordering::Release);
            return true;
        }
    }
    false
}

/// The partition error in `line` if `client` logged it:
/// `[thrd:<thread>]: <client>: <topic> [<partition>]: <reason> (<error text>)`, the
/// thread part optional.
fn parse(client: &str, line: &str) -> Option<LoggedError> {
    let line = match line.strip_prefix("[thrd:") {
        Some(thread) => thread.split_once("]: ")?.1,
        None => line,
    };
    let rest = line.strip_prefix(client)?.strip_prefix(": ")?;
    let open = rest.find(" [")?;
    let topic = &rest[..open];
    let after = &rest[open + 2..];
    let close = after.find("]: ")?;
    let partition = after[..close].parse().ok()?;
    let detail = &after[close + 3..];
    let text = detail.strip_suffix(')')?.rsplit_once(" (")?.1;
    Some(LoggedError {
        topic: topic.to_string(),
        partition,
        code: code_of(text),
    })
}

/// The codes librdkafka puts in a partition's error event (`rd_kafka_toppar_enq_error`:
/// the topic's metadata error, or an unknown partition).
const PARTITION_ERROR_CODES: [rd::rd_kafka_resp_err_t; 5] = [
    rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
    rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC,
    rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION,
    rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
    rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION,
];

/// The error code whose librdkafka text is `text`; a generic failure for another.
fn code_of(text: &str) -> RDKafkaErrorCode {
    PARTITION_ERROR_CODES
        .into_iter()
        .find(|&code| {
            // SAFETY: librdkafka returns a static, NUL-terminated string for any code.
            let described = unsafe { CStr::from_ptr(rd::rd_kafka_err2str(code)) };
            described.to_str() == Ok(text)
        })
        .map(RDKafkaErrorCode::from)
        .unwrap_or(RDKafkaErrorCode::Fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_error_line_is_read_back_with_its_code() {
        // As librdkafka 2.12 logs it when a topic is deleted.
        let line = "[thrd:app]: rdkafka#consumer-7: users.v1 [3]: topic does not exist \
                    (Broker: Unknown topic or partition)";
        let error = parse("rdkafka#consumer-7", line).expect("parsed");
        assert_eq!(error.topic, "users.v1");
        assert_eq!(error.partition, 3);
        assert_eq!(error.code, RDKafkaErrorCode::UnknownTopicOrPartition);
        let local = "c: t [0]: desired partition is not available (Local: Unknown partition)";
        assert_eq!(
            parse("c", local).map(|e| e.code),
            Some(RDKafkaErrorCode::UnknownPartition)
        );
        // Another client's line, and lines of other shapes, are not partition errors.
        assert_eq!(parse("rdkafka#consumer-8", line), None);
        assert_eq!(parse("c", "c: Receive failed: Connection reset"), None);
        assert_eq!(
            parse("c", "c: t [x]: reason (Local: Unknown partition)"),
            None
        );
    }

    #[test]
    fn only_watched_clients_keep_their_errors_and_are_woken() {
        let wake = Arc::new(Notify::new());
        watch("test-client-a", Arc::clone(&wake));
        let line = "test-client-a: t [1]: topic does not exist (Local: Unknown topic)";
        assert!(note(line));
        assert!(
            note(line),
            "the same error again is still its client's, kept once"
        );
        assert!(!note(
            "test-client-b: t [1]: topic does not exist (Local: Unknown topic)"
        ));
        // The wake-up is kept as a permit for a waiter that comes after.
        let woken = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
            .block_on(async {
                tokio::time::timeout(std::time::Duration::from_secs(1), wake.notified())
                    .await
                    .is_ok()
            });
        assert!(woken);
        let taken = take("test-client-a");
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].code, RDKafkaErrorCode::UnknownTopic);
        assert!(take("test-client-a").is_empty());
        // A second queue of the client takes over; the first one's end leaves it.
        let newer = Arc::new(Notify::new());
        watch("test-client-a", Arc::clone(&newer));
        unwatch("test-client-a", &wake);
        assert!(note(line));
        assert_eq!(take("test-client-a").len(), 1);
        unwatch("test-client-a", &newer);
        assert!(!note(line));
    }
}

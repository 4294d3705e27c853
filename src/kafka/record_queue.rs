//! [`RecordQueue`]: the records of a consumer's assigned partitions, taken a batch at a
//! time.
//!
//! rdkafka's `StreamConsumer::recv` hands out one record per call, and each call costs
//! about as much as decoding a small JSON record: up to three clock reads, a waker
//! registered and removed under a mutex, an `Arc` and an event per record. In a profile
//! of a 10M-record restore that was 38% of the decoding stage. Here a source's
//! partitions' fetch queues are forwarded to a queue of their own, and what is already
//! fetched is taken from it with one `rd_kafka_consume_batch_queue` call per batch
//! (taking it event by event with `rd_kafka_queue_poll`, a queue lock and two clock
//! reads each, made a 10M-record restore ~16% slower). The consumer's own queue keeps
//! the client-wide events (commit replies, statistics, logs, client errors), still read
//! with `recv`. The batch call logs a partition's error events instead of returning
//! them; [`logged_errors`](super::logged_errors) turns those lines back into errors.

use super::{logged_errors, FetchedRecord, KafkaContext};
use parking_lot::Mutex;
use rdkafka::bindings as rd;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::ffi::{c_void, CStr, CString};
use std::ptr::NonNull;
use std::sync::Arc;
use tokio::sync::Notify;

/// A queue that the fetch queues of some partitions of one consumer are forwarded to,
/// for as long as it lives (records fetched while nobody reads wait in it). Dropping it
/// forwards them back to the consumer's own queue.
pub struct RecordQueue {
    queue: NonNull<rd::rd_kafka_queue_t>,
    /// The forwarded partitions, with their fetch queues' handles.
    partitions: Mutex<Vec<(String, i32, NonNull<rd::rd_kafka_queue_t>)>>,
    /// Notified by librdkafka (from its own thread) when `queue` stops being empty.
    /// librdkafka keeps the address until the drop.
    nonempty: Arc<Notify>,
    /// librdkafka's name of the client, which its logged partition errors carry.
    client_name: String,
    /// Keeps the client alive until the queues are destroyed.
    consumer: Arc<StreamConsumer<KafkaContext>>,
}

// librdkafka's queues are thread-safe: every operation used here takes the queue's lock.
unsafe impl Send for RecordQueue {}
unsafe impl Sync for RecordQueue {}

/// Called by librdkafka, under the queue's lock, when the queue goes from empty to not
/// empty.
unsafe extern "C" fn queue_nonempty(_: *mut rd::rd_kafka_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `Notify` of a live `RecordQueue`: the callback is turned
    // off (under the same lock) before that `Notify` is released.
    let nonempty = unsafe { &*(opaque as *const Notify) };
    nonempty.notify_one();
}

/// Why a record queue could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RecordQueueError {
    /// A topic name librdkafka cannot take.
    #[error("topic name '{0}' contains a NUL byte")]
    TopicName(String),
    /// librdkafka made no queue (it is out of memory).
    #[error("librdkafka could not make a queue for records")]
    NoQueue,
    /// librdkafka has no fetch queue for a partition (the client is not a consumer).
    #[error("librdkafka has no queue for {0}/{1}")]
    NoPartitionQueue(String, i32),
}

impl RecordQueue {
    /// A queue for records of `consumer`, which none are forwarded to yet.
    pub fn new(consumer: &Arc<StreamConsumer<KafkaContext>>) -> Result<Self, RecordQueueError> {
        let client = consumer.client().native_ptr();
        // SAFETY: `client` is the live client of `consumer`; the queue is destroyed in
        // `drop`, before the `Arc` keeping the client is released.
        let queue = NonNull::new(unsafe { rd::rd_kafka_queue_new(client) })
            .ok_or(RecordQueueError::NoQueue)?;
        let nonempty = Arc::new(Notify::new());
        // SAFETY: the callback only reads the `Notify`, which outlives the callback
        // (turned off in `drop` first).
        unsafe {
            rd::rd_kafka_queue_cb_event_enable(
                queue.as_ptr(),
                Some(queue_nonempty),
                Arc::as_ptr(&nonempty) as *mut c_void,
            );
        }
        // SAFETY: the live client; librdkafka returns its NUL-terminated name.
        let client_name = unsafe { CStr::from_ptr(rd::rd_kafka_name(client)) }
            .to_string_lossy()
            .into_owned();
        logged_errors::watch(&client_name, Arc::clone(&nonempty));
        Ok(Self {
            queue,
            partitions: Mutex::new(Vec::new()),
            nonempty,
            client_name,
            consumer: Arc::clone(consumer),
        })
    }

    /// Forwards the fetch queues of `partitions` of `topic` here (those not forwarded
    /// yet). Call it before assigning them: records fetched before stay where they are.
    pub fn forward(
        &self,
        topic: &str,
        partitions: impl IntoIterator<Item = i32>,
    ) -> Result<(), RecordQueueError> {
        let client = self.consumer.client().native_ptr();
        let name = CString::new(topic).map_err(|_| RecordQueueError::TopicName(topic.into()))?;
        let mut forwarded = self.partitions.lock();
        for partition in partitions {
            if forwarded
                .iter()
                .any(|(t, p, _)| t == topic && *p == partition)
            {
                continue;
            }
            // SAFETY: the live client (`self.consumer`); the handle is destroyed in `drop`.
            let fetched =
                unsafe { rd::rd_kafka_queue_get_partition(client, name.as_ptr(), partition) };
            let fetched = NonNull::new(fetched)
                .ok_or_else(|| RecordQueueError::NoPartitionQueue(topic.into(), partition))?;
            // SAFETY: two live queues of the same client.
            unsafe { rd::rd_kafka_queue_forward(fetched.as_ptr(), self.queue.as_ptr()) };
            forwarded.push((topic.to_string(), partition, fetched));
        }
        Ok(())
    }

    /// Takes up to `max` records and partition notices already fetched, without waiting:
    /// `Err(PartitionEOF)` at the end of a partition, other errors (a partition that
    /// went away with its deleted topic) as the consumer would report them.
    pub fn take(&self, max: usize) -> Vec<Result<FetchedRecord<'_>, RdKafkaError>> {
        let mut taken: Vec<Result<FetchedRecord<'_>, RdKafkaError>> = self.logged_errors();
        let mut raw: Vec<*mut rd::rd_kafka_message_t> = Vec::with_capacity(max);
        // SAFETY: `raw` has room for `max` pointers; librdkafka writes `count` of them.
        let count = unsafe {
            rd::rd_kafka_consume_batch_queue(self.queue.as_ptr(), 0, raw.as_mut_ptr(), max)
        };
        // Negative only for a queue that is not a consumer's, which this one is.
        let count = usize::try_from(count).unwrap_or(0).min(max);
        // SAFETY: librdkafka initialized the first `count` entries.
        unsafe { raw.set_len(count) };
        taken.reserve(count);
        for message in raw.into_iter().filter_map(NonNull::new) {
            // SAFETY: a message librdkafka handed out, owned from now on by the record
            // or destroyed here; it borrows the client, which `self` keeps alive.
            let (error, partition) = unsafe { (message.as_ref().err, message.as_ref().partition) };
            if error == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                taken.push(Ok(unsafe { FetchedRecord::taken(message) }));
            } else {
                unsafe { rd::rd_kafka_message_destroy(message.as_ptr()) };
                taken.push(Err(consumption_error(error, partition)));
            }
        }
        taken
    }

    /// The partition errors librdkafka logged for the partitions forwarded here.
    fn logged_errors(&self) -> Vec<Result<FetchedRecord<'_>, RdKafkaError>> {
        let logged = logged_errors::take(&self.client_name);
        if logged.is_empty() {
            return Vec::new();
        }
        let forwarded = self.partitions.lock();
        logged
            .into_iter()
            .filter(|e| forwarded.iter().any(|(topic, _, _)| *topic == e.topic))
            .map(|e| Err(e.to_consumer_error()))
            .collect()
    }

    /// Waits until at least one record or notice is there, then takes up to `max`.
    /// Cancel-safe: nothing is taken from the queue until the returned future ends.
    pub async fn next_batch(&self, max: usize) -> Vec<Result<FetchedRecord<'_>, RdKafkaError>> {
        loop {
            let taken = self.take(max);
            if !taken.is_empty() {
                return taken;
            }
            // librdkafka notifies when the queue stops being empty; a notification that
            // came after the `take` above is kept as the `Notify`'s permit. Queue items
            // that are not records (a partition's version barrier) wake it with nothing
            // to take: the loop waits again.
            self.nonempty.notified().await;
        }
    }
}

impl Drop for RecordQueue {
    fn drop(&mut self) {
        // SAFETY: the handles were made in `forward` and are destroyed once; the client
        // is alive (`self.consumer`, released after this). Turning the callback off
        // takes the queue's lock, so no callback runs with the `Notify` afterwards.
        logged_errors::unwatch(&self.client_name, &self.nonempty);
        unsafe {
            rd::rd_kafka_queue_cb_event_enable(self.queue.as_ptr(), None, std::ptr::null_mut());
            let client = self.consumer.client().native_ptr();
            let consumer_queue = rd::rd_kafka_queue_get_consumer(client);
            for (_, _, fetched) in self.partitions.get_mut().drain(..) {
                // Null when the client has no consumer group: forwarding to null stops
                // forwarding, and the records wait in the partition's own queue.
                rd::rd_kafka_queue_forward(fetched.as_ptr(), consumer_queue);
                rd::rd_kafka_queue_destroy(fetched.as_ptr());
            }
            if !consumer_queue.is_null() {
                rd::rd_kafka_queue_destroy(consumer_queue);
            }
            rd::rd_kafka_queue_destroy(self.queue.as_ptr());
        }
    }
}

/// A partition's error as rdkafka's consumer reports it.
fn consumption_error(error: rd::rd_kafka_resp_err_t, partition: i32) -> RdKafkaError {
    match error {
        rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF => {
            RdKafkaError::PartitionEOF(partition)
        }
        code => RdKafkaError::MessageConsumption(RDKafkaErrorCode::from(code)),
    }
}

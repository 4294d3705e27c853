//! The background task that keeps a table up to date.
//!
//! It owns no handle of the table, only the shared state, so dropping the last
//! [`KTable`](super::KTable) ends it: the handle side holds the sending half of a
//! shutdown channel, and the task selects on the receiving half next to the consumer,
//! so neither `stop()` nor a drop waits for a record that may never come.

use super::state::Shared;
use crate::kafka::{Deserializer, KafkaContext};
use rdkafka::consumer::StreamConsumer;
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::Message as _;
use std::hash::Hash;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How often restore progress is logged while a table is not ready.
const PROGRESS_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Everything the consumer task needs, moved into it at start.
pub(crate) struct Worker<K, V> {
    pub(crate) shared: Arc<Shared<K, V>>,
    pub(crate) consumer: Arc<StreamConsumer<KafkaContext>>,
    pub(crate) key_serializer: Arc<dyn Deserializer<K>>,
    pub(crate) value_serializer: Arc<dyn Deserializer<V>>,
    pub(crate) shutdown: oneshot::Receiver<()>,
}

/// Marks the table stopped however the task ends, panics included.
struct AliveGuard<'a, K, V>(&'a Shared<K, V>);

impl<K, V> Drop for AliveGuard<'_, K, V> {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
        self.0.task_alive.send_replace(false);
    }
}

impl<K, V> Worker<K, V>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    pub(crate) async fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        let _alive = AliveGuard(&shared);
        let started = Instant::now();
        let mut progress_log = tokio::time::interval(PROGRESS_LOG_INTERVAL);
        loop {
            tokio::select! {
                biased;
                _ = &mut self.shutdown => break,
                next = self.consumer.recv() => match next {
                    Ok(record) => {
                        if self.apply(&record) {
                            self.log_ready(started);
                        }
                    }
                    Err(RdKafkaError::PartitionEOF(partition)) => {
                        if shared.end_of_partition(partition) {
                            self.log_ready(started);
                        }
                    }
                    Err(error) => {
                        // librdkafka retries broker and network failures by itself; the
                        // error is reported, and the table keeps serving what it has.
                        tracing::warn!(topic = %shared.topic, %error, "consumer error");
                        *shared.last_error.lock() = Some(error.to_string());
                    }
                },
                _ = progress_log.tick(), if !shared.is_ready() => {
                    let (done, total) = shared.progress.lock().offsets();
                    tracing::info!(
                        topic = %shared.topic,
                        offsets_done = done,
                        offsets_total = total,
                        "restoring table: {done}/{total} offsets",
                    );
                }
            }
        }
        tracing::debug!(topic = %shared.topic, "table consumer stopped");
    }

    /// Applies one record; returns true if the table just became ready.
    fn apply(&self, record: &BorrowedMessage<'_>) -> bool {
        let shared = &self.shared;
        match record.key() {
            None => {
                shared.counters.null_keys.fetch_add(1, Ordering::Relaxed);
            }
            Some(key_bytes) => match self.key_serializer.deserialize(key_bytes) {
                Err(error) => self.reject(record, "key", &error),
                Ok(key) => match record.payload() {
                    None => shared.delete(&key),
                    Some(value_bytes) => match self.value_serializer.deserialize(value_bytes) {
                        Ok(value) => shared.upsert(key, value),
                        Err(error) => self.reject(record, "value", &error),
                    },
                },
            },
        }
        shared.advance(record.partition(), record.offset())
    }

    fn reject(&self, record: &BorrowedMessage<'_>, part: &str, error: &dyn std::fmt::Display) {
        self.shared
            .counters
            .bad_records
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            topic = record.topic(),
            partition = record.partition(),
            offset = record.offset(),
            %error,
            "skipping record whose {part} cannot be decoded",
        );
    }

    fn log_ready(&self, started: Instant) {
        let shared = &self.shared;
        let (_, total) = shared.progress.lock().offsets();
        tracing::info!(
            topic = %shared.topic,
            keys = shared.map.read().len(),
            offsets = total,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "table ready",
        );
    }
}

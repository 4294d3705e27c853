//! The typed table handle: `KTable<K, V>`.

use super::progress::RestoreProgress;
use super::state::Shared;
use super::worker::Worker;
use super::{KTableError, KTableStats};
use crate::kafka::{ConsumerConfig, Deserializer, KafkaConsumer, KafkaContext, KafkaError};
use parking_lot::Mutex;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A Kafka topic materialized as a live map from key to latest value.
///
/// Create it, [`start`](Self::start) it, wait until it is
/// [ready](Self::wait_until_ready), then read it from any thread. Clones share one
/// state; dropping the last clone stops the consumer task.
///
/// ```no_run
/// # async fn run() -> Result<(), ktable::KTableError> {
/// use ktable::kafka::{ConsumerConfig, JsonSerializer, StringSerializer};
/// use ktable::KTable;
/// use std::time::Duration;
///
/// #[derive(Clone, serde::Deserialize)]
/// struct User { name: String, age: u32 }
///
/// let users: KTable<String, User> = KTable::new(
///     ConsumerConfig::new("localhost:9092", "user-lookups"),
///     "users",
///     StringSerializer,
///     JsonSerializer,
/// )
/// .await?;
/// users.start().await?;
/// users.wait_until_ready(Duration::from_secs(30)).await?;
/// if let Some(user) = users.get(&"user-123".to_string()) {
///     println!("{} is {}", user.name, user.age);
/// }
/// let adults = users.filter(|_, user| user.age >= 18);
/// # Ok(()) }
/// ```
pub struct KTable<K, V> {
    shared: Arc<Shared<K, V>>,
    control: Arc<Control<K, V>>,
}

/// What only handles hold. When the last handle goes, this goes, and with it the
/// sending half of the task's shutdown channel: the task sees that and ends.
struct Control<K, V> {
    consumer: Arc<StreamConsumer<KafkaContext>>,
    key_serializer: Arc<dyn Deserializer<K>>,
    value_serializer: Arc<dyn Deserializer<V>>,
    request_timeout: Duration,
    shutdown: Mutex<Option<oneshot::Sender<()>>>,
    /// Serializes `start` calls, which await metadata requests.
    starting: tokio::sync::Mutex<()>,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            control: Arc::clone(&self.control),
        }
    }
}

impl<K, V> KTable<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Creates a table of `topic`. Nothing is read until [`start`](Self::start).
    ///
    /// The table never commits offsets (it restores from the earliest offset every time),
    /// so `enable.auto.commit` is turned off whatever the configuration says.
    pub async fn new<KS, VS>(
        config: ConsumerConfig,
        topic: impl Into<String>,
        key_serializer: KS,
        value_serializer: VS,
    ) -> Result<Self, KTableError>
    where
        KS: Deserializer<K>,
        VS: Deserializer<V>,
    {
        let config = config.property("enable.auto.commit", "false");
        let consumer = KafkaConsumer::new(config, key_serializer, value_serializer)?;
        Ok(Self::from_consumer(consumer, topic))
    }

    /// Creates a table over an existing consumer. The consumer is assigned every partition
    /// of `topic` at start; do not subscribe it to anything else.
    pub fn from_consumer<KS, VS>(
        consumer: KafkaConsumer<K, V, KS, VS>,
        topic: impl Into<String>,
    ) -> Self
    where
        KS: Deserializer<K>,
        VS: Deserializer<V>,
    {
        let (consumer, config, key_serializer, value_serializer) = consumer.into_parts();
        let shared = Shared::new(topic.into(), config.group_id().to_string());
        Self {
            shared: Arc::new(shared),
            control: Arc::new(Control {
                consumer: Arc::new(consumer),
                key_serializer: Arc::new(key_serializer),
                value_serializer: Arc::new(value_serializer),
                request_timeout: config.timeout(),
                shutdown: Mutex::new(None),
                starting: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Starts the background task that reads the topic, and returns once it runs.
    ///
    /// The first start reads every partition from its earliest offset. A start after
    /// [`stop`](Self::stop) continues from where the table stopped, keeping its state.
    /// Needs a Tokio runtime.
    pub async fn start(&self) -> Result<(), KTableError> {
        let _one_at_a_time = self.control.starting.lock().await;
        if *self.shared.task_alive.borrow() {
            return Err(KTableError::AlreadyRunning(self.shared.topic.clone()));
        }
        let topic = self.shared.topic.clone();
        let first_run = self.shared.progress.lock().partitions().is_empty();
        if first_run {
            let consumer = Arc::clone(&self.control.consumer);
            let timeout = self.control.request_timeout;
            let lookup = topic.clone();
            let watermarks = tokio::task::spawn_blocking(move || {
                partition_watermarks(&consumer, &lookup, timeout)
            })
            .await
            .unwrap_or_else(|join_error| std::panic::resume_unwind(join_error.into_panic()))?;
            let progress = RestoreProgress::new(&watermarks);
            let (_, total) = progress.offsets();
            tracing::info!(
                topic = %topic,
                partitions = watermarks.len(),
                offsets_total = total,
                "restoring table from the earliest offsets"
            );
            if self.shared.reset_progress(progress) {
                tracing::info!(topic = %topic, "table ready: the topic is empty");
            }
        }
        let mut assignment = TopicPartitionList::new();
        for (partition, position) in self.shared.progress.lock().positions() {
            let offset = if first_run {
                Offset::Beginning
            } else {
                Offset::Offset(position)
            };
            assignment
                .add_partition_offset(&topic, partition, offset)
                .map_err(KafkaError::from)?;
        }
        self.control
            .consumer
            .assign(&assignment)
            .map_err(KafkaError::from)?;

        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        *self.control.shutdown.lock() = Some(shutdown_tx);
        self.shared.running.store(true, Ordering::Release);
        self.shared.task_alive.send_replace(true);
        let worker = Worker {
            shared: Arc::clone(&self.shared),
            consumer: Arc::clone(&self.control.consumer),
            key_serializer: Arc::clone(&self.control.key_serializer),
            value_serializer: Arc::clone(&self.control.value_serializer),
            shutdown: shutdown_rx,
        };
        tokio::spawn(worker.run());
        Ok(())
    }

    /// Signals the consumer task to stop; it ends at its next turn without waiting for a
    /// record. The state stays readable. See [`stopped`](Self::stopped) to wait for it.
    pub fn stop(&self) {
        self.control.shutdown.lock().take();
        self.shared.running.store(false, Ordering::Release);
    }

    /// Waits until the consumer task has ended (at once if it is not running).
    pub async fn stopped(&self) {
        let mut alive = self.shared.task_alive.subscribe();
        // The sender lives in `shared`, which this handle keeps alive: no error possible.
        let _ = alive.wait_for(|alive| !*alive).await;
    }

    /// True between `start` and `stop` while the consumer task runs.
    pub fn is_running(&self) -> bool {
        self.shared.running.load(Ordering::Acquire)
    }

    /// True once every partition has reached the high watermark seen at start.
    pub fn is_ready(&self) -> bool {
        self.shared.is_ready()
    }

    /// Waits until the table is ready (see [`is_ready`](Self::is_ready)).
    pub async fn wait_until_ready(&self, timeout: Duration) -> Result<(), KTableError> {
        let mut ready = self.shared.ready.subscribe();
        if tokio::time::timeout(timeout, ready.wait_for(|ready| *ready))
            .await
            .is_ok()
        {
            return Ok(());
        }
        let (offsets_done, offsets_total) = self.shared.progress.lock().offsets();
        Err(KTableError::NotReady {
            topic: self.shared.topic.clone(),
            after: timeout,
            offsets_done,
            offsets_total,
        })
    }

    /// Waits until the table holds at least `min_keys` keys; false on timeout.
    pub async fn wait_for_keys(&self, min_keys: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.len() >= min_keys {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The latest value of `key`, if it has one.
    pub fn get(&self, key: &K) -> Option<V> {
        self.shared.map.read().get(key).cloned()
    }

    /// Whether `key` currently has a value.
    pub fn contains_key(&self, key: &K) -> bool {
        self.shared.map.read().contains_key(key)
    }

    /// Every key, in no particular order.
    pub fn keys(&self) -> Vec<K> {
        self.shared.map.read().keys().cloned().collect()
    }

    /// How many keys the table holds.
    pub fn len(&self) -> usize {
        self.shared.map.read().len()
    }

    /// True when the table holds no key.
    pub fn is_empty(&self) -> bool {
        self.shared.map.read().is_empty()
    }

    /// A consistent copy of the whole table.
    pub fn snapshot(&self) -> HashMap<K, V> {
        let map = self.shared.map.read();
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// A copy of the table with every value transformed by `mapper`.
    pub fn map_values<V2, F>(&self, mapper: F) -> HashMap<K, V2>
    where
        F: Fn(&V) -> V2,
    {
        let map = self.shared.map.read();
        map.iter().map(|(k, v)| (k.clone(), mapper(v))).collect()
    }

    /// A copy of the entries for which `predicate` is true.
    pub fn filter<F>(&self, predicate: F) -> HashMap<K, V>
    where
        F: Fn(&K, &V) -> bool,
    {
        let map = self.shared.map.read();
        map.iter()
            .filter(|(k, v)| predicate(k, v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Size, progress and counters of the table.
    pub fn stats(&self) -> KTableStats {
        let shared = &self.shared;
        let (partitions, (offsets_done, offsets_total)) = {
            let progress = shared.progress.lock();
            (progress.partitions().to_vec(), progress.offsets())
        };
        KTableStats {
            topic: shared.topic.clone(),
            group_id: shared.group_id.clone(),
            key_count: self.len(),
            running: self.is_running(),
            ready: self.is_ready(),
            offsets_done,
            offsets_total,
            upserts: shared.counters.upserts.load(Ordering::Relaxed),
            tombstones: shared.counters.tombstones.load(Ordering::Relaxed),
            null_keys: shared.counters.null_keys.load(Ordering::Relaxed),
            bad_records: shared.counters.bad_records.load(Ordering::Relaxed),
            last_updated: shared.last_updated(),
            last_error: shared.last_error.lock().clone(),
            partitions,
        }
    }

    /// The topic the table reads.
    pub fn topic(&self) -> &str {
        &self.shared.topic
    }

    /// The consumer group id the table was configured with.
    pub fn group_id(&self) -> &str {
        &self.shared.group_id
    }
}

/// Looks up the topic's partitions and their `(partition, low, high)` watermarks.
/// Retries until `timeout` while the topic is unknown or has no leader yet: a topic
/// created a moment ago is often in that state.
fn partition_watermarks(
    consumer: &StreamConsumer<KafkaContext>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<(i32, i64, i64)>, KTableError> {
    let deadline = Instant::now() + timeout;
    let partitions = loop {
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .map_err(KafkaError::from)?;
        let found = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .map(|t| t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>());
        match found {
            Some(partitions) => break partitions,
            None if Instant::now() >= deadline => {
                return Err(KTableError::TopicNotFound(topic.to_string()))
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    partitions
        .into_iter()
        .map(|partition| {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, timeout)
                .map_err(KafkaError::from)?;
            Ok((partition, low, high))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::{JsonSerializer, StringSerializer};
    use rdkafka::mocking::MockCluster;

    /// The task holds only the shared state; when the last handle goes, the task must
    /// end and free that state, even though no record ever arrives to wake it.
    #[tokio::test]
    async fn dropping_the_last_handle_ends_the_consumer_task() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("drop", 2, 1).expect("topic");
        let table: KTable<String, serde_json::Value> = KTable::new(
            ConsumerConfig::new(cluster.bootstrap_servers(), "drop"),
            "drop",
            StringSerializer,
            JsonSerializer,
        )
        .await
        .expect("table");
        table.start().await.expect("start");
        table
            .wait_until_ready(Duration::from_secs(30))
            .await
            .expect("ready");
        let state = Arc::downgrade(&table.shared);
        let second_handle = table.clone();
        drop(table);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(state.upgrade().is_some(), "a clone still holds the table");
        drop(second_handle);
        let deadline = Instant::now() + Duration::from_secs(2);
        while state.upgrade().is_some() {
            assert!(Instant::now() < deadline, "the task outlived every handle");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

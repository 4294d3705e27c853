//! The typed table handle: `KTable<K, V>`.

use super::map_sink::{MapSink, TypedChanges};
use super::typed_checkpoint::{describe_types, TypedCheckpointStore};
use super::{KTableError, KTableStats};
use crate::changefeed::{FellBehind, LogReader, NotRetained, Offsets, ReadError};
use crate::kafka::{ConsumerConfig, Deserializer, KafkaConsumer, Serializer};
use crate::source::Source;
use crate::state::{
    CheckpointDir, CheckpointError, Checkpointing, TableCheckpoints, DEFAULT_CHECKPOINT_INTERVAL,
};
use futures::Stream;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

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
    source: Source<MapSink<K, V>>,
    /// Checkpoints, when asked for: shared by every clone.
    checkpoints: Arc<Mutex<Checkpoints<K, V>>>,
}

/// A typed table's checkpoints: asked for (until the first start), then running.
enum Checkpoints<K, V> {
    None,
    Planned(CheckpointPlan<K, V>),
    Running(Checkpointing),
}

struct CheckpointPlan<K, V> {
    state_dir: PathBuf,
    key_serializer: Arc<dyn Serializer<K>>,
    value_serializer: Arc<dyn Serializer<V>>,
    interval: Duration,
}

/// One change of a [`KTable`], as [`KTable::subscribe`] delivers it.
#[derive(Debug, Clone, PartialEq)]
pub struct TableChange<K, V> {
    /// The key that changed.
    pub key: K,
    /// Its new value; `None`: the key was deleted (a tombstone).
    pub value: Option<V>,
    /// The Kafka partition of the record.
    pub partition: i32,
    /// The record's offset in its partition.
    pub offset: i64,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        Self {
            source: self.source.clone(),
            checkpoints: Arc::clone(&self.checkpoints),
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
        let sink = MapSink::new(key_serializer, value_serializer);
        Ok(Self::of(Source::new(config, topic, sink)?))
    }

    fn of(source: Source<MapSink<K, V>>) -> Self {
        Self {
            source,
            checkpoints: Arc::new(Mutex::new(Checkpoints::None)),
        }
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
        let sink = MapSink::new(key_serializer, value_serializer);
        Self::of(Source::from_consumer(consumer, &config, topic, sink))
    }

    /// Keeps checkpoints of the table under `state_dir`, so that a restart loads the
    /// last one and reads only the records after it, as `ktable serve --state-dir`
    /// does for SQL tables (same files, same checks: a checkpoint that does not fit
    /// the topic any more, or whose entries do not decode, is set aside for a full
    /// restore). Entries are encoded with `key_serializer` and `value_serializer` and
    /// decoded with the table's deserializers, so give their counterparts. A checkpoint
    /// is written every [`DEFAULT_CHECKPOINT_INTERVAL`] (see
    /// [`checkpoint_interval`](Self::checkpoint_interval)), and on
    /// [`checkpoint`](Self::checkpoint): call that at shutdown. The folder is
    /// `<state_dir>/tables/<group id>.<topic>` (escaped): give each table its own group
    /// id. Call before the first [`start`](Self::start).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use ktable::kafka::{ConsumerConfig, JsonSerializer, StringSerializer};
    /// use ktable::KTable;
    /// use std::time::Duration;
    ///
    /// let users: KTable<String, serde_json::Value> = KTable::new(
    ///     ConsumerConfig::new("localhost:9092", "user-lookups"),
    ///     "users",
    ///     StringSerializer,
    ///     JsonSerializer,
    /// )
    /// .await?
    /// .with_checkpoints("/var/lib/my-service", StringSerializer, JsonSerializer);
    /// users.start().await?; // from the last checkpoint, if it still fits
    /// users.wait_until_ready(Duration::from_secs(30)).await?;
    /// // ... serve ...
    /// users.stop();
    /// users.checkpoint().await?;
    /// # Ok(()) }
    /// ```
    pub fn with_checkpoints<KS, VS>(
        self,
        state_dir: impl Into<PathBuf>,
        key_serializer: KS,
        value_serializer: VS,
    ) -> Self
    where
        KS: Serializer<K>,
        VS: Serializer<V>,
    {
        let mut checkpoints = self.checkpoints.lock();
        if matches!(*checkpoints, Checkpoints::Running(_)) {
            // Started already: its state came from elsewhere; keep what runs.
            tracing::warn!(topic = %self.topic(), "with_checkpoints after start is ignored");
        } else {
            *checkpoints = Checkpoints::Planned(CheckpointPlan {
                state_dir: state_dir.into(),
                key_serializer: Arc::new(key_serializer),
                value_serializer: Arc::new(value_serializer),
                interval: DEFAULT_CHECKPOINT_INTERVAL,
            });
        }
        drop(checkpoints);
        self
    }

    /// Sets the time between two checkpoints (see
    /// [`with_checkpoints`](Self::with_checkpoints); before the first start).
    pub fn checkpoint_interval(self, interval: Duration) -> Self {
        if let Checkpoints::Planned(plan) = &mut *self.checkpoints.lock() {
            plan.interval = interval;
        }
        self
    }

    /// Writes a checkpoint now, unless the table has none (see
    /// [`with_checkpoints`](Self::with_checkpoints)), is not started, or applied
    /// nothing since the last; true if one was written.
    pub async fn checkpoint(&self) -> Result<bool, CheckpointError> {
        let checkpoints = match &*self.checkpoints.lock() {
            Checkpoints::Running(running) => Arc::clone(running.checkpoints()),
            _ => return Ok(false),
        };
        checkpoints.write().await
    }

    /// When the last checkpoint was cut (written, or loaded at start), if any.
    pub fn last_checkpoint(&self) -> Option<SystemTime> {
        match &*self.checkpoints.lock() {
            Checkpoints::Running(running) => running.checkpoints().last_checkpoint(),
            _ => None,
        }
    }

    /// Starts the background task that reads the topic, and returns once it runs.
    ///
    /// The first start reads every partition from its earliest offset (or, with
    /// [`with_checkpoints`](Self::with_checkpoints), loads the last checkpoint and reads
    /// from its offsets). A start after
    /// [`stop`](Self::stop) continues from where the table stopped, keeping its state.
    /// Needs a Tokio runtime.
    pub async fn start(&self) -> Result<(), KTableError> {
        let planned = {
            let mut checkpoints = self.checkpoints.lock();
            match std::mem::replace(&mut *checkpoints, Checkpoints::None) {
                Checkpoints::Planned(plan) => Some(plan),
                other => {
                    *checkpoints = other;
                    None
                }
            }
        };
        let Some(plan) = planned else {
            return self.source.start().await;
        };
        let name = format!("{}.{}", self.group_id(), self.topic());
        let store = TypedCheckpointStore::new(
            self.source.shared_sink(),
            Arc::clone(&plan.key_serializer),
            Arc::clone(&plan.value_serializer),
        );
        let started = TableCheckpoints::start(
            &name,
            CheckpointDir::new(&plan.state_dir, &name),
            describe_types::<K, V>(),
            &self.source,
            Arc::new(store),
        )
        .await;
        let mut checkpoints = self.checkpoints.lock();
        match started {
            Ok(started) => {
                *checkpoints = Checkpoints::Running(Arc::new(started).every(plan.interval));
                Ok(())
            }
            Err(error) => {
                // Not started: the next start tries again, with checkpoints.
                *checkpoints = Checkpoints::Planned(plan);
                Err(error)
            }
        }
    }

    /// Signals the consumer task to stop; it ends at its next turn without waiting for a
    /// record. The state stays readable. See [`stopped`](Self::stopped) to wait for it.
    pub fn stop(&self) {
        self.source.stop()
    }

    /// Waits until the consumer task has ended (at once if it is not running).
    pub async fn stopped(&self) {
        self.source.stopped().await
    }

    /// True between `start` and `stop` while the consumer task runs.
    pub fn is_running(&self) -> bool {
        self.source.is_running()
    }

    /// True once every partition has reached the high watermark seen at start.
    pub fn is_ready(&self) -> bool {
        self.source.is_ready()
    }

    /// Waits until the table is ready (see [`is_ready`](Self::is_ready)).
    pub async fn wait_until_ready(&self, timeout: Duration) -> Result<(), KTableError> {
        self.source.wait_until_ready(timeout).await
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
        self.source.sink().map.read().get(key).cloned()
    }

    /// Whether `key` currently has a value.
    pub fn contains_key(&self, key: &K) -> bool {
        self.source.sink().map.read().contains_key(key)
    }

    /// Every key, in no particular order.
    pub fn keys(&self) -> Vec<K> {
        self.source.sink().map.read().keys().cloned().collect()
    }

    /// How many keys the table holds.
    pub fn len(&self) -> usize {
        self.source.sink().map.read().len()
    }

    /// True when the table holds no key.
    pub fn is_empty(&self) -> bool {
        self.source.sink().map.read().is_empty()
    }

    /// A consistent copy of the whole table.
    pub fn snapshot(&self) -> HashMap<K, V> {
        let map = self.source.sink().map.read();
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// A copy of the table with every value transformed by `mapper`.
    pub fn map_values<V2, F>(&self, mapper: F) -> HashMap<K, V2>
    where
        F: Fn(&V) -> V2,
    {
        let map = self.source.sink().map.read();
        map.iter().map(|(k, v)| (k.clone(), mapper(v))).collect()
    }

    /// A copy of the entries for which `predicate` is true.
    pub fn filter<F>(&self, predicate: F) -> HashMap<K, V>
    where
        F: Fn(&K, &V) -> bool,
    {
        let map = self.source.sink().map.read();
        map.iter()
            .filter(|(k, v)| predicate(k, v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Every change applied from now on, in order per partition: a stream that ends
    /// only with an error, when the subscriber fell behind the table's bounded change
    /// log (then resume with [`subscribe_after`](Self::subscribe_after) and the
    /// offsets the error names). Dropping the stream ends the subscription. A slow
    /// subscriber never holds back the table.
    ///
    /// ```no_run
    /// # async fn run(users: ktable::KTable<String, serde_json::Value>) {
    /// use futures::StreamExt;
    /// let mut changes = Box::pin(users.subscribe());
    /// while let Some(Ok(change)) = changes.next().await {
    ///     println!("{} at {}/{}: {:?}", change.key, change.partition, change.offset, change.value);
    /// }
    /// # }
    /// ```
    pub fn subscribe(
        &self,
    ) -> impl Stream<Item = Result<TableChange<K, V>, FellBehind>> + Send + 'static {
        let sink = self.source.sink();
        let applied = sink.apply_gate.lock();
        sink.changes.start_capture(&applied, sink.loaded());
        let reader = sink.changes.reader_from_now();
        let offsets = applied.clone();
        drop(applied);
        typed_changes(reader, offsets)
    }

    /// The table now (a consistent copy), the offsets it holds, and every change
    /// after it: no change is missed and none is in both.
    #[allow(clippy::type_complexity)]
    pub fn subscribe_with_snapshot(
        &self,
    ) -> (
        HashMap<K, V>,
        Offsets,
        impl Stream<Item = Result<TableChange<K, V>, FellBehind>> + Send + 'static,
    ) {
        let sink = self.source.sink();
        let applied = sink.apply_gate.lock();
        sink.changes.start_capture(&applied, sink.loaded());
        let reader = sink.changes.reader_from_now();
        let snapshot = self.snapshot();
        let offsets = applied.clone();
        drop(applied);
        (snapshot, offsets.clone(), typed_changes(reader, offsets))
    }

    /// Every change after `offsets` (as a [`TableChange`] or a fallen-behind error
    /// named them), if the table still holds them all in its change log.
    pub fn subscribe_after(
        &self,
        offsets: Offsets,
    ) -> Result<
        impl Stream<Item = Result<TableChange<K, V>, FellBehind>> + Send + 'static,
        NotRetained,
    > {
        let sink = self.source.sink();
        let applied = sink.apply_gate.lock();
        sink.changes.start_capture(&applied, sink.loaded());
        let reader = sink.changes.reader_from(&offsets)?;
        drop(applied);
        Ok(typed_changes(reader, offsets))
    }

    /// Size, progress and counters of the table.
    pub fn stats(&self) -> KTableStats {
        self.source.stats()
    }

    /// The topic the table reads.
    pub fn topic(&self) -> &str {
        self.source.topic()
    }

    /// The consumer group id the table was configured with.
    pub fn group_id(&self) -> &str {
        self.source.group_id()
    }
}

/// A reader's batches as single changes, skipping those at or before `after`.
fn typed_changes<K, V>(
    reader: LogReader<TypedChanges<K, V>>,
    after: Offsets,
) -> impl Stream<Item = Result<TableChange<K, V>, FellBehind>> + Send + 'static
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    struct State<K: Send + Sync + 'static, V: Send + Sync + 'static> {
        reader: Option<LogReader<TypedChanges<K, V>>>,
        pending: VecDeque<TableChange<K, V>>,
        seen: Offsets,
    }
    let state = State {
        reader: Some(reader),
        pending: VecDeque::new(),
        seen: after,
    };
    futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(change) = state.pending.pop_front() {
                return Some((Ok(change), state));
            }
            let reader = state.reader.as_mut()?;
            match reader.next().await {
                Ok(batches) => {
                    for batch in batches {
                        for ((key, value), &(partition, offset)) in
                            batch.changes.iter().zip(&batch.positions)
                        {
                            if state.seen.get(&partition).is_some_and(|&o| offset <= o) {
                                continue;
                            }
                            state.seen.insert(partition, offset);
                            state.pending.push_back(TableChange {
                                key: key.clone(),
                                value: value.clone(),
                                partition,
                                offset,
                            });
                        }
                    }
                }
                // A typed table's log is never closed: its sink lives as long as the
                // reader holds it.
                Err(ReadError::Closed) => return None,
                Err(ReadError::Evicted { capacity }) => {
                    // Deliver what was read, then the error, then end.
                    state.reader = None;
                    let error = FellBehind {
                        capacity,
                        resume_from: state.seen.clone(),
                    };
                    return Some((Err(error), state));
                }
            }
        }
    })
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
        let state = table.source.downgrade_state();
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

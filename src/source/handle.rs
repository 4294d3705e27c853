//! The cloneable handle of a source: lifecycle, readiness, statistics.

use super::progress::RestoreProgress;
use super::state::SourceState;
use super::worker::Worker;
use super::{RecordSink, RestoreOrigin, SourceError, SourceStats};
use crate::kafka::{
    cached_high_watermark, describe_topic, ConsumerConfig, KafkaContext, KafkaError, RecordQueue,
    TopicFacts,
};
use parking_lot::Mutex;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A topic being materialized into a sink `S`.
///
/// Clones share one source; dropping the last clone stops its consumer task.
pub struct Source<S> {
    state: Arc<SourceState>,
    sink: Arc<S>,
    control: Arc<Control>,
}

/// What only handles hold. When the last handle goes, this goes, and with it the
/// sending half of the task's shutdown channel: the task sees that and ends.
struct Control {
    consumer: Arc<StreamConsumer<KafkaContext>>,
    /// What the consumer was made from; admin requests use it too.
    config: ConsumerConfig,
    shutdown: Mutex<Option<oneshot::Sender<()>>>,
    /// Serializes `start` calls, which await metadata requests.
    starting: tokio::sync::Mutex<()>,
    /// Where the consumer's partitions deliver their records, made at the first start
    /// and kept across restarts (records fetched while stopped wait there).
    records: Mutex<Option<Arc<RecordQueue>>>,
}

impl<S> Clone for Source<S> {
    fn clone(&self) -> Self {
        Self {
            state: Arc::clone(&self.state),
            sink: Arc::clone(&self.sink),
            control: Arc::clone(&self.control),
        }
    }
}

impl<S: RecordSink> Source<S> {
    /// A source of `topic` feeding `sink`. Nothing is read until [`start`](Self::start).
    ///
    /// Sources never commit offsets (they restore from the earliest offset every time),
    /// so `enable.auto.commit` is turned off whatever the configuration says.
    pub fn new(
        config: ConsumerConfig,
        topic: impl Into<String>,
        sink: S,
    ) -> Result<Self, SourceError> {
        let config = config.property("enable.auto.commit", "false");
        let consumer: StreamConsumer<KafkaContext> = config
            .to_client_config()?
            .create_with_context(KafkaContext)
            .map_err(KafkaError::from)?;
        Ok(Self::from_consumer(consumer, &config, topic, sink))
    }

    /// A source over an existing consumer, which must have been made from `config`.
    pub(crate) fn from_consumer(
        consumer: StreamConsumer<KafkaContext>,
        config: &ConsumerConfig,
        topic: impl Into<String>,
        sink: S,
    ) -> Self {
        Self {
            state: Arc::new(SourceState::new(
                topic.into(),
                config.group_id().to_string(),
            )),
            sink: Arc::new(sink),
            control: Arc::new(Control {
                consumer: Arc::new(consumer),
                config: config.clone(),
                shutdown: Mutex::new(None),
                starting: tokio::sync::Mutex::new(()),
                records: Mutex::new(None),
            }),
        }
    }

    /// Starts the background task that reads the topic, and returns once it runs.
    ///
    /// The first start reads every partition from its earliest offset. A start after
    /// [`stop`](Self::stop) continues from where the source stopped, keeping its state.
    /// Needs a Tokio runtime.
    pub async fn start(&self) -> Result<(), SourceError> {
        let _one_at_a_time = self.control.starting.lock().await;
        if *self.state.task_alive.borrow() {
            return Err(SourceError::AlreadyRunning(self.state.topic.clone()));
        }
        let first_run = self.state.progress.lock().partitions().is_empty();
        if first_run {
            let watermarks = self.watermarks().await?;
            self.install(RestoreProgress::new(&watermarks), None, RestoreOrigin::Full);
        }
        self.spawn(first_run)
    }

    /// Starts the first run of the source on `watermarks` (from
    /// [`watermarks`](Self::watermarks)): from `resume`'s `(partition, next offset)`
    /// positions when given (the sink already holds the state up to them, e.g. loaded
    /// from a checkpoint), else from the earliest offsets. `origin` is what the
    /// statistics report as the state's origin.
    pub async fn start_at(
        &self,
        watermarks: &[(i32, i64, i64)],
        resume: Option<&[(i32, i64)]>,
        origin: RestoreOrigin,
    ) -> Result<(), SourceError> {
        let _one_at_a_time = self.control.starting.lock().await;
        if *self.state.task_alive.borrow() {
            return Err(SourceError::AlreadyRunning(self.state.topic.clone()));
        }
        let progress = match resume {
            Some(positions) => RestoreProgress::resumed(watermarks, positions),
            None => RestoreProgress::new(watermarks),
        };
        self.install(progress, resume, origin);
        self.spawn(resume.is_none())
    }

    /// The topic's partitions as `(partition, low watermark, high watermark)`. Retries
    /// until the request timeout while the topic is unknown or has no leader yet.
    pub async fn watermarks(&self) -> Result<Vec<(i32, i64, i64)>, SourceError> {
        let consumer = Arc::clone(&self.control.consumer);
        let timeout = self.control.config.timeout();
        let topic = self.state.topic.clone();
        tokio::task::spawn_blocking(move || partition_watermarks(&consumer, &topic, timeout))
            .await
            .unwrap_or_else(|join_error| std::panic::resume_unwind(join_error.into_panic()))
    }

    /// The topic's id and `delete.retention.ms`, where the broker tells them.
    pub async fn topic_facts(&self) -> Result<TopicFacts, SourceError> {
        let config = self.control.config.clone();
        let topic = self.state.topic.clone();
        tokio::task::spawn_blocking(move || describe_topic(&config, &topic, config.timeout()))
            .await
            .unwrap_or_else(|join_error| std::panic::resume_unwind(join_error.into_panic()))
            .map_err(SourceError::from)
    }

    /// The next offset to read of each partition: `(partition, offset)`. Every record
    /// before it has been applied to the sink (the sink may hold later ones too).
    pub fn positions(&self) -> Vec<(i32, i64)> {
        self.state.progress.lock().positions()
    }

    fn install(
        &self,
        progress: RestoreProgress,
        resume: Option<&[(i32, i64)]>,
        origin: RestoreOrigin,
    ) {
        let topic = &self.state.topic;
        let (_, total) = progress.offsets();
        let partitions = progress.partitions().len();
        match resume {
            Some(_) => tracing::info!(
                topic = %topic, partitions, offsets_total = total,
                "restoring from a checkpoint: reading the offsets after it"
            ),
            None => tracing::info!(
                topic = %topic, partitions, offsets_total = total,
                "restoring from the earliest offsets"
            ),
        }
        *self.state.origin.lock() = origin;
        if self.state.reset_progress(progress) {
            tracing::info!(topic = %topic, "ready: nothing to read");
        }
    }

    /// The queue the consumer's records are read from, and whether it was made now
    /// (at the source's first start).
    fn record_queue(&self) -> Result<(Arc<RecordQueue>, bool), KafkaError> {
        let mut records = self.control.records.lock();
        if let Some(queue) = &*records {
            return Ok((Arc::clone(queue), false));
        }
        let queue = Arc::new(RecordQueue::new(&self.control.consumer)?);
        *records = Some(Arc::clone(&queue));
        Ok((queue, true))
    }

    /// Assigns every partition at its position (or the beginning) and spawns the task.
    fn spawn(&self, from_beginning: bool) -> Result<(), SourceError> {
        let topic = &self.state.topic;
        let positions = self.state.progress.lock().positions();
        let offset_of = |position| match from_beginning {
            true => Offset::Beginning,
            false => Offset::Offset(position),
        };
        let (records, first_start) = self.record_queue()?;
        if first_start {
            // Forwarded before the assignment, so that every record fetched lands in
            // the queue.
            records
                .forward(topic, positions.iter().map(|&(partition, _)| partition))
                .map_err(KafkaError::from)?;
            let mut assignment = TopicPartitionList::new();
            for &(partition, position) in &positions {
                assignment
                    .add_partition_offset(topic, partition, offset_of(position))
                    .map_err(KafkaError::from)?;
            }
            self.control
                .consumer
                .assign(&assignment)
                .map_err(KafkaError::from)?;
        } else {
            // A restart: the partitions are still assigned and forwarded. Assigning
            // them again would stop and restart their fetchers, and librdkafka drops a
            // queue forwarding set by the application when it stops a fetcher (and
            // does not set it again): the records would go nowhere. A seek moves each
            // partition back to what the sink holds (records fetched past it while
            // stopped are dropped from the queue by the seek's version barrier).
            for &(partition, position) in &positions {
                self.control
                    .consumer
                    .seek(topic, partition, offset_of(position), Duration::ZERO)
                    .map_err(KafkaError::from)?;
            }
        }

        // Metadata answered: whatever kept the start waiting has passed.
        if self.state.reachable() {
            tracing::info!(topic = %topic, "Kafka reachable: starting");
        }
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        *self.control.shutdown.lock() = Some(shutdown_tx);
        self.state.running.store(true, Ordering::Release);
        self.state.task_alive.send_replace(true);
        let worker = Worker {
            state: Arc::clone(&self.state),
            sink: Arc::clone(&self.sink),
            consumer: Arc::clone(&self.control.consumer),
            records,
            shutdown: shutdown_rx,
            consumer_failed: Default::default(),
        };
        tokio::spawn(worker.run());
        Ok(())
    }
}

impl<S: RecordSink> Source<S> {
    /// The sink the source feeds.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The sink, shared (for what outlives a borrow of the handle, e.g. checkpoints).
    pub(crate) fn shared_sink(&self) -> Arc<S> {
        Arc::clone(&self.sink)
    }

    /// Signals the consumer task to stop; it ends at its next turn without waiting for a
    /// record. The sink stays readable. See [`stopped`](Self::stopped) to wait for it.
    pub fn stop(&self) {
        self.control.shutdown.lock().take();
        self.state.running.store(false, Ordering::Release);
    }

    /// Waits until the consumer task has ended (at once if it is not running).
    pub async fn stopped(&self) {
        let mut alive = self.state.task_alive.subscribe();
        // The sender lives in `state`, which this handle keeps alive: no error possible.
        let _ = alive.wait_for(|alive| !*alive).await;
    }

    /// True between `start` and `stop` while the consumer task runs.
    pub fn is_running(&self) -> bool {
        self.state.running.load(Ordering::Acquire)
    }

    /// True once every partition has reached the high watermark seen at start, while
    /// Kafka is reachable: during a broker outage the sink keeps serving its last
    /// state but the source is not ready (it is not following the topic).
    pub fn is_ready(&self) -> bool {
        self.state.is_ready()
    }

    /// Records that [`start`](Self::start) failed because Kafka could not be reached
    /// ([`SourceError::is_unreachable`]) and is being retried by the caller: the
    /// source reports the error as its `last_error` and is not ready until a start
    /// succeeds.
    pub fn waiting_for_kafka(&self, error: &SourceError) {
        self.state
            .unreachable(format!("waiting for Kafka to start: {error}"));
    }

    /// Waits until the source is ready (see [`is_ready`](Self::is_ready)).
    pub async fn wait_until_ready(&self, timeout: Duration) -> Result<(), SourceError> {
        let mut ready = self.state.ready.subscribe();
        if tokio::time::timeout(timeout, ready.wait_for(|ready| *ready))
            .await
            .is_ok()
        {
            return Ok(());
        }
        let (offsets_done, offsets_total) = self.state.progress.lock().offsets();
        Err(SourceError::NotReady {
            topic: self.state.topic.clone(),
            after: timeout,
            offsets_done,
            offsets_total,
        })
    }

    /// Progress and counters.
    pub fn stats(&self) -> SourceStats {
        let state = &self.state;
        let (mut partitions, (offsets_done, offsets_total)) = {
            let progress = state.progress.lock();
            (progress.partitions().to_vec(), progress.offsets())
        };
        for p in &mut partitions {
            // librdkafka's cached watermark from the last fetch: no request is sent.
            let consumer = self.control.consumer.as_ref();
            if let Some(high) = cached_high_watermark(consumer, &state.topic, p.partition) {
                p.high_watermark = p.high_watermark.max(high);
            }
        }
        SourceStats {
            topic: state.topic.clone(),
            group_id: state.group_id.clone(),
            rows: self.sink.rows(),
            running: self.is_running(),
            ready: self.is_ready(),
            restored: self.state.is_restored(),
            kafka_unreachable: self.state.is_unreachable(),
            offsets_done,
            offsets_total,
            upserts: state.counters.upserts(),
            tombstones: state.counters.tombstones(),
            null_keys: state.counters.null_keys(),
            bad_records: state.counters.bad_records(),
            last_updated: state.last_updated(),
            last_error: state.last_error.lock().clone(),
            partitions,
            restored_from: state.origin.lock().clone(),
        }
    }

    /// The topic the source reads.
    pub fn topic(&self) -> &str {
        &self.state.topic
    }

    /// The consumer group id the source was configured with.
    pub fn group_id(&self) -> &str {
        &self.state.group_id
    }

    #[cfg(test)]
    pub(crate) fn downgrade_state(&self) -> std::sync::Weak<SourceState> {
        Arc::downgrade(&self.state)
    }
}

/// Looks up the topic's partitions and their `(partition, low, high)` watermarks.
/// Retries until `timeout` while the topic is unknown or has no leader yet: a topic
/// created a moment ago is often in that state.
fn partition_watermarks(
    consumer: &StreamConsumer<KafkaContext>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<(i32, i64, i64)>, SourceError> {
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
                return Err(SourceError::TopicNotFound(topic.to_string()))
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

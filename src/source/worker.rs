//! The background task that keeps a source's sink up to date.
//!
//! It owns no handle of the source, only the shared state and the sink, so dropping the
//! last handle ends it: the handle side holds the sending half of a shutdown channel,
//! and the task selects on the receiving half next to the consumer, so neither `stop()`
//! nor a drop waits for a record that may never come.
//!
//! Two stages overlap: this task takes a batch of fetched records and has the sink
//! prepare it (decoding, the expensive part), while a thread of the source's own
//! applies the batch before (index updates) and then advances the source's positions.
//! librdkafka's own threads fetch ahead of both. The applying stage is an OS thread,
//! not a task: a task woken by this one lands in the waking worker's LIFO slot, which
//! other workers cannot steal from, so the two stages ran one after the other on one
//! core while the other idled (the SQL table's restore: 4.3 s with the stages on tasks).
//!
//! Records are handed to the sink in batches: whatever the consumer has already fetched,
//! up to [`MAX_BATCH`], taken from the partitions' [`RecordQueue`] in one go, so a
//! sink can decode and publish many records at once while a trickle of live records is
//! still applied one by one without waiting.

use super::state::SourceState;
use super::{Counters, Prepared, RecordSink, SinkError};
use crate::kafka::{cached_high_watermark, FetchedRecord, KafkaContext, RecordQueue};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// How often restore progress is logged while a source is not ready.
const PROGRESS_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// The most records handed to a sink at once. It bounds how long a sink that publishes
/// per batch holds its write lock.
pub const MAX_BATCH: usize = 1024;

/// Batches decoded ahead of the one being applied: enough for decoding and applying to
/// overlap although the applying stage's time per batch varies (a batch that seals a
/// segment pays for merging it), few enough that memory holds little in flight. With
/// 2, the decoding stage waited on the applying one for 13% of a 10M-record restore
/// while the applying one idled 25% of it.
const PIPELINE_DEPTH: usize = 16;

/// While every broker is down, how often the task asks Kafka whether it answers
/// again (an idle topic brings no record that would tell), and how long it waits.
const REACHABLE_PROBE_INTERVAL: Duration = Duration::from_secs(1);
const REACHABLE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything the consumer task needs, moved into it at start.
pub(crate) struct Worker<S> {
    pub(crate) state: Arc<SourceState>,
    pub(crate) sink: Arc<S>,
    pub(crate) consumer: Arc<StreamConsumer<KafkaContext>>,
    /// The records of the consumer's partitions (the consumer's own queue keeps its
    /// events).
    pub(crate) records: Arc<RecordQueue>,
    pub(crate) shutdown: oneshot::Receiver<()>,
    /// The consumer reported an error that records flowing again make stale.
    pub(crate) consumer_failed: AtomicBool,
}

/// Marks the source stopped however the task ends, panics included.
struct AliveGuard<'a>(&'a SourceState);

impl Drop for AliveGuard<'_> {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
        self.0.task_alive.send_replace(false);
    }
}

/// One prepared batch on its way to the applying task, with what it advances.
struct Step<S> {
    /// The rest of applying the batch, and what it counted.
    apply: Option<(Prepared<S>, Counters)>,
    /// `(partition, offset)` of every record of the batch.
    applied: Vec<(i32, i64)>,
    /// Partitions whose end was reached after the batch, with the high watermark
    /// the consumer saw there (if it knows one).
    ended: Vec<(i32, Option<i64>)>,
}

impl<S: RecordSink> Worker<S> {
    pub(crate) async fn run(mut self) {
        let state = Arc::clone(&self.state);
        let _alive = AliveGuard(&state);
        let started = Instant::now();
        let mut progress_log = tokio::time::interval(PROGRESS_LOG_INTERVAL);
        progress_log.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (to_apply, steps) = mpsc::channel(PIPELINE_DEPTH);
        let mut applier = match Applier::start(&state, &self.sink, steps, started) {
            Ok(applier) => applier,
            Err(error) => {
                stopped_by(
                    &state,
                    &SinkError(format!("cannot start the applying thread: {error}")),
                );
                return;
            }
        };
        let mut applier_ended = false;
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut ended = Vec::new();
        'records: loop {
            tokio::select! {
                biased;
                _ = &mut self.shutdown => break,
                // The applying thread ends only on an error (recorded in `last_error`).
                _ = &mut applier.ended => {
                    applier_ended = true;
                    break;
                }
                // Before the records: while a restore reads without pause, the
                // records' branch is always ready and would starve this one.
                _ = progress_log.tick(), if !state.is_restored() => {
                    let (done, total) = state.progress.lock().offsets();
                    tracing::info!(
                        topic = %state.topic,
                        offsets_done = done,
                        offsets_total = total,
                        "restoring: {done}/{total} offsets",
                    );
                    continue;
                }
                // Client-wide events (errors such as every broker down, librdkafka's
                // logs), before the records, which would starve them during a restore;
                // and a record of a partition not forwarded to the queue, were there one.
                event = self.consumer.recv() => {
                    self.collect(event.map(FetchedRecord::new), &mut batch, &mut ended);
                }
                // The records: whatever is already fetched, up to a batch.
                fetched = self.records.next_batch(MAX_BATCH) => {
                    for next in fetched {
                        self.collect(next, &mut batch, &mut ended);
                    }
                }
            }
            let apply = if batch.is_empty() {
                None
            } else {
                // Counted apart, and added to the source's counters only once
                // the batch is applied: statistics never lead the state.
                let mut counts = state.counters.for_batch();
                let mut prepared = self.sink.prepare(&batch, &counts);
                // A sink failing for a passing reason (an unreachable schema
                // registry) keeps the batch: wait, then prepare it again.
                while let (Err(error), Some(wait)) = (&prepared, self.sink.retry_after()) {
                    tracing::warn!(topic = %state.topic, %error, retry_in_ms = wait.as_millis() as u64, "batch not applied; retrying");
                    *state.last_error.lock() = Some(error.to_string());
                    tokio::select! {
                        biased;
                        _ = &mut self.shutdown => break 'records,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    counts = state.counters.for_batch();
                    prepared = self.sink.prepare(&batch, &counts);
                    if prepared.is_ok() {
                        *state.last_error.lock() = None;
                    }
                }
                match prepared {
                    Ok(apply) => Some((apply, counts)),
                    Err(error) => {
                        // What the sink counted before failing (the record
                        // that stopped it under `on_error = 'fail'`) is kept.
                        state.counters.add(&counts);
                        stopped_by(&state, &error);
                        break;
                    }
                }
            };
            let step = Step {
                apply,
                applied: batch.iter().map(|r| (r.partition(), r.offset())).collect(),
                ended: std::mem::take(&mut ended),
            };
            batch.clear();
            if to_apply.send(step).await.is_err() {
                break;
            }
        }
        // Batches already prepared are applied before the source counts as stopped.
        drop(to_apply);
        drop(batch);
        if !applier_ended {
            let _ = (&mut applier.ended).await;
        }
        // The thread has ended (its end signal fires as it unwinds too): joining
        // does not block.
        if let Err(panic) = applier.thread.join() {
            std::panic::resume_unwind(panic);
        }
        tracing::debug!(topic = %state.topic, "consumer stopped");
    }

    fn collect<'c>(
        &self,
        next: Result<FetchedRecord<'c>, RdKafkaError>,
        batch: &mut Vec<FetchedRecord<'c>>,
        ended: &mut Vec<(i32, Option<i64>)>,
    ) {
        match next {
            Ok(record) => {
                self.flowing();
                batch.push(record);
            }
            Err(RdKafkaError::PartitionEOF(partition)) => {
                self.flowing();
                let topic = &self.state.topic;
                let end = cached_high_watermark(self.consumer.as_ref(), topic, partition);
                ended.push((partition, end));
            }
            Err(error) => {
                // librdkafka retries broker and network failures by itself; the error
                // is reported, and the sink keeps serving what it has.
                tracing::warn!(topic = %self.state.topic, %error, "consumer error");
                if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
                    if self.state.unreachable(error.to_string()) {
                        tokio::spawn(watch_for_kafka(
                            Arc::clone(&self.state),
                            Arc::clone(&self.consumer),
                        ));
                    }
                } else {
                    let shown = match error.rdkafka_error_code() {
                        Some(
                            RDKafkaErrorCode::UnknownTopicOrPartition
                            | RDKafkaErrorCode::UnknownTopic,
                        ) => format!(
                            "topic '{}' is unknown to the brokers (deleted?); serving the last state: {error}",
                            self.state.topic
                        ),
                        _ => error.to_string(),
                    };
                    *self.state.last_error.lock() = Some(shown);
                    self.consumer_failed.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    /// Records or end-of-partition notices arrive: Kafka answers, and an error the
    /// consumer reported before is no longer the state of things.
    /// Called for every record: plain loads first, the swaps only after a failure.
    fn flowing(&self) {
        if self.state.is_unreachable() && self.state.reachable() {
            tracing::info!(topic = %self.state.topic, "Kafka reachable again");
        }
        if self.consumer_failed.load(Ordering::Relaxed)
            && self.consumer_failed.swap(false, Ordering::Relaxed)
        {
            self.state.last_error.lock().take();
        }
    }
}

/// While every broker is down, asks Kafka every so often whether it answers again:
/// an idle topic brings no record that would tell. Ends when Kafka answers, when
/// records told first, or when the source stops.
async fn watch_for_kafka(state: Arc<SourceState>, consumer: Arc<StreamConsumer<KafkaContext>>) {
    while state.is_unreachable() && state.running.load(Ordering::Acquire) {
        tokio::time::sleep(REACHABLE_PROBE_INTERVAL).await;
        let (consumer, topic) = (Arc::clone(&consumer), state.topic.clone());
        let answers = tokio::task::spawn_blocking(move || {
            consumer
                .fetch_metadata(Some(&topic), REACHABLE_PROBE_TIMEOUT)
                .is_ok()
        })
        .await
        .unwrap_or(false);
        if answers && state.reachable() {
            tracing::info!(topic = %state.topic, "Kafka reachable again");
        }
    }
}

/// The applying stage's thread, and the signal that it ended (its sending half is
/// dropped when the thread ends, normally or by a panic).
struct Applier {
    thread: std::thread::JoinHandle<()>,
    ended: oneshot::Receiver<()>,
}

impl Applier {
    fn start<S: RecordSink>(
        state: &Arc<SourceState>,
        sink: &Arc<S>,
        steps: mpsc::Receiver<Step<S>>,
        started: Instant,
    ) -> std::io::Result<Self> {
        let (end_signal, ended) = oneshot::channel::<()>();
        let (state, sink) = (Arc::clone(state), Arc::clone(sink));
        // Thread names are cut at 15 bytes by Linux: the topic's start says which.
        let name: String = format!("apply-{}", state.topic).chars().take(15).collect();
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            let _end_signal = end_signal;
            apply_steps(state, sink, steps, started);
        })?;
        Ok(Self { thread, ended })
    }
}

/// The second stage: applies prepared batches in order and only then advances the
/// source's positions (a checkpoint reads them: they never lead the sink's state).
fn apply_steps<S: RecordSink>(
    state: Arc<SourceState>,
    sink: Arc<S>,
    mut steps: mpsc::Receiver<Step<S>>,
    started: Instant,
) {
    while let Some(step) = steps.blocking_recv() {
        if let Some((apply, counts)) = step.apply {
            let applied = apply(sink.as_ref());
            // A failing step may have applied part of its batch: its counts are kept.
            state.counters.add(&counts);
            if let Err(error) = applied {
                stopped_by(&state, &error);
                return;
            }
            state.touch();
        }
        // End-of-partition notices come after that partition's records, so they are
        // recorded after the batch.
        if state.advance(step.applied.into_iter(), &step.ended) {
            log_ready(&state, started);
        }
    }
}

fn stopped_by(state: &SourceState, error: &SinkError) {
    tracing::error!(topic = %state.topic, %error, "source stopped");
    *state.last_error.lock() = Some(error.to_string());
}

fn log_ready(state: &SourceState, started: Instant) {
    let (_, total) = state.progress.lock().offsets();
    tracing::info!(
        topic = %state.topic,
        offsets = total,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "ready",
    );
}

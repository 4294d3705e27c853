//! The background task that keeps a source's sink up to date.
//!
//! It owns no handle of the source, only the shared state and the sink, so dropping the
//! last handle ends it: the handle side holds the sending half of a shutdown channel,
//! and the task selects on the receiving half next to the consumer, so neither `stop()`
//! nor a drop waits for a record that may never come.
//!
//! Records are handed to the sink in batches: whatever the consumer has already fetched,
//! up to [`MAX_BATCH`], so a sink can decode and publish many records at once while a
//! trickle of live records is still applied one by one without waiting.

use super::state::SourceState;
use super::{RecordSink, SinkError};
use crate::kafka::KafkaContext;
use futures::FutureExt;
use rdkafka::consumer::StreamConsumer;
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::Message as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How often restore progress is logged while a source is not ready.
const PROGRESS_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// The most records handed to a sink at once. It bounds how long a sink that publishes
/// per batch holds its write lock.
pub const MAX_BATCH: usize = 1024;

/// Everything the consumer task needs, moved into it at start.
pub(crate) struct Worker<S> {
    pub(crate) state: Arc<SourceState>,
    pub(crate) sink: Arc<S>,
    pub(crate) consumer: Arc<StreamConsumer<KafkaContext>>,
    pub(crate) shutdown: oneshot::Receiver<()>,
}

/// Marks the source stopped however the task ends, panics included.
struct AliveGuard<'a>(&'a SourceState);

impl Drop for AliveGuard<'_> {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
        self.0.task_alive.send_replace(false);
    }
}

impl<S: RecordSink> Worker<S> {
    pub(crate) async fn run(mut self) {
        let state = Arc::clone(&self.state);
        let _alive = AliveGuard(&state);
        let started = Instant::now();
        let mut progress_log = tokio::time::interval(PROGRESS_LOG_INTERVAL);
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut ended = Vec::new();
        'records: loop {
            tokio::select! {
                biased;
                _ = &mut self.shutdown => break,
                first = self.consumer.recv() => {
                    self.collect(first, &mut batch, &mut ended);
                    // Take what is already fetched, without waiting for more.
                    while batch.len() < MAX_BATCH {
                        match self.consumer.recv().now_or_never() {
                            Some(next) => self.collect(next, &mut batch, &mut ended),
                            None => break,
                        }
                    }
                    let mut outcome = self.apply(&batch, &ended);
                    // A sink failing for a passing reason (an unreachable schema
                    // registry) keeps the batch: wait, then apply it again.
                    while let (Err(error), Some(wait)) = (&outcome, self.sink.retry_after()) {
                        tracing::warn!(topic = %state.topic, %error, retry_in_ms = wait.as_millis() as u64, "batch not applied; retrying");
                        *state.last_error.lock() = Some(error.to_string());
                        tokio::select! {
                            biased;
                            _ = &mut self.shutdown => break 'records,
                            _ = tokio::time::sleep(wait) => {}
                        }
                        outcome = self.apply(&batch, &ended);
                        if outcome.is_ok() {
                            *state.last_error.lock() = None;
                        }
                    }
                    match outcome {
                        Ok(true) => log_ready(&state, started),
                        Ok(false) => {}
                        Err(error) => {
                            tracing::error!(topic = %state.topic, %error, "source stopped");
                            *state.last_error.lock() = Some(error.to_string());
                            break 'records;
                        }
                    }
                    batch.clear();
                    ended.clear();
                }
                _ = progress_log.tick(), if !state.is_ready() => {
                    let (done, total) = state.progress.lock().offsets();
                    tracing::info!(
                        topic = %state.topic,
                        offsets_done = done,
                        offsets_total = total,
                        "restoring: {done}/{total} offsets",
                    );
                }
            }
        }
        tracing::debug!(topic = %state.topic, "consumer stopped");
    }

    fn collect<'c>(
        &self,
        next: Result<BorrowedMessage<'c>, RdKafkaError>,
        batch: &mut Vec<BorrowedMessage<'c>>,
        ended: &mut Vec<i32>,
    ) {
        match next {
            Ok(record) => batch.push(record),
            Err(RdKafkaError::PartitionEOF(partition)) => ended.push(partition),
            Err(error) => {
                // librdkafka retries broker and network failures by itself; the error
                // is reported, and the sink keeps serving what it has.
                tracing::warn!(topic = %self.state.topic, %error, "consumer error");
                *self.state.last_error.lock() = Some(error.to_string());
            }
        }
    }

    /// Applies a batch; true if the source just became ready.
    fn apply(&self, batch: &[BorrowedMessage<'_>], ended: &[i32]) -> Result<bool, SinkError> {
        if !batch.is_empty() {
            self.sink.apply(batch, &self.state.counters)?;
            self.state.touch();
        }
        // End-of-partition notices come after that partition's records, so they are
        // recorded after the batch.
        Ok(self
            .state
            .advance(batch.iter().map(|r| (r.partition(), r.offset())), ended))
    }
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

//! The state a source shares between its consumer task and every handle.

use super::progress::RestoreProgress;
use super::{Counters, RestoreOrigin};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

pub(crate) struct SourceState {
    pub(crate) topic: String,
    pub(crate) group_id: String,
    pub(crate) progress: Mutex<RestoreProgress>,
    pub(crate) counters: Counters,
    /// Milliseconds since the epoch of the last applied batch; 0 for never.
    last_updated_ms: AtomicU64,
    pub(crate) last_error: Mutex<Option<String>>,
    /// Where the state of the current run came from.
    pub(crate) origin: Mutex<RestoreOrigin>,
    /// Cleared by `stop()` at once and by the task when it ends.
    pub(crate) running: AtomicBool,
    /// True while a consumer task exists; `stopped()` waits for false.
    pub(crate) task_alive: watch::Sender<bool>,
    /// Set once per run, when every partition first caught up.
    restored: AtomicBool,
    /// Set while Kafka cannot be reached (at start, or every broker down later): the
    /// sink keeps serving what it holds, but it is not ready.
    unreachable: AtomicBool,
    /// Ready means restored and Kafka reachable; `ready` wakes waiters.
    pub(crate) ready: watch::Sender<bool>,
}

impl SourceState {
    pub(crate) fn new(topic: String, group_id: String) -> Self {
        Self {
            topic,
            group_id,
            progress: Mutex::new(RestoreProgress::default()),
            counters: Counters::default(),
            last_updated_ms: AtomicU64::new(0),
            last_error: Mutex::new(None),
            origin: Mutex::new(RestoreOrigin::Full),
            running: AtomicBool::new(false),
            task_alive: watch::Sender::new(false),
            restored: AtomicBool::new(false),
            unreachable: AtomicBool::new(false),
            ready: watch::Sender::new(false),
        }
    }

    pub(crate) fn touch(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_updated_ms.store(now, Ordering::Relaxed);
    }

    pub(crate) fn last_updated(&self) -> Option<SystemTime> {
        match self.last_updated_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(UNIX_EPOCH + Duration::from_millis(ms)),
        }
    }

    /// Records which records were handled and which partitions reached their end;
    /// true if the source just became ready.
    pub(crate) fn advance(
        &self,
        applied: impl Iterator<Item = (i32, i64)>,
        ended: &[(i32, Option<i64>)],
    ) -> bool {
        let mut progress = self.progress.lock();
        for (partition, offset) in applied {
            progress.record_applied(partition, offset);
        }
        for &(partition, end) in ended {
            progress.end_of_partition(partition, end);
        }
        self.publish_ready_if_caught_up(&progress)
    }

    /// Installs the progress of a new run; true if the source is ready at once.
    pub(crate) fn reset_progress(&self, progress: RestoreProgress) -> bool {
        let mut current = self.progress.lock();
        *current = progress;
        self.publish_ready_if_caught_up(&current)
    }

    /// Restored, and Kafka reachable.
    pub(crate) fn is_ready(&self) -> bool {
        self.restored.load(Ordering::Acquire) && !self.is_unreachable()
    }

    /// Restored once in this run (whether or not Kafka is reachable now).
    pub(crate) fn is_restored(&self) -> bool {
        self.restored.load(Ordering::Acquire)
    }

    pub(crate) fn is_unreachable(&self) -> bool {
        self.unreachable.load(Ordering::Acquire)
    }

    /// Kafka cannot be reached: `error` says why (shown as `last_error`). Readiness
    /// drops until [`reachable`](Self::reachable). True if it was reachable before.
    pub(crate) fn unreachable(&self, error: String) -> bool {
        *self.last_error.lock() = Some(error);
        let was_reachable = !self.unreachable.swap(true, Ordering::AcqRel);
        self.publish_ready();
        was_reachable
    }

    /// Kafka answers again: the error the outage left is cleared. True if it was
    /// unreachable.
    pub(crate) fn reachable(&self) -> bool {
        if !self.unreachable.swap(false, Ordering::AcqRel) {
            return false;
        }
        self.last_error.lock().take();
        self.publish_ready();
        true
    }

    fn publish_ready_if_caught_up(&self, progress: &RestoreProgress) -> bool {
        if self.restored.load(Ordering::Relaxed) || !progress.is_ready() {
            return false;
        }
        self.restored.store(true, Ordering::Release);
        self.publish_ready();
        true
    }

    fn publish_ready(&self) {
        let ready = self.is_ready();
        self.ready
            .send_if_modified(|current| std::mem::replace(current, ready) != ready);
    }
}

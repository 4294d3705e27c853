//! Change feeds: what a table or stream applied, handed to its subscribers.
//!
//! Each store (the columnar table, the stream window, the typed `KTable` map) owns one
//! [`ChangeLog`]: a bounded queue of the batches it applied, each change with its Kafka
//! partition and offset. Subscribers read it through a [`LogReader`], each at its own
//! position; nobody waits for anybody:
//!
//! * **The writer never waits for a subscriber.** Appending a batch takes the log's
//!   mutex for a push and an eviction (no `.await`, no allocation beyond the entry), so
//!   ingestion, lookups and scans run as before. A subscriber whose next batch was
//!   evicted has *fallen behind*: it is ended, counted, and its reader returns
//!   [`FellBehind`] with the offsets to resume from. This is the shape of
//!   `tokio::sync::broadcast`, which cannot start a reader at a retained position;
//!   resuming `AS OF` offsets needs exactly that.
//! * **Nothing is built while nobody subscribes.** Capture starts with the first
//!   subscription ([`ChangeLog::is_capturing`] is one atomic load); from then on the
//!   log keeps up to its capacity in changes, so a client that disconnects can resume
//!   from the offsets it saw as long as the log still holds them.
//! * **Resume is checked, never guessed.** The log knows from which offset of each
//!   partition it holds every change ([`ChangeLog::reader_from`] refuses older ones).
//!
//! Wake-ups go through a `tokio::sync::watch` of the newest sequence number: a
//! subscriber that is behind reads everything ready at once, batches of batches.

mod positions;
mod shared;

pub use positions::PositionColumns;
pub use shared::{SharedResults, MAX_SHARED_RESULTS};

use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

/// Kafka offsets by partition.
pub type Offsets = BTreeMap<i32, i64>;

/// The changes a log retains by default, per table or stream, once subscribed to.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// A batch of changes as a store applied them.
pub trait ChangeBatch: Send + Sync + 'static {
    /// The Kafka partition and offset of each change, in order.
    fn positions(&self) -> &[(i32, i64)];
}

/// Writes `offsets` as `partition:offset` pairs, the `AS OF OFFSETS` syntax.
pub fn format_offsets(offsets: &Offsets) -> String {
    let pairs: Vec<String> = offsets.iter().map(|(p, o)| format!("{p}:{o}")).collect();
    format!("({})", pairs.join(", "))
}

/// A subscriber fell behind the log's bounded buffer and was ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the subscription fell behind: more than {capacity} changes were waiting for it; \
     resume with AS OF OFFSETS {}",
    format_offsets(.resume_from)
)]
pub struct FellBehind {
    /// The log's capacity in changes.
    pub capacity: usize,
    /// The last offset of each partition the subscriber received.
    pub resume_from: Offsets,
}

/// A resume from offsets the log no longer (or never) held.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot resume AS OF OFFSETS {}: the changes after them are no longer held \
     (held from {}); subscribe again with a snapshot",
    format_offsets(.asked),
    format_offsets(.held_from)
)]
pub struct NotRetained {
    /// The offsets asked for.
    pub asked: Offsets,
    /// From which offset of each partition the log holds every change.
    pub held_from: Offsets,
}

/// Subscriptions of one log, for the `ktable_subscriptions` system table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscriptionCounts {
    /// Subscriptions reading now.
    pub active: u64,
    /// Subscriptions ended by their reader (closed, cancelled, disconnected).
    pub ended: u64,
    /// Subscriptions ended because they fell behind.
    pub fell_behind: u64,
    /// Changes the log holds.
    pub retained_changes: u64,
}

struct Entry<B> {
    seq: u64,
    changes: usize,
    batch: Arc<B>,
}

/// Where one reader is, as the writer sees it.
struct Cursor {
    /// The sequence number of the next entry it reads.
    next: AtomicU64,
    fell_behind: AtomicBool,
}

struct Inner<B> {
    entries: VecDeque<Entry<B>>,
    next_seq: u64,
    retained_changes: usize,
    /// From which offset of each partition every change is held.
    held_from: Offsets,
    /// Whether a partition absent from `held_from` is held from its beginning (false
    /// when the store was loaded from a checkpoint before capture began).
    absent_held_from_start: bool,
    readers: Vec<Arc<Cursor>>,
}

/// The changes a store applied, for its subscribers (see the module docs).
pub struct ChangeLog<B> {
    capturing: AtomicBool,
    capacity: AtomicUsize,
    inner: Mutex<Inner<B>>,
    head: watch::Sender<u64>,
    ended: AtomicU64,
    fell_behind: AtomicU64,
    closed: AtomicBool,
}

impl<B> Default for ChangeLog<B> {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl<B> ChangeLog<B> {
    /// An empty log that will retain up to `capacity` changes.
    pub fn new(capacity: usize) -> Self {
        Self {
            capturing: AtomicBool::new(false),
            capacity: AtomicUsize::new(capacity.max(1)),
            inner: Mutex::new(Inner {
                entries: VecDeque::new(),
                next_seq: 0,
                retained_changes: 0,
                held_from: Offsets::new(),
                absent_held_from_start: true,
                readers: Vec::new(),
            }),
            head: watch::Sender::new(0),
            ended: AtomicU64::new(0),
            fell_behind: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// Whether the store must publish what it applies: true once anybody subscribed.
    #[inline]
    pub fn is_capturing(&self) -> bool {
        self.capturing.load(Ordering::Acquire)
    }

    /// Sets how many changes the log retains (a reader further behind is ended).
    pub fn set_capacity(&self, capacity: usize) {
        self.capacity.store(capacity.max(1), Ordering::Relaxed);
    }

    /// The log's capacity in changes.
    pub fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }
}

impl<B: ChangeBatch> ChangeLog<B> {
    /// Starts capture, if it has not started, with the store at `applied`; `loaded`
    /// says the store holds rows whose offsets it does not know (a checkpoint).
    /// The store calls this under the lock its writer applies under, so no batch
    /// falls between `applied` and the first captured one.
    pub fn start_capture(&self, applied: &Offsets, loaded: bool) {
        if self.is_capturing() {
            return;
        }
        let mut inner = self.inner.lock();
        inner.held_from = applied.clone();
        inner.absent_held_from_start = !loaded;
        self.capturing.store(true, Ordering::Release);
    }

    /// Appends a batch the store applied (call only while capturing, under the
    /// store's write lock, so entries follow the order of application).
    pub fn push(&self, batch: B) {
        let changes = batch.positions().len();
        if changes == 0 {
            return;
        }
        let capacity = self.capacity();
        let mut inner = self.inner.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.retained_changes += changes;
        inner.entries.push_back(Entry {
            seq,
            changes,
            batch: Arc::new(batch),
        });
        // Keep the newest entry, whatever its size.
        while inner.retained_changes > capacity && inner.entries.len() > 1 {
            let Some(evicted) = inner.entries.pop_front() else {
                break;
            };
            inner.retained_changes -= evicted.changes;
            for &(partition, offset) in evicted.batch.positions() {
                let held = inner.held_from.entry(partition).or_insert(offset);
                *held = (*held).max(offset);
            }
        }
        let oldest = inner.entries.front().map_or(inner.next_seq, |e| e.seq);
        let fell_behind = &self.fell_behind;
        inner.readers.retain(|cursor| {
            if cursor.next.load(Ordering::Acquire) < oldest {
                cursor.fell_behind.store(true, Ordering::Release);
                fell_behind.fetch_add(1, Ordering::Relaxed);
                false
            } else {
                true
            }
        });
        drop(inner);
        self.head.send_replace(seq + 1);
    }

    /// Ends every reader once it has read what the log holds (its source was
    /// dropped: no change will come).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let next = *self.head.borrow();
        self.head.send_replace(next);
    }

    /// A reader of the changes applied from now on. Call under the store's lock
    /// (with [`start_capture`](Self::start_capture)) to pair it with a snapshot.
    pub fn reader_from_now(self: &Arc<Self>) -> LogReader<B> {
        let mut inner = self.inner.lock();
        let next = inner.next_seq;
        self.register(&mut inner, next)
    }

    /// A reader of every held change, for a subscriber resuming after `offsets`;
    /// refused if the log does not hold every change after them. The reader gets the
    /// held entries whole: skipping the changes at or before `offsets` is the caller's.
    pub fn reader_from(self: &Arc<Self>, offsets: &Offsets) -> Result<LogReader<B>, NotRetained> {
        let mut inner = self.inner.lock();
        let partitions: std::collections::BTreeSet<i32> = inner
            .held_from
            .keys()
            .chain(offsets.keys())
            .copied()
            .collect();
        for partition in partitions {
            let asked = offsets.get(&partition).copied().unwrap_or(-1);
            let held = match inner.held_from.get(&partition) {
                Some(held) => *held,
                None if inner.absent_held_from_start => -1,
                None => i64::MAX,
            };
            if asked < held {
                return Err(NotRetained {
                    asked: offsets.clone(),
                    held_from: inner.held_from.clone(),
                });
            }
        }
        let first = inner.entries.front().map_or(inner.next_seq, |e| e.seq);
        Ok(self.register(&mut inner, first))
    }

    fn register(self: &Arc<Self>, inner: &mut Inner<B>, next: u64) -> LogReader<B> {
        let cursor = Arc::new(Cursor {
            next: AtomicU64::new(next),
            fell_behind: AtomicBool::new(false),
        });
        inner.readers.push(Arc::clone(&cursor));
        LogReader {
            log: Arc::clone(self),
            cursor,
            head: self.head.subscribe(),
        }
    }

    /// How many subscribe, and how many ended.
    pub fn counts(&self) -> SubscriptionCounts {
        let inner = self.inner.lock();
        SubscriptionCounts {
            active: inner.readers.len() as u64,
            ended: self.ended.load(Ordering::Relaxed),
            fell_behind: self.fell_behind.load(Ordering::Relaxed),
            retained_changes: inner.retained_changes as u64,
        }
    }
}

/// One subscriber's position in a [`ChangeLog`]; dropping it ends the subscription.
pub struct LogReader<B: ChangeBatch> {
    log: Arc<ChangeLog<B>>,
    cursor: Arc<Cursor>,
    head: watch::Receiver<u64>,
}

/// Why a reader reads no more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The reader's position was evicted before it read it.
    #[error("the reader fell behind the change log")]
    Evicted {
        /// The log's capacity in changes.
        capacity: usize,
    },
    /// The log was closed (its table or stream dropped) and the reader read all of it.
    #[error("the change log was closed")]
    Closed,
}

impl<B: ChangeBatch> LogReader<B> {
    /// The batches ready now, oldest first (empty when there are none).
    pub fn ready(&mut self) -> Result<Vec<Arc<B>>, ReadError> {
        self.head.borrow_and_update();
        let evicted = ReadError::Evicted {
            capacity: self.log.capacity(),
        };
        if self.cursor.fell_behind.load(Ordering::Acquire) {
            return Err(evicted);
        }
        let inner = self.log.inner.lock();
        let next = self.cursor.next.load(Ordering::Acquire);
        let oldest = inner.entries.front().map_or(inner.next_seq, |e| e.seq);
        if next < oldest {
            return Err(evicted);
        }
        let batches: Vec<Arc<B>> = inner
            .entries
            .iter()
            .skip((next - oldest) as usize)
            .map(|e| Arc::clone(&e.batch))
            .collect();
        self.cursor.next.store(inner.next_seq, Ordering::Release);
        if batches.is_empty() && self.log.closed.load(Ordering::Acquire) {
            return Err(ReadError::Closed);
        }
        Ok(batches)
    }

    /// Waits for at least one batch, then returns every batch ready.
    pub async fn next(&mut self) -> Result<Vec<Arc<B>>, ReadError> {
        loop {
            let batches = self.ready()?;
            if !batches.is_empty() {
                return Ok(batches);
            }
            // The sender lives in the log this reader holds: it cannot close.
            if self.head.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

impl<B: ChangeBatch> Drop for LogReader<B> {
    fn drop(&mut self) {
        if self.cursor.fell_behind.load(Ordering::Acquire) {
            return;
        }
        let mut inner = self.log.inner.lock();
        let before = inner.readers.len();
        inner.readers.retain(|c| !Arc::ptr_eq(c, &self.cursor));
        if inner.readers.len() < before {
            self.log.ended.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Batch(Vec<(i32, i64)>);

    impl ChangeBatch for Batch {
        fn positions(&self) -> &[(i32, i64)] {
            &self.0
        }
    }

    fn log(capacity: usize) -> Arc<ChangeLog<Batch>> {
        let log = Arc::new(ChangeLog::new(capacity));
        log.start_capture(&Offsets::new(), false);
        log
    }

    fn offsets(batches: &[Arc<Batch>]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| b.0.iter().map(|p| p.1))
            .collect()
    }

    #[test]
    fn a_reader_sees_what_was_pushed_after_it_started_in_order() {
        let log = log(10);
        log.push(Batch(vec![(0, 0)]));
        let mut reader = log.reader_from_now();
        log.push(Batch(vec![(0, 1), (0, 2)]));
        log.push(Batch(vec![(0, 3)]));
        assert_eq!(offsets(&reader.ready().unwrap()), vec![1, 2, 3]);
        assert!(reader.ready().unwrap().is_empty());
        assert_eq!(log.counts().active, 1);
        drop(reader);
        assert_eq!(log.counts().active, 0);
        assert_eq!(log.counts().ended, 1);
    }

    #[test]
    fn a_slow_reader_is_ended_and_a_fast_one_goes_on() {
        let log = log(4);
        let mut slow = log.reader_from_now();
        let mut fast = log.reader_from_now();
        let mut seen = Vec::new();
        for offset in 0..10 {
            log.push(Batch(vec![(0, offset)]));
            seen.extend(offsets(&fast.ready().unwrap()));
        }
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert!(slow.ready().is_err(), "the slow reader fell behind");
        let counts = log.counts();
        assert_eq!((counts.active, counts.fell_behind), (1, 1));
        drop(slow);
        assert_eq!(
            log.counts().ended,
            0,
            "a fallen reader is not counted twice"
        );
    }

    #[test]
    fn resume_is_refused_once_the_changes_after_it_were_evicted() {
        let log = log(3);
        for offset in 0..6 {
            log.push(Batch(vec![(1, offset)]));
        }
        // Offsets 3, 4, 5 are held: every change after 2 is there.
        let mut reader = log.reader_from(&Offsets::from([(1, 2)])).unwrap();
        assert_eq!(offsets(&reader.ready().unwrap()), vec![3, 4, 5]);
        assert!(log.reader_from(&Offsets::from([(1, 1)])).is_err());
        assert!(
            log.reader_from(&Offsets::new()).is_err(),
            "partition 1 from its start"
        );
    }

    #[test]
    fn a_closed_log_ends_its_readers_after_what_it_holds() {
        let log = log(10);
        let mut reader = log.reader_from_now();
        log.push(Batch(vec![(0, 1)]));
        log.close();
        assert_eq!(offsets(&reader.ready().unwrap()), vec![1]);
        assert_eq!(reader.ready().err(), Some(ReadError::Closed));
    }

    #[tokio::test]
    async fn next_waits_for_a_push() {
        let log = log(10);
        let mut reader = log.reader_from_now();
        let writer = Arc::clone(&log);
        let push = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            writer.push(Batch(vec![(0, 7)]));
        });
        let batches = tokio::time::timeout(std::time::Duration::from_secs(5), reader.next())
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(offsets(&batches), vec![7]);
        push.await.unwrap();
    }
}

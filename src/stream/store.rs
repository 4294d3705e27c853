//! [`StreamStore`]: the retained window of a stream.
//!
//! Once anybody subscribed, each appended batch is also pushed to the stream's
//! [`ChangeLog`] under the window's write lock, so a subscription that starts with the
//! window sees every later record once.

use crate::changefeed::{
    ChangeBatch, ChangeLog, LogReader, NotRetained, Offsets, PositionColumns, SharedResults,
};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parking_lot::RwLock;
use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How much of a stream is kept. Every bound that is set applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many rows (the newest).
    pub max_rows: Option<usize>,
    /// Keep at most about this many bytes of Arrow buffers (whole batches are dropped).
    pub max_bytes: Option<usize>,
    /// Drop batches whose newest record is older than this (by Kafka timestamp).
    pub max_age: Option<Duration>,
}

impl Default for Retention {
    /// One million rows: streams are unbounded, memory is not.
    fn default() -> Self {
        Self {
            max_rows: Some(1_000_000),
            max_bytes: None,
            max_age: None,
        }
    }
}

struct Chunk {
    batch: RecordBatch,
    bytes: usize,
    /// Newest record timestamp in the chunk, milliseconds since the epoch.
    newest_ms: Option<i64>,
}

#[derive(Default)]
struct Window {
    chunks: VecDeque<Chunk>,
    rows: usize,
    bytes: usize,
    /// The offset of the last record appended, per partition.
    applied: Offsets,
}

/// The retained rows of a stream, oldest first.
pub struct StreamStore {
    schema: SchemaRef,
    retention: Retention,
    window: RwLock<Window>,
    changes: Arc<ChangeLog<StreamChanges>>,
}

/// One appended batch, as the change feed carries it.
pub struct StreamChanges {
    /// The appended rows.
    pub rows: RecordBatch,
    /// The partition and offset of each row.
    pub positions: Vec<(i32, i64)>,
    position_columns: OnceLock<PositionColumns>,
    shared: SharedResults,
}

impl StreamChanges {
    /// The positions as columns, made by the first subscriber that asks and shared.
    pub fn position_columns(&self) -> &PositionColumns {
        self.position_columns
            .get_or_init(|| PositionColumns::of(&self.positions))
    }

    /// What subscribers make of this batch and share (see [`SharedResults`]).
    pub fn shared(&self) -> &SharedResults {
        &self.shared
    }
}

impl ChangeBatch for StreamChanges {
    fn positions(&self) -> &[(i32, i64)] {
        &self.positions
    }
}

/// A subscription's start: the retained window (if asked), the offsets it was cut at,
/// and the reader of the records after.
pub struct StreamSubscription {
    /// The retained rows at the cut, oldest first.
    pub window: Option<Vec<RecordBatch>>,
    /// The offsets appended at the cut, or those resumed from.
    pub offsets: Offsets,
    /// The records after `offsets`.
    pub reader: LogReader<StreamChanges>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl StreamStore {
    /// An empty stream of `schema` keeping `retention`.
    pub fn new(schema: SchemaRef, retention: Retention) -> Self {
        Self {
            schema,
            retention,
            window: RwLock::new(Window::default()),
            changes: Arc::new(ChangeLog::default()),
        }
    }

    /// The stream's change log (its subscribers and their counts).
    pub fn changes(&self) -> &Arc<ChangeLog<StreamChanges>> {
        &self.changes
    }

    /// Starts a subscription to the records appended from now on (with the retained
    /// window first when `window`), or after `resume`.
    pub fn subscribe(
        &self,
        window: bool,
        resume: Option<Offsets>,
    ) -> Result<StreamSubscription, NotRetained> {
        let guard = self.window.write();
        self.changes.start_capture(&guard.applied, false);
        if let Some(offsets) = resume {
            return Ok(StreamSubscription {
                window: None,
                reader: self.changes.reader_from(&offsets)?,
                offsets,
            });
        }
        Ok(StreamSubscription {
            window: window.then(|| guard.chunks.iter().map(|c| c.batch.clone()).collect()),
            offsets: guard.applied.clone(),
            reader: self.changes.reader_from_now(),
        })
    }

    /// The rows' schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Appends rows whose newest Kafka timestamp is `newest_ms`, then applies retention.
    pub fn append(&self, batch: RecordBatch, newest_ms: Option<i64>) {
        self.append_at(batch, newest_ms, &[]);
    }

    /// [`append`](Self::append) with the Kafka partition and offset of each row, for
    /// the change feed (empty: positions unknown, nothing published).
    pub fn append_at(&self, batch: RecordBatch, newest_ms: Option<i64>, positions: &[(i32, i64)]) {
        if batch.num_rows() == 0 {
            return;
        }
        let mut window = self.window.write();
        for &(partition, offset) in positions {
            window.applied.insert(partition, offset);
        }
        if self.changes.is_capturing() && positions.len() == batch.num_rows() {
            self.changes.push(StreamChanges {
                rows: batch.clone(),
                positions: positions.to_vec(),
                position_columns: OnceLock::new(),
                shared: SharedResults::default(),
            });
        }
        let bytes = batch.get_array_memory_size();
        window.rows += batch.num_rows();
        window.bytes += bytes;
        window.chunks.push_back(Chunk {
            batch,
            bytes,
            newest_ms,
        });
        self.evict(&mut window);
    }

    fn evict(&self, window: &mut Window) {
        if let Some(max_rows) = self.retention.max_rows {
            while window.rows > max_rows {
                let excess = window.rows - max_rows;
                let Some(front) = window.chunks.front_mut() else {
                    break;
                };
                if front.batch.num_rows() <= excess {
                    window.rows -= front.batch.num_rows();
                    window.bytes -= front.bytes;
                    window.chunks.pop_front();
                } else {
                    // Keep the newest rows of the oldest batch.
                    let keep = front.batch.num_rows() - excess;
                    front.batch = front.batch.slice(excess, keep);
                    window.rows -= excess;
                }
            }
        }
        if let Some(max_bytes) = self.retention.max_bytes {
            while window.bytes > max_bytes && window.chunks.len() > 1 {
                if let Some(front) = window.chunks.pop_front() {
                    window.rows -= front.batch.num_rows();
                    window.bytes -= front.bytes;
                }
            }
        }
        if let Some(max_age) = self.retention.max_age {
            let oldest_kept = now_ms() - max_age.as_millis() as i64;
            while let Some(front) = window.chunks.front() {
                if front.newest_ms.is_some_and(|newest| newest < oldest_kept) {
                    window.rows -= front.batch.num_rows();
                    window.bytes -= front.bytes;
                    window.chunks.pop_front();
                } else {
                    break;
                }
            }
        }
    }

    /// The retained rows now, oldest first.
    pub fn snapshot(&self) -> Vec<RecordBatch> {
        if self.retention.max_age.is_some() {
            // Age also passes while nothing arrives.
            let mut window = self.window.write();
            self.evict(&mut window);
        }
        self.window
            .read()
            .chunks
            .iter()
            .map(|c| c.batch.clone())
            .collect()
    }

    /// Rows retained.
    pub fn len(&self) -> usize {
        self.window.read().rows
    }

    /// True when nothing is retained.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the retained batches' Arrow buffers.
    pub fn memory_bytes(&self) -> usize {
        self.window.read().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    fn batch(from: i64, n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from_iter_values(from..from + n))],
        )
        .unwrap()
    }

    fn values(store: &StreamStore) -> Vec<i64> {
        store
            .snapshot()
            .iter()
            .flat_map(|b| {
                let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                a.values().to_vec()
            })
            .collect()
    }

    #[test]
    fn row_retention_keeps_the_newest_rows() {
        let store = StreamStore::new(
            batch(0, 1).schema(),
            Retention {
                max_rows: Some(5),
                max_bytes: None,
                max_age: None,
            },
        );
        store.append(batch(0, 3), None);
        store.append(batch(3, 4), None);
        assert_eq!(values(&store), vec![2, 3, 4, 5, 6]);
        assert_eq!(store.len(), 5);
    }

    #[test]
    fn age_retention_drops_batches_of_old_records() {
        let store = StreamStore::new(
            batch(0, 1).schema(),
            Retention {
                max_rows: None,
                max_bytes: None,
                max_age: Some(Duration::from_secs(60)),
            },
        );
        store.append(batch(0, 2), Some(now_ms() - 3_600_000));
        store.append(batch(2, 2), Some(now_ms()));
        assert_eq!(values(&store), vec![2, 3]);
    }
}

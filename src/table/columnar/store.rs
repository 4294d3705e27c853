//! [`ColumnarTable`]: keyed rows in Arrow segments.
//!
//! Concurrency: one `RwLock` guards the index and the segment list. The writer (the
//! source's consumer task) takes it once per applied batch (at most
//! `source::MAX_BATCH` records) for index updates only; decoding happened before.
//! Point lookups take the read lock for the time of their probes and copy the rows out.
//! Scans take a [`TableSnapshot`]: an immutable list of segments with their masks at one
//! moment, so a scan never sees half of an applied batch, and never holds a lock while it
//! runs. Snapshots are built when a scan asks for one and the table changed since the
//! last one, so ingestion without queries pays nothing for them.
//!
//! Segments fill without moving rows: each applied batch becomes a chunk of the one
//! open segment, numbered after the rows already there, so a row keeps its place (and
//! its index entry) until the segment is merged. Re-pointing index entries was the
//! largest cost of a restore when every batch made a segment of its own and the small
//! segments were merged on their way to a full one. A segment closes (is sealed) when
//! it holds [`TARGET_SEGMENT_ROWS`] rows, then its chunks are concatenated into one
//! batch (rows keep their numbers: no index change), or earlier, when most of its rows
//! are dead already (a small table updated often). The open segment's chunks are
//! concatenated in tiers of like size as they accumulate (see [`small_tier`]), so a
//! trickle of one-record batches does not make thousands of chunks.
//!
//! Compaction keeps the segment count low and the dead rows few: segments with no live
//! row are dropped; sealed segments under [`TARGET_SEGMENT_ROWS`] rows are merged in
//! tiers of like size: once a tier holds more than [`MAX_SMALL_SEGMENTS`], their live
//! rows are merged into one of the next tier; a large segment with more dead than live
//! rows is rewritten. Moved rows get their index entries updated. Merging and
//! concatenating run after a batch is applied, without the lock; only installing the
//! result (and re-pointing the index) takes the write lock again.
//!
//! Change feeds: once anybody subscribed, each applied batch is also pushed to the
//! table's [`ChangeLog`] under the same write lock (see [`TableChanges`]), so a
//! subscriber's snapshot and its first change meet exactly at the offsets the table
//! had applied (the `applied` offsets, kept for every batch).

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{concat_batches, filter_record_batch, interleave_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use parking_lot::RwLock;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};

/// Segments smaller than this are merged together.
pub const TARGET_SEGMENT_ROWS: usize = 64 * 1024;
/// How many small segments of one tier may accumulate before they are merged.
pub const MAX_SMALL_SEGMENTS: usize = 8;

/// The tier of a small segment (or of an open segment's chunk) of `rows` rows: tier `t`
/// holds those of `8^t` to `8^(t+1) - 1` rows. Merging by tier rather than all at once
/// copies a row a few times on its way into a full segment, instead of once per merge
/// until the merged one is full.
pub fn small_tier(rows: usize) -> u32 {
    rows.max(1).ilog(MAX_SMALL_SEGMENTS)
}

/// An open segment of at least this many rows, more than half of them dead, is sealed
/// before it is full, so that compaction can drop its dead rows: a small table updated
/// often would otherwise hold up to a full segment of dead rows.
const EARLY_SEAL_ROWS: usize = 1024;

use super::changes::{Change, TableChanges};
use super::index::{KeyIndex, KeyRef, RowId, MAX_SEGMENT_ROWS};
use crate::changefeed::{ChangeLog, LogReader, NotRetained, Offsets};
use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, Int32Type, Int64Type};
use std::borrow::Cow;

/// Rows numbered `0..rows` across the segment's chunks, with their liveness.
struct Segment {
    chunks: Vec<Chunk>,
    rows: usize,
    live: Vec<bool>,
    live_rows: usize,
    /// Takes no more chunks.
    sealed: bool,
    /// A merge is moving rows out of or into it: compaction leaves it alone (even
    /// when it has no live row yet) until the merge is installed.
    installing: bool,
}

/// A batch of a segment's rows, the segment's rows `start..start + batch.num_rows()`.
struct Chunk {
    /// Unique in the table: a concatenation planned without the lock checks at install
    /// that the chunks it read are still the segment's.
    id: u64,
    start: usize,
    batch: RecordBatch,
    /// The view scans see; None when a row of the chunk died since the last snapshot.
    view: Option<Arc<SegmentView>>,
}

impl Segment {
    /// A sealed segment of one batch.
    fn sealed(id: u64, batch: RecordBatch, live: Vec<bool>, live_rows: usize) -> Self {
        Self {
            rows: batch.num_rows(),
            chunks: vec![Chunk {
                id,
                start: 0,
                batch,
                view: None,
            }],
            live,
            live_rows,
            sealed: true,
            installing: false,
        }
    }

    /// Adds `batch` as rows after the segment's, all dead until a change upserts them;
    /// returns the number of its first row.
    fn push(&mut self, chunk_id: u64, batch: RecordBatch) -> usize {
        let start = self.rows;
        self.rows += batch.num_rows();
        self.live.resize(self.rows, false);
        self.chunks.push(Chunk {
            id: chunk_id,
            start,
            batch,
            view: None,
        });
        start
    }

    /// The index of the chunk holding row `row`.
    fn chunk_of(&self, row: usize) -> usize {
        self.chunks
            .partition_point(|c| c.start <= row)
            .saturating_sub(1)
    }

    /// The batch holding row `row`, and the row's position in it.
    fn row(&self, row: usize) -> Option<(&RecordBatch, usize)> {
        if row >= self.rows {
            return None;
        }
        let chunk = &self.chunks[self.chunk_of(row)];
        Some((&chunk.batch, row - chunk.start))
    }

    fn revive(&mut self, row: usize) {
        if !self.live[row] {
            self.live[row] = true;
            self.live_rows += 1;
            let chunk = self.chunk_of(row);
            self.chunks[chunk].view = None;
        }
    }

    fn kill(&mut self, row: usize) {
        if self.live[row] {
            self.live[row] = false;
            self.live_rows -= 1;
            let chunk = self.chunk_of(row);
            self.chunks[chunk].view = None;
        }
    }

    fn memory_bytes(&self) -> usize {
        let batches: usize = self
            .chunks
            .iter()
            .map(|c| c.batch.get_array_memory_size())
            .sum();
        batches + self.live.capacity()
    }
}

/// A segment's chunk as a snapshot sees it.
pub struct SegmentView {
    batch: RecordBatch,
    /// None when every row is live.
    live: Option<BooleanArray>,
    visible: OnceLock<Result<RecordBatch, String>>,
}

impl SegmentView {
    /// The live rows (computed once per view, then shared by every scan).
    pub fn visible(&self) -> Result<RecordBatch, String> {
        self.visible
            .get_or_init(|| match &self.live {
                None => Ok(self.batch.clone()),
                Some(mask) => filter_record_batch(&self.batch, mask).map_err(|e| e.to_string()),
            })
            .clone()
    }
}

/// The table's rows at one moment. Cheap to clone; immutable.
pub struct TableSnapshot {
    segments: Vec<Arc<SegmentView>>,
    rows: usize,
}

impl TableSnapshot {
    /// The live rows, one batch per segment.
    pub fn batches(&self) -> Result<Vec<RecordBatch>, String> {
        self.segments
            .iter()
            .map(|s| s.visible())
            .filter(|b| !matches!(b, Ok(b) if b.num_rows() == 0))
            .collect()
    }

    /// How many rows the snapshot holds.
    pub fn num_rows(&self) -> usize {
        self.rows
    }
}

struct Inner {
    index: KeyIndex,
    segments: BTreeMap<u64, Segment>,
    next_segment: u64,
    /// The segment new batches go to, unless it was sealed or dropped since.
    open: Option<u64>,
    next_chunk: u64,
    snapshot: Option<Arc<TableSnapshot>>,
    /// The offset of the last change applied, per partition.
    applied: Offsets,
    /// Rows were loaded from a checkpoint, whose offsets the table does not know.
    loaded: bool,
}

/// Keyed rows of one table in Arrow segments.
pub struct ColumnarTable {
    schema: SchemaRef,
    /// The key column, or the parts of a composite key in schema order (shared with
    /// the change feed's batches).
    key_columns: Arc<[usize]>,
    /// The key columns' types, made once: every lookup and applied batch reads them.
    key_types: Vec<DataType>,
    inner: RwLock<Inner>,
    changes: Arc<ChangeLog<TableChanges>>,
}

/// Where a subscription starts.
pub enum SubscribeFrom {
    /// The table's rows now, then every change after them.
    Snapshot,
    /// Every change after now, without the rows.
    Now,
    /// Every change after these offsets (resuming a subscription).
    Offsets(Offsets),
}

/// A subscription's start: its snapshot (if asked), the offsets it was cut at, and the
/// reader of the changes after.
pub struct TableSubscription {
    /// The rows at the cut (with [`SubscribeFrom::Snapshot`]).
    pub snapshot: Option<Arc<TableSnapshot>>,
    /// The offsets the table had applied at the cut, or those resumed from.
    pub offsets: Offsets,
    /// The changes after `offsets`.
    pub reader: LogReader<TableChanges>,
}

impl ColumnarTable {
    /// An empty table of `schema`, keyed by column `key_column` (TEXT, INT or BIGINT).
    pub fn new(schema: SchemaRef, key_column: usize) -> Self {
        Self::with_key_columns(schema, vec![key_column])
    }

    /// An empty table of `schema` keyed by the columns `key_columns` together (a
    /// composite key when more than one; each TEXT, INT or BIGINT).
    pub fn with_key_columns(schema: SchemaRef, key_columns: Vec<usize>) -> Self {
        let key_types = key_columns
            .iter()
            .map(|&c| schema.field(c).data_type().clone())
            .collect();
        Self {
            schema,
            key_columns: key_columns.into(),
            key_types,
            inner: RwLock::new(Inner {
                index: KeyIndex::default(),
                segments: BTreeMap::new(),
                next_segment: 0,
                open: None,
                next_chunk: 0,
                snapshot: None,
                applied: Offsets::new(),
                loaded: false,
            }),
            changes: Arc::new(ChangeLog::default()),
        }
    }

    /// The table's change log (its subscribers and their counts).
    pub fn changes(&self) -> &Arc<ChangeLog<TableChanges>> {
        &self.changes
    }

    /// Starts a subscription to the table's changes, consistent with its snapshot:
    /// taken under the write lock, so no batch is half in the snapshot, and every
    /// batch after the cut reaches the reader.
    pub fn subscribe(&self, from: SubscribeFrom) -> Result<TableSubscription, NotRetained> {
        let mut inner = self.inner.write();
        self.changes.start_capture(&inner.applied, inner.loaded);
        match from {
            SubscribeFrom::Offsets(offsets) => Ok(TableSubscription {
                snapshot: None,
                reader: self.changes.reader_from(&offsets)?,
                offsets,
            }),
            SubscribeFrom::Now => Ok(TableSubscription {
                snapshot: None,
                offsets: inner.applied.clone(),
                reader: self.changes.reader_from_now(),
            }),
            SubscribeFrom::Snapshot => Ok(TableSubscription {
                snapshot: Some(snapshot_of(&mut inner)),
                offsets: inner.applied.clone(),
                reader: self.changes.reader_from_now(),
            }),
        }
    }

    /// The rows' schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The key column's index in the schema.
    pub fn key_column(&self) -> usize {
        self.key_columns[0]
    }

    /// The key columns: one, or the parts of a composite key in schema order.
    pub fn key_columns(&self) -> &[usize] {
        &self.key_columns
    }

    /// How many keys have a value.
    pub fn len(&self) -> usize {
        self.inner.read().index.len()
    }

    /// True when no key has a value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies `changes` in order; `Upsert` rows refer to `rows` (in the table's schema),
    /// fewer than 2^24 of them (16,777,216) at once.
    pub fn apply(&self, rows: RecordBatch, changes: &[Change]) -> Result<(), ArrowError> {
        self.apply_at(rows, changes, &[])
    }

    /// [`apply`](Self::apply) with the Kafka partition and offset of each change, for
    /// the change feed (empty: positions unknown, nothing published).
    pub fn apply_at(
        &self,
        rows: RecordBatch,
        changes: &[Change],
        positions: &[(i32, i64)],
    ) -> Result<(), ArrowError> {
        let key_types = &self.key_types;
        if let Some(unfit) = key_types.iter().find(|t| !is_key_type(t)) {
            return Err(ArrowError::SchemaError(format!(
                "a key column of type {unfit} is not supported"
            )));
        }
        if rows.num_rows() >= MAX_SEGMENT_ROWS {
            return Err(ArrowError::InvalidArgumentError(format!(
                "a batch of {} rows: the table takes fewer than {MAX_SEGMENT_ROWS} at once",
                rows.num_rows()
            )));
        }
        let keys = rows.clone();
        let mut merges = {
            let mut inner = self.inner.write();
            self.apply_locked(&mut inner, rows, &keys, changes, positions);
            plan_compaction(&mut inner)
        };
        // The merging (filtering and copying rows) runs without the lock, so lookups
        // and scans never wait for it; only re-pointing the index takes the lock again.
        // A merged segment may fill its tier in turn: merge until no tier is full.
        while !merges.is_empty() {
            for job in merges {
                job.run(&self.schema, &self.inner, &self.key_columns)?;
            }
            merges = plan_compaction(&mut self.inner.write());
        }
        Ok(())
    }

    /// The changes of one batch, under the write lock.
    fn apply_locked(
        &self,
        inner: &mut Inner,
        rows: RecordBatch,
        keys: &RecordBatch,
        changes: &[Change],
        positions: &[(i32, i64)],
    ) {
        let key_types = &self.key_types;
        // Checked under the lock a subscription starts under.
        let published =
            (self.changes.is_capturing() && positions.len() == changes.len()).then(|| {
                TableChanges::new(
                    rows.clone(),
                    changes.to_vec(),
                    positions.to_vec(),
                    Arc::clone(&self.key_columns),
                )
            });
        for &(partition, offset) in positions {
            inner.applied.insert(partition, offset);
        }
        // A row becomes live when a change upserts it: rows no change refers to
        // (records after a failure) stay invisible.
        let placed = (rows.num_rows() > 0).then(|| place(inner, rows));
        for change in changes {
            let at = match (change, placed) {
                (Change::Upsert { row }, Some((segment, start))) => Some(RowId {
                    segment,
                    row: start + row,
                }),
                _ => None,
            };
            let replaced = {
                let segments = &inner.segments;
                let key_at = |at: RowId| key_at(segments, &self.key_columns, at);
                match change {
                    Change::Upsert { row } => {
                        match (at, key_in(keys, &self.key_columns, *row as usize)) {
                            (Some(at), Some(key)) => inner.index.upsert(key.as_bytes(), at, key_at),
                            _ => continue,
                        }
                    }
                    Change::Delete { key } => match parse_key(key_types, key) {
                        Some(key) => inner.index.remove(&key, key_at),
                        None => None,
                    },
                }
            };
            if let Some(at) = at {
                if let Some(new) = inner.segments.get_mut(&at.segment) {
                    new.revive(at.row as usize);
                }
            }
            if let Some(old) = replaced {
                if let Some(segment) = inner.segments.get_mut(&old.segment) {
                    segment.kill(old.row as usize);
                }
            }
        }
        seal_if_done(inner);
        inner.snapshot = None;
        if let Some(published) = published {
            self.changes.push(published);
        }
    }

    /// Adds `rows` as live rows: each row's key once, none of them in the table yet
    /// (a checkpoint's snapshot loaded into an empty table).
    pub fn load(&self, rows: RecordBatch) -> Result<(), ArrowError> {
        self.inner.write().loaded = true;
        // In pieces a segment can hold, however large the batch.
        const PIECE: usize = 1 << 20;
        for start in (0..rows.num_rows()).step_by(PIECE) {
            let piece = rows.slice(start, PIECE.min(rows.num_rows() - start));
            let changes: Vec<Change> = (0..piece.num_rows() as u32)
                .map(|row| Change::Upsert { row })
                .collect();
            self.apply(piece, &changes)?;
        }
        Ok(())
    }

    /// Bytes the table holds: its segments' Arrow buffers, liveness masks and key index.
    pub fn memory_bytes(&self) -> usize {
        let inner = self.inner.read();
        let segments: usize = inner.segments.values().map(Segment::memory_bytes).sum();
        segments + inner.index.memory_bytes()
    }

    /// Removes every row (a checkpoint that failed half-way through loading).
    pub fn clear(&self) {
        let mut inner = self.inner.write();
        inner.index = KeyIndex::default();
        inner.segments.clear();
        inner.open = None;
        inner.snapshot = None;
    }

    /// The current rows of `keys` (each key once; missing keys are skipped). Keys are
    /// given as text whatever the key column's type: an INT or BIGINT key in decimal
    /// (text that is not such a number matches no row).
    pub fn lookup(&self, keys: &[&str]) -> Result<RecordBatch, ArrowError> {
        let key_types = &self.key_types;
        let encoded: Vec<Cow<'_, [u8]>> = keys
            .iter()
            .filter_map(|k| parse_key(key_types, k))
            .collect();
        if encoded.is_empty() && self.key_columns.len() > 1 && !keys.is_empty() {
            return self.rows_with_first_key_part(keys);
        }
        let inner = self.inner.read();
        let mut batches: Vec<&RecordBatch> = Vec::new();
        // The position in `batches` of each chunk a found row is in (chunks are told
        // apart by address: the read lock keeps them in place).
        let mut positions: HashMap<*const RecordBatch, usize> = HashMap::new();
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(keys.len());
        let mut seen = HashSet::with_capacity(keys.len());
        for key in &encoded {
            if !seen.insert(key.as_ref()) {
                continue;
            }
            let Some(at) = inner
                .index
                .get(key, |at| key_at(&inner.segments, &self.key_columns, at))
            else {
                continue;
            };
            let Some((batch, row)) = inner
                .segments
                .get(&at.segment)
                .and_then(|s| s.row(at.row as usize))
            else {
                continue;
            };
            let position = *positions
                .entry(batch as *const RecordBatch)
                .or_insert_with(|| {
                    batches.push(batch);
                    batches.len() - 1
                });
            picks.push((position, row));
        }
        if picks.is_empty() {
            return Ok(RecordBatch::new_empty(Arc::clone(&self.schema)));
        }
        interleave_record_batch(&batches, &picks)
    }

    /// The current row of one `key` (given as [`lookup`](Self::lookup) takes it), as a
    /// one-row slice of the chunk holding it: no row is copied, which is what a
    /// point lookup's latency is mostly made of otherwise. `None` when the key has no
    /// row. The slice keeps its chunk's buffers alive while it lives; chunks are
    /// never written once made, so what it shows does not change.
    pub fn lookup_one(&self, key: &str) -> Option<RecordBatch> {
        let encoded = parse_key(&self.key_types, key)?;
        let inner = self.inner.read();
        let at = inner.index.get(&encoded, |at| {
            key_at(&inner.segments, &self.key_columns, at)
        })?;
        let (batch, row) = inner
            .segments
            .get(&at.segment)
            .and_then(|s| s.row(at.row as usize))?;
        Some(batch.slice(row, 1))
    }

    /// A composite-key table asked for keys that are not composite keys: the rows
    /// whose first key part is one of `texts` (what `first = 'v'` selects), by a scan.
    fn rows_with_first_key_part(&self, texts: &[&str]) -> Result<RecordBatch, ArrowError> {
        let wanted: HashSet<&str> = texts.iter().copied().collect();
        let mut kept = Vec::new();
        for batch in self
            .snapshot()
            .batches()
            .map_err(ArrowError::ComputeError)?
        {
            let first = arrow::compute::cast(batch.column(self.key_columns[0]), &DataType::Utf8)?;
            let first = first.as_string::<i32>();
            let mask: BooleanArray = (0..first.len())
                .map(|i| Some(first.is_valid(i) && wanted.contains(first.value(i))))
                .collect();
            kept.push(filter_record_batch(&batch, &mask)?);
        }
        concat_batches(&self.schema, &kept)
    }

    /// The rows as of now, for a scan.
    pub fn snapshot(&self) -> Arc<TableSnapshot> {
        if let Some(snapshot) = &self.inner.read().snapshot {
            return Arc::clone(snapshot);
        }
        snapshot_of(&mut self.inner.write())
    }

    /// Segments currently held (for statistics and tests).
    pub fn segment_count(&self) -> usize {
        self.inner.read().segments.len()
    }
}

/// The table's rows now: the last snapshot if nothing changed since, else a new one.
fn snapshot_of(inner: &mut Inner) -> Arc<TableSnapshot> {
    if let Some(snapshot) = &inner.snapshot {
        return Arc::clone(snapshot);
    }
    let mut segments = Vec::with_capacity(inner.segments.len());
    let mut rows = 0;
    for segment in inner.segments.values_mut() {
        rows += segment.live_rows;
        let all_live = segment.live_rows == segment.rows;
        for chunk in &mut segment.chunks {
            let view = chunk.view.get_or_insert_with(|| {
                let live = &segment.live[chunk.start..chunk.start + chunk.batch.num_rows()];
                Arc::new(SegmentView {
                    batch: chunk.batch.clone(),
                    live: (!all_live && live.contains(&false))
                        .then(|| BooleanArray::from(live.to_vec())),
                    visible: OnceLock::new(),
                })
            });
            segments.push(Arc::clone(view));
        }
    }
    let snapshot = Arc::new(TableSnapshot { segments, rows });
    inner.snapshot = Some(Arc::clone(&snapshot));
    snapshot
}

/// Puts `rows` in the open segment (opening one if needed); returns the segment and the
/// number its first row got there. A batch of a full segment's size or more is a
/// segment of its own, sealed at once: nothing to concatenate.
fn place(inner: &mut Inner, rows: RecordBatch) -> (u64, u32) {
    let chunk = inner.next_chunk;
    inner.next_chunk += 1;
    let open = inner
        .open
        .filter(|id| inner.segments.get(id).is_some_and(|s| !s.sealed));
    if let (Some(id), true) = (open, rows.num_rows() < TARGET_SEGMENT_ROWS) {
        if let Some(segment) = inner.segments.get_mut(&id) {
            return (id, segment.push(chunk, rows) as u32);
        }
    }
    let id = inner.next_segment;
    inner.next_segment += 1;
    let live = vec![false; rows.num_rows()];
    let mut segment = Segment::sealed(chunk, rows, live, 0);
    segment.sealed = segment.rows >= TARGET_SEGMENT_ROWS;
    if !segment.sealed {
        inner.open = Some(id);
    }
    inner.segments.insert(id, segment);
    (id, 0)
}

/// Seals the open segment when it is full, or when most of its rows are dead already.
fn seal_if_done(inner: &mut Inner) {
    let Some(id) = inner.open else { return };
    let Some(segment) = inner.segments.get_mut(&id) else {
        inner.open = None;
        return;
    };
    let mostly_dead = segment.rows >= EARLY_SEAL_ROWS && segment.live_rows * 2 < segment.rows;
    if segment.rows >= TARGET_SEGMENT_ROWS || mostly_dead {
        segment.sealed = true;
        inner.open = None;
    }
}

/// Work that compaction chose under the lock, to run without it.
enum Job {
    Merge(Merge),
    Concat(Concat),
}

/// Segments to merge into one, as they were when chosen: their rows and which were
/// live. Segments never change but for rows going from live to dead (and an open
/// segment's new chunks, which are never merged), so the merge can be made from this
/// copy without the lock and checked against the table when it is installed.
struct Merge {
    segments: Vec<(u64, Vec<RecordBatch>, Vec<bool>)>,
}

/// A merge's result: the rows that were live, and where each came from.
struct Merged {
    from: Vec<u64>,
    batch: RecordBatch,
    origins: Vec<RowId>,
}

/// Adjacent chunks of one segment to concatenate into one: their rows keep their
/// numbers, so no index entry changes.
struct Concat {
    segment: u64,
    chunks: Vec<u64>,
    batches: Vec<RecordBatch>,
}

/// Drops empty segments and chooses the work: a full segment's chunks concatenated
/// into one; the open segment's last chunks once too many of them are of one tier; the
/// small sealed segments of a tier merged once it holds too many; each sparse large
/// segment rewritten alone.
fn plan_compaction(inner: &mut Inner) -> Vec<Job> {
    inner
        .segments
        .retain(|_, s| s.live_rows > 0 || s.installing);
    let mut jobs = Vec::new();
    let mut tiers: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let mut sparse = Vec::new();
    for (&id, segment) in &inner.segments {
        let chunks = &segment.chunks;
        if segment.installing {
            continue;
        } else if !segment.sealed {
            let last_tier = chunks.last().map(|c| small_tier(c.batch.num_rows()));
            let same_tier = chunks
                .iter()
                .rev()
                .take_while(|c| Some(small_tier(c.batch.num_rows())) == last_tier)
                .count();
            if same_tier > MAX_SMALL_SEGMENTS {
                jobs.push(Job::Concat(Concat::of(
                    id,
                    &chunks[chunks.len() - same_tier..],
                )));
            }
        } else if segment.rows >= TARGET_SEGMENT_ROWS && chunks.len() > 1 {
            jobs.push(Job::Concat(Concat::of(id, chunks)));
        } else if segment.rows < TARGET_SEGMENT_ROWS {
            tiers.entry(small_tier(segment.rows)).or_default().push(id);
        } else if segment.live_rows * 2 < segment.rows {
            sparse.push(id);
        }
    }
    let copy = |inner: &Inner, ids: &[u64]| {
        Job::Merge(Merge {
            segments: ids
                .iter()
                .filter_map(|id| {
                    let segment = inner.segments.get(id)?;
                    let batches = segment.chunks.iter().map(|c| c.batch.clone()).collect();
                    Some((*id, batches, segment.live.clone()))
                })
                .collect(),
        })
    };
    jobs.extend(
        tiers
            .values()
            .filter(|ids| ids.len() > MAX_SMALL_SEGMENTS)
            .map(|ids| copy(inner, ids)),
    );
    jobs.extend(
        sparse
            .iter()
            .map(|id| copy(inner, std::slice::from_ref(id))),
    );
    jobs
}

impl Job {
    /// Does the work without the lock, then installs it under the lock.
    fn run(
        self,
        schema: &SchemaRef,
        table: &RwLock<Inner>,
        key_columns: &[usize],
    ) -> Result<(), ArrowError> {
        match self {
            Job::Merge(merge) => {
                let merged = merge.run(schema)?;
                install(table, merged, key_columns);
            }
            Job::Concat(concat) => {
                let batch = concat_batches(schema, &concat.batches)?;
                concat.install(&mut table.write(), batch);
            }
        }
        Ok(())
    }
}

impl Concat {
    fn of(segment: u64, chunks: &[Chunk]) -> Self {
        Self {
            segment,
            chunks: chunks.iter().map(|c| c.id).collect(),
            batches: chunks.iter().map(|c| c.batch.clone()).collect(),
        }
    }

    /// Replaces the chunks by `batch`, their rows, if the segment still has them (it
    /// may have been merged or dropped meanwhile).
    fn install(self, inner: &mut Inner, batch: RecordBatch) {
        let id = inner.next_chunk;
        inner.next_chunk += 1;
        let Some(segment) = inner.segments.get_mut(&self.segment) else {
            return;
        };
        let Some(first) = segment.chunks.iter().position(|c| c.id == self.chunks[0]) else {
            return;
        };
        let range = first..first + self.chunks.len();
        let still_there = segment
            .chunks
            .get(range.clone())
            .is_some_and(|chunks| chunks.iter().map(|c| c.id).eq(self.chunks.iter().copied()));
        if !still_there {
            return;
        }
        let start = segment.chunks[first].start;
        segment.chunks.splice(
            range,
            [Chunk {
                id,
                start,
                batch,
                view: None,
            }],
        );
        inner.snapshot = None;
    }
}

impl Merge {
    /// One batch of the rows that were live, in segment order.
    fn run(self, schema: &SchemaRef) -> Result<Merged, ArrowError> {
        let mut live = Vec::with_capacity(self.segments.len());
        let mut origins = Vec::new();
        let mut from = Vec::with_capacity(self.segments.len());
        for (id, batches, mask) in self.segments {
            origins.extend((0..mask.len()).filter(|&row| mask[row]).map(|row| RowId {
                segment: id,
                row: row as u32,
            }));
            let mut start = 0;
            for batch in batches {
                let end = start + batch.num_rows();
                let chunk_mask = BooleanArray::from(mask[start..end].to_vec());
                live.push(filter_record_batch(&batch, &chunk_mask)?);
                start = end;
            }
            from.push(id);
        }
        Ok(Merged {
            from,
            batch: concat_batches(schema, &live)?,
            origins,
        })
    }
}

/// Rows a merge re-points per hold of the write lock: a merge of a large segment
/// re-points tens of thousands of index entries (a cache miss each), which in one hold
/// would stall lookups for milliseconds.
const INSTALL_SLICE: usize = 4096;

/// Replaces the merged segments by the merged one, re-pointing the index, a slice of
/// rows per hold of the write lock. Between holds each key is live in exactly one
/// place (a row moved is killed where it was and revived in the merged segment), so
/// lookups and scans see the table whole; the segments involved are left alone by
/// compaction meanwhile. A row that died since the merge was chosen stays dead in it.
/// A merge whose segments are no longer all there (the table was cleared) is dropped.
fn install(table: &RwLock<Inner>, merged: Merged, key_columns: &[usize]) {
    let Merged {
        from,
        batch,
        origins,
    } = merged;
    let id = {
        let mut inner = table.write();
        if !from.iter().all(|id| inner.segments.contains_key(id)) {
            return;
        }
        let id = inner.next_segment;
        inner.next_segment += 1;
        let chunk = inner.next_chunk;
        inner.next_chunk += 1;
        let mut segment = Segment::sealed(chunk, batch.clone(), vec![false; batch.num_rows()], 0);
        segment.installing = true;
        inner.segments.insert(id, segment);
        for old in &from {
            if let Some(old) = inner.segments.get_mut(old) {
                old.installing = true;
            }
        }
        id
    };
    for (slice, origins) in origins.chunks(INSTALL_SLICE).enumerate() {
        let mut inner = table.write();
        let inner = &mut *inner;
        if !inner.segments.contains_key(&id) {
            return; // cleared meanwhile
        }
        let first = slice * INSTALL_SLICE;
        for (row, &from) in (first..).zip(origins) {
            let Some(old) = inner
                .segments
                .get_mut(&from.segment)
                .filter(|s| s.live[from.row as usize])
            else {
                continue;
            };
            old.kill(from.row as usize);
            if let Some(key) = key_in(&batch, key_columns, row) {
                let to = RowId {
                    segment: id,
                    row: row as u32,
                };
                inner.index.relocate(key.as_bytes(), from, to);
            }
            if let Some(merged) = inner.segments.get_mut(&id) {
                merged.revive(row);
            }
        }
        inner.snapshot = None;
    }
    let mut inner = table.write();
    // Every row of the merged segments is dead now: moved, or dead before.
    for old in &from {
        inner.segments.remove(old);
    }
    if let Some(merged) = inner.segments.get_mut(&id) {
        merged.installing = false;
    }
    inner.snapshot = None;
}

/// The key of the row at `at`, if that row exists.
fn key_at<'a>(
    segments: &'a BTreeMap<u64, Segment>,
    key_columns: &[usize],
    at: RowId,
) -> Option<KeyRef<'a>> {
    let (batch, row) = segments.get(&at.segment)?.row(at.row as usize)?;
    key_in(batch, key_columns, row)
}

/// Whether a column of this type can be a table's key (or a part of it).
pub fn is_key_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::Int32 | DataType::Int64
    )
}

/// The key in row `row` of `batch`, whose key columns are `key_columns`.
fn key_in<'a>(batch: &'a RecordBatch, key_columns: &[usize], row: usize) -> Option<KeyRef<'a>> {
    match key_columns {
        [column] => part_in(batch.column(*column), row),
        parts => {
            let mut bytes = Vec::with_capacity(parts.len() * 12);
            for &column in parts {
                push_part(&mut bytes, part_in(batch.column(column), row)?.as_bytes());
            }
            Some(KeyRef::Composite(bytes))
        }
    }
}

fn push_part(bytes: &mut Vec<u8>, part: &[u8]) {
    bytes.extend_from_slice(&(part.len() as u32).to_be_bytes());
    bytes.extend_from_slice(part);
}

/// One key column's value in row `row`.
fn part_in(keys: &ArrayRef, row: usize) -> Option<KeyRef<'_>> {
    if row >= keys.len() || keys.is_null(row) {
        return None;
    }
    match keys.data_type() {
        DataType::Utf8 => Some(KeyRef::Bytes(keys.as_string::<i32>().value(row).as_bytes())),
        DataType::Int32 => Some(int_key(
            keys.as_primitive::<Int32Type>().value(row) as i64,
            4,
        )),
        DataType::Int64 => Some(int_key(keys.as_primitive::<Int64Type>().value(row), 8)),
        _ => None,
    }
}

fn int_key(value: i64, len: u8) -> KeyRef<'static> {
    KeyRef::Int(value.to_be_bytes(), len)
}

/// A key given as text (a composite key as the JSON array of its parts, see
/// `format::key_parts`), encoded as the index compares keys of `types`; None when the
/// text is not such a key.
fn parse_key<'a>(types: &[DataType], text: &'a str) -> Option<Cow<'a, [u8]>> {
    match types {
        [one] => parse_part(one, text),
        parts => {
            let texts = crate::format::key_parts(text, parts.len())?;
            let mut bytes = Vec::new();
            for (data_type, part) in parts.iter().zip(&texts) {
                push_part(&mut bytes, &parse_part(data_type, part)?);
            }
            Some(Cow::Owned(bytes))
        }
    }
}

fn parse_part<'a>(data_type: &DataType, text: &'a str) -> Option<Cow<'a, [u8]>> {
    match data_type {
        DataType::Utf8 => Some(Cow::Borrowed(text.as_bytes())),
        DataType::Int32 => text
            .trim()
            .parse::<i32>()
            .ok()
            .map(|v| Cow::Owned(int_key(v as i64, 4).as_bytes().to_vec())),
        DataType::Int64 => text
            .trim()
            .parse::<i64>()
            .ok()
            .map(|v| Cow::Owned(int_key(v, 8).as_bytes().to_vec())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    fn rows(pairs: &[(&str, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from_iter_values(pairs.iter().map(|p| p.0))),
                Arc::new(Int64Array::from_iter_values(pairs.iter().map(|p| p.1))),
            ],
        )
        .unwrap()
    }

    fn upserts(n: u32) -> Vec<Change> {
        (0..n).map(|row| Change::Upsert { row }).collect()
    }

    fn contents(table: &ColumnarTable) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for batch in table.snapshot().batches().unwrap() {
            let ids = batch.column(0).as_string::<i32>();
            let vs = batch
                .column(1)
                .as_primitive::<arrow::datatypes::Int64Type>();
            for i in 0..batch.num_rows() {
                out.push((ids.value(i).to_string(), vs.value(i)));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn upserts_replace_and_deletes_remove() {
        let table = ColumnarTable::new(schema(), 0);
        table
            .apply(rows(&[("a", 1), ("b", 2), ("a", 3)]), &upserts(3))
            .unwrap();
        assert_eq!(contents(&table), vec![("a".into(), 3), ("b".into(), 2)]);
        table
            .apply(
                rows(&[("c", 4)]),
                &[
                    Change::Delete { key: "a".into() },
                    Change::Upsert { row: 0 },
                ],
            )
            .unwrap();
        assert_eq!(contents(&table), vec![("b".into(), 2), ("c".into(), 4)]);
        assert_eq!(table.len(), 2);
        let found = table.lookup(&["c", "a", "c", "b"]).unwrap();
        assert_eq!(found.num_rows(), 2, "missing keys skipped, duplicates once");
        assert!(table.lookup_one("a").is_none(), "a deleted key has no row");
        let c = table.lookup_one("c").expect("c's row");
        let value = |row: &RecordBatch| {
            row.column(1)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(0)
        };
        assert_eq!((c.num_rows(), value(&c)), (1, 4));
        table.apply(rows(&[("c", 5)]), &upserts(1)).unwrap();
        assert_eq!(value(&c), 4, "a row read stays as it was read");
        assert_eq!(value(&table.lookup_one("c").expect("c's row")), 5);
    }

    #[test]
    fn a_snapshot_does_not_change_when_the_table_does() {
        let table = ColumnarTable::new(schema(), 0);
        table.apply(rows(&[("a", 1)]), &upserts(1)).unwrap();
        let before = table.snapshot();
        table
            .apply(rows(&[("a", 2), ("b", 3)]), &upserts(2))
            .unwrap();
        assert_eq!(before.num_rows(), 1);
        let batches = before.batches().unwrap();
        assert_eq!(
            batches[0]
                .column(1)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(0),
            1
        );
        assert_eq!(table.snapshot().num_rows(), 2);
    }

    #[test]
    fn compaction_bounds_segments_and_keeps_contents() {
        compaction_scenario(false);
    }

    /// Batches of new keys, as a restore applies them: they fill one segment, which is
    /// sealed when full and then holds one batch; no row moves, so no index entry is
    /// re-pointed.
    #[test]
    fn a_filling_segment_keeps_its_rows_in_place() {
        let table = ColumnarTable::new(schema(), 0);
        let sizes = |table: &ColumnarTable| -> Vec<(usize, usize)> {
            let inner = table.inner.read();
            let mut sizes: Vec<(usize, usize)> = inner
                .segments
                .values()
                .map(|s| (s.rows, s.chunks.len()))
                .collect();
            sizes.sort_unstable();
            sizes
        };
        for batch in 0..81 {
            let keys: Vec<String> = (0..1024).map(|i| format!("k{batch}-{i}")).collect();
            let pairs: Vec<(&str, i64)> = keys.iter().map(|k| (k.as_str(), batch)).collect();
            table.apply(rows(&pairs), &upserts(1024)).unwrap();
            let inner = table.inner.read();
            let open = inner.open.and_then(|id| inner.segments.get(&id));
            let chunks = open.map_or(0, |s| s.chunks.len());
            assert!(chunks <= 3 * MAX_SMALL_SEGMENTS, "{chunks} chunks");
        }
        assert_eq!(sizes(&table), vec![(17 * 1024, 9), (64 * 1024, 1)]);
        assert_eq!(table.inner.read().index.relocated, 0);
        assert_eq!(table.len(), 81 * 1024);
        let expected: Vec<(String, i64)> = (0..81)
            .flat_map(|b| (0..1024).map(move |i| (format!("k{b}-{i}"), b)))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(contents(&table), expected);
        let probe = ["k0-0", "k40-512", "k80-1023", "k63-1023", "k64-0"];
        assert_eq!(table.lookup(&probe).unwrap().num_rows(), probe.len());
    }

    /// A trickle of one-record batches over a few keys, as a live table sees: the open
    /// segment's chunks are concatenated by tier, it is sealed early once mostly dead,
    /// and the small sealed segments merge by tier, so neither chunks nor segments pile
    /// up and memory stays near the live rows.
    #[test]
    fn a_trickle_of_updates_keeps_chunks_and_segments_few() {
        let table = ColumnarTable::new(schema(), 0);
        for version in 0..20_000i64 {
            let key = format!("k{}", version % 40);
            table.apply(rows(&[(&key, version)]), &upserts(1)).unwrap();
            let inner = table.inner.read();
            let chunks: usize = inner.segments.values().map(|s| s.chunks.len()).sum();
            assert!(
                chunks <= 4 * MAX_SMALL_SEGMENTS,
                "{chunks} chunks at {version}"
            );
            let rows: usize = inner.segments.values().map(|s| s.rows).sum();
            assert!(
                rows <= 12 * EARLY_SEAL_ROWS,
                "{rows} rows held at {version}"
            );
        }
        let expected: Vec<(String, i64)> = (19_960..20_000)
            .map(|v| (format!("k{}", v % 40), v))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(contents(&table), expected);
        assert_eq!(table.len(), 40);
    }

    /// Every key hashes alike: all but one live in the index's overflow map.
    #[test]
    fn colliding_key_hashes_still_find_each_key() {
        compaction_scenario(true);
    }

    fn compaction_scenario(all_collide: bool) {
        let table = ColumnarTable::new(schema(), 0);
        if all_collide {
            table.inner.write().index.make_all_keys_collide();
        }
        let mut expected = std::collections::BTreeMap::new();
        for round in 0..100i64 {
            let batch: Vec<(String, i64)> = (0..10)
                .map(|i| (format!("k{}", (round * 7 + i) % 50), round))
                .collect();
            let pairs: Vec<(&str, i64)> = batch.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            table.apply(rows(&pairs), &upserts(10)).unwrap();
            for (k, v) in &batch {
                expected.insert(k.clone(), *v);
            }
            if round % 3 == 0 {
                let key = format!("k{}", round % 50);
                table
                    .apply(rows(&[]), &[Change::Delete { key: key.clone() }])
                    .unwrap();
                expected.remove(&key);
            }
        }
        // At most MAX_SMALL_SEGMENTS per tier, rows here under 8^3.
        assert!(
            table.segment_count() <= 3 * MAX_SMALL_SEGMENTS + 1,
            "{} segments",
            table.segment_count()
        );
        let expected: Vec<(String, i64)> = expected.into_iter().collect();
        assert_eq!(contents(&table), expected);
        let keys: Vec<&str> = expected.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(table.lookup(&keys).unwrap().num_rows(), keys.len());
    }

    /// Every applied batch sets all keys to one version; a scan or a lookup running
    /// meanwhile must see one version only, never half of a batch.
    #[test]
    fn readers_never_see_half_of_an_applied_batch() {
        let table = Arc::new(ColumnarTable::new(schema(), 0));
        let keys: Vec<String> = (0..300).map(|k| format!("k{k}")).collect();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|reader| {
                let (table, keys, done) = (Arc::clone(&table), keys.clone(), Arc::clone(&done));
                std::thread::spawn(move || {
                    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                    let mut checks = 0;
                    while !done.load(std::sync::atomic::Ordering::Relaxed) || checks == 0 {
                        let batches = if reader == 0 {
                            table.snapshot().batches().unwrap()
                        } else {
                            vec![table.lookup(&key_refs).unwrap()]
                        };
                        let versions: std::collections::BTreeSet<i64> = batches
                            .iter()
                            .flat_map(|b| {
                                b.column(1)
                                    .as_primitive::<arrow::datatypes::Int64Type>()
                                    .values()
                                    .to_vec()
                            })
                            .collect();
                        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                        assert!(versions.len() <= 1, "torn read: versions {versions:?}");
                        assert!(rows == 0 || rows == keys.len(), "torn read: {rows} rows");
                        checks += 1;
                    }
                    checks
                })
            })
            .collect();
        for version in 0..400i64 {
            let pairs: Vec<(&str, i64)> = keys.iter().map(|k| (k.as_str(), version)).collect();
            table
                .apply(rows(&pairs), &upserts(keys.len() as u32))
                .unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        for reader in readers {
            assert!(reader.join().expect("reader") > 0);
        }
        assert!(table.segment_count() <= MAX_SMALL_SEGMENTS + 1);
    }

    /// A sparse large segment is rewritten with its index entries re-pointed a slice
    /// at a time; readers between the slices see every key exactly once.
    #[test]
    fn readers_see_each_key_once_while_a_large_merge_is_installed() {
        const KEYS: usize = 70_000;
        let table = Arc::new(ColumnarTable::new(schema(), 0));
        let names: Vec<String> = (0..KEYS).map(|k| format!("k{k}")).collect();
        let pairs: Vec<(&str, i64)> = names.iter().map(|k| (k.as_str(), 0)).collect();
        // One batch past a segment's size: a sealed segment of its own.
        table.apply(rows(&pairs), &upserts(KEYS as u32)).unwrap();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (table, done) = (Arc::clone(&table), Arc::clone(&done));
            let sample: Vec<String> = (0..KEYS).step_by(997).map(|k| format!("k{k}")).collect();
            std::thread::spawn(move || {
                let sample: Vec<&str> = sample.iter().map(String::as_str).collect();
                let mut checks = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) || checks == 0 {
                    assert_eq!(table.snapshot().num_rows(), KEYS, "a key missing or twice");
                    assert_eq!(table.lookup(&sample).unwrap().num_rows(), sample.len());
                    for key in &sample[..8] {
                        let row = table.lookup_one(key).expect("a live key has its row");
                        assert_eq!(row.num_rows(), 1);
                        assert_eq!(row.column(0).as_string::<i32>().value(0), *key);
                    }
                    checks += 1;
                }
                checks
            })
        };
        // Updating 40,000 keys leaves the first segment under half live: rewritten.
        for start in (0..40_000).step_by(1024) {
            let end = (start + 1024).min(40_000);
            let pairs: Vec<(&str, i64)> =
                names[start..end].iter().map(|k| (k.as_str(), 1)).collect();
            table
                .apply(rows(&pairs), &upserts((end - start) as u32))
                .unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().expect("reader") > 0);
        assert!(
            table.inner.read().index.relocated >= 30_000,
            "the sparse segment was rewritten"
        );
        let expected: Vec<(String, i64)> = {
            let mut all: Vec<(String, i64)> = names
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), i64::from(i < 40_000)))
                .collect();
            all.sort();
            all
        };
        assert_eq!(contents(&table), expected);
        assert_eq!(table.len(), KEYS);
    }

    /// A subscription started while batches are applied gets each change once: in
    /// its snapshot, or from its reader, never both, never neither.
    #[test]
    fn a_subscription_meets_its_snapshot_exactly() {
        let table = Arc::new(ColumnarTable::new(schema(), 0));
        let writer = {
            let table = Arc::clone(&table);
            std::thread::spawn(move || {
                for version in 0..2000i64 {
                    let key = format!("k{}", version % 50);
                    table
                        .apply_at(rows(&[(&key, version)]), &upserts(1), &[(0, version)])
                        .unwrap();
                }
            })
        };
        while table.len() < 10 {
            std::thread::yield_now();
        }
        let mut subscription = table.subscribe(SubscribeFrom::Snapshot).unwrap();
        writer.join().unwrap();
        let cut = subscription.offsets[&0];
        let mut state: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
        for batch in subscription.snapshot.take().unwrap().batches().unwrap() {
            let ids = batch.column(0).as_string::<i32>();
            let vs = batch
                .column(1)
                .as_primitive::<arrow::datatypes::Int64Type>();
            for i in 0..batch.num_rows() {
                assert!(
                    vs.value(i) <= cut,
                    "the snapshot holds no change after its cut"
                );
                state.insert(ids.value(i).to_string(), vs.value(i));
            }
        }
        let mut next = cut + 1;
        for batch in subscription.reader.ready().unwrap() {
            for (change, &(_, offset)) in batch.changes.iter().zip(&batch.positions) {
                assert_eq!(offset, next, "each change after the cut, once, in order");
                next += 1;
                if let Change::Upsert { row } = change {
                    let ids = batch.rows.column(0).as_string::<i32>();
                    state.insert(ids.value(*row as usize).to_string(), offset);
                }
            }
        }
        assert_eq!(next, 2000);
        let expected: std::collections::BTreeMap<String, i64> =
            contents(&table).into_iter().collect();
        assert_eq!(state, expected);
    }
}

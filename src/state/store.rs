//! What a checkpoint saves and loads: a store's rows as Arrow batches.
//!
//! The SQL table's columnar store is Arrow already; the typed `KTable`'s map encodes
//! its keys and values with the table's own serializers (`crate::table`).

use crate::table::columnar::ColumnarTable;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

/// The rows of a checkpoint, made by [`CheckpointStore::cut`] on a blocking thread.
pub type CutRows = Box<dyn FnOnce() -> Result<Vec<RecordBatch>, String> + Send>;

/// A store whose state checkpoints save and restore.
pub trait CheckpointStore: Send + Sync + 'static {
    /// The columns of the batches [`cut`](Self::cut) gives and [`load`](Self::load)
    /// takes.
    fn checkpoint_schema(&self) -> SchemaRef;

    /// The rows now, a consistent cut taken in a moment; the returned work turns it
    /// into batches (and is run off the async threads).
    fn cut(&self) -> CutRows;

    /// Adds a checkpoint's rows to the empty store.
    fn load(&self, rows: RecordBatch) -> Result<(), String>;

    /// Empties the store (a checkpoint that failed to load part way).
    fn clear(&self);

    /// How many keys the store holds.
    fn key_count(&self) -> usize;
}

impl CheckpointStore for ColumnarTable {
    fn checkpoint_schema(&self) -> SchemaRef {
        std::sync::Arc::clone(self.schema())
    }

    fn cut(&self) -> CutRows {
        // A snapshot is a list of the segments' `Arc`s and masks: filtering the
        // visible rows out of them is the part left for later.
        let snapshot = self.snapshot();
        Box::new(move || snapshot.batches())
    }

    fn load(&self, rows: RecordBatch) -> Result<(), String> {
        ColumnarTable::load(self, rows).map_err(|e| e.to_string())
    }

    fn clear(&self) {
        ColumnarTable::clear(self)
    }

    fn key_count(&self) -> usize {
        ColumnarTable::len(self)
    }
}

//! Durable state: checkpoints of a table's store plus the offsets they are a state
//! of, so that a restart loads the last checkpoint and reads only the records after it.
//!
//! A checkpoint lives in `<state_dir>/tables/<table>/`: an Arrow IPC snapshot of the
//! table's rows and a JSON manifest that commits it (format version, declaration,
//! topic name and id, every partition's next offset, time). At start, a checkpoint is
//! used only if it still fits: same declaration, same topic and topic id, same
//! partitions, offsets inside the log, younger than the topic's `delete.retention.ms`;
//! otherwise the table restores in full, and the reason is logged and shown in
//! `ktable_tables.restore_reason`.
//!
//! * `manifest` — what a checkpoint records, and [`Manifest::check`]: pure, every
//!   fallback reason in one place.
//! * `files` — [`CheckpointDir`]: atomic, durable writes (temp file, fsync, rename,
//!   folder fsync; the manifest is the commit point) and checked reads.
//! * `store` — [`CheckpointStore`]: what a store gives a checkpoint and takes back.
//! * `table` — [`TableCheckpoints`]: restore-or-fall-back at start, the consistent cut,
//!   the periodic task.

mod files;
mod manifest;
mod store;
mod table;

pub use files::{CheckpointDir, CheckpointError};
pub use manifest::{
    Manifest, Mismatch, Observed, PartitionOffset, DEFAULT_DELETE_RETENTION, FORMAT_VERSION,
};
pub use store::{CheckpointStore, CutRows};
pub use table::{describe_schema, Checkpointing, TableCheckpoints, DEFAULT_CHECKPOINT_INTERVAL};

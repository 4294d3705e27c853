//! Checkpoints of one table (a SQL table or a typed `KTable`): restore from the last
//! one at start, write new ones periodically and on demand.
//!
//! The cut: a checkpoint reads the source's positions *first* and then takes the
//! store's snapshot. The source advances its positions only after a batch is applied,
//! so the snapshot holds at least every record before the positions, perhaps a few
//! after. Replaying those few again on restart is harmless — a keyed table ends in the
//! same state when an upsert or tombstone is applied twice in offset order — whereas a
//! position ahead of the snapshot would lose records. Neither step blocks the apply
//! path for longer than the store's snapshot takes (a list of `Arc`s); the snapshot's
//! rows are filtered and written on a blocking thread.
//!
//! [`Checkpointing`] is the periodic task's handle: dropping it ends the task, as
//! dropping a source's last handle ends its consumer.

use super::files::{CheckpointDir, CheckpointError};
use super::manifest::{Manifest, Mismatch, Observed, PartitionOffset, FORMAT_VERSION};
use super::store::CheckpointStore;
use crate::format::SourceSchema;
use crate::kafka::TopicFacts;
use crate::source::{RecordSink, RestoreOrigin, Source, SourceError};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// The default time between two checkpoints of a table.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);

/// A table's declaration as a manifest records it: a change to any part (format,
/// a column's name, type, nullability or source, their order) means the rows of a
/// checkpoint are not what the table would hold now.
pub fn describe_schema(schema: &SourceSchema, format: &str) -> String {
    let columns: Vec<String> = schema
        .arrow()
        .fields()
        .iter()
        .zip(schema.sources())
        .map(|(field, source)| {
            format!(
                "{} {:?}{} {:?}",
                field.name(),
                field.data_type(),
                if field.is_nullable() { "" } else { " NOT NULL" },
                source
            )
        })
        .collect();
    // Everything that decides what a record becomes: a checkpoint made under another
    // key format, envelope or primary key holds rows this declaration would not.
    let spec = schema.format();
    format!(
        "format={format}; key_format={:?}; envelope={:?}; primary_key=({}); on_error={:?}; {}",
        spec.key,
        spec.envelope,
        schema.key_names().join(", "),
        schema.on_error(),
        columns.join(", ")
    )
}

/// Where a checkpoint was cut: `(partition, next offset)` positions, and when.
type Cut = (Vec<(i32, i64)>, SystemTime);

/// Checkpoints of one table, shared by its periodic task and the engine.
pub struct TableCheckpoints {
    dir: CheckpointDir,
    name: String,
    schema: String,
    topic: String,
    /// The source's positions (see [`Source::positions`]).
    positions: Box<dyn Fn() -> Vec<(i32, i64)> + Send + Sync>,
    store: Arc<dyn CheckpointStore>,
    topic_id: Option<String>,
    /// The positions and time of the last checkpoint written or loaded.
    last: Mutex<Option<Cut>>,
    /// One write at a time (the periodic task and a shutdown may meet).
    writing: tokio::sync::Mutex<()>,
}

impl TableCheckpoints {
    /// Starts `source` (which fills `store`) from the checkpoint in `dir` when it still
    /// fits the topic and the declaration `schema` (see [`describe_schema`]), else from
    /// the earliest offsets with the reason in the source's statistics and the log.
    pub async fn start<S: RecordSink>(
        name: &str,
        dir: CheckpointDir,
        schema: String,
        source: &Source<S>,
        store: Arc<dyn CheckpointStore>,
    ) -> Result<Self, SourceError> {
        let watermarks = source.watermarks().await?;
        let facts = source.topic_facts().await.unwrap_or_else(|error| {
            tracing::warn!(table = name, %error, "cannot describe the topic: its id and delete.retention.ms are not checked");
            TopicFacts::default()
        });
        let loaded = {
            let (dir, schema, store, watermarks, facts) = (
                dir.clone(),
                schema.clone(),
                Arc::clone(&store),
                watermarks.clone(),
                facts.clone(),
            );
            let topic = source.topic().to_string();
            tokio::task::spawn_blocking(move || {
                load(&dir, &schema, &topic, &watermarks, &facts, store.as_ref())
            })
            .await
            .unwrap_or_else(|join_error| std::panic::resume_unwind(join_error.into_panic()))
        };
        let last = match loaded {
            Ok(manifest) => {
                let positions = manifest.positions();
                tracing::info!(
                    table = name,
                    rows = manifest.rows,
                    age = %humantime::format_duration(age(manifest.created_at())),
                    "loaded the checkpoint"
                );
                source
                    .start_at(
                        &watermarks,
                        Some(positions.as_slice()),
                        RestoreOrigin::Checkpoint(manifest.created_at()),
                    )
                    .await?;
                Some((positions, manifest.created_at()))
            }
            Err(reason) => {
                if reason == Mismatch::NoCheckpoint {
                    tracing::info!(table = name, "no checkpoint yet: full restore");
                } else {
                    tracing::warn!(table = name, %reason, "checkpoint not used: full restore");
                }
                source
                    .start_at(
                        &watermarks,
                        None,
                        RestoreOrigin::FullInstead(reason.to_string()),
                    )
                    .await?;
                None
            }
        };
        let positions = source.clone();
        Ok(Self {
            dir,
            name: name.to_string(),
            schema,
            topic: source.topic().to_string(),
            positions: Box::new(move || positions.positions()),
            store,
            topic_id: facts.topic_id,
            last: Mutex::new(last),
            writing: tokio::sync::Mutex::new(()),
        })
    }

    /// When the last checkpoint was cut (written or loaded), if any.
    pub fn last_checkpoint(&self) -> Option<SystemTime> {
        self.last.lock().as_ref().map(|(_, at)| *at)
    }

    /// Writes a checkpoint now, unless nothing was applied since the last one; true if
    /// one was written.
    pub async fn write(&self) -> Result<bool, CheckpointError> {
        let _one_at_a_time = self.writing.lock().await;
        // Positions first, then the snapshot: see the module doc.
        let positions = (self.positions)();
        if positions.is_empty()
            || self
                .last
                .lock()
                .as_ref()
                .is_some_and(|(last, _)| *last == positions)
        {
            return Ok(false);
        }
        let rows = self.store.cut();
        let created = SystemTime::now();
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            table: self.name.clone(),
            schema: self.schema.clone(),
            topic: self.topic.clone(),
            topic_id: self.topic_id.clone(),
            partitions: positions
                .iter()
                .map(|&(partition, next_offset)| PartitionOffset {
                    partition,
                    next_offset,
                })
                .collect(),
            created_at_ms: created
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            snapshot: String::new(),
            snapshot_bytes: 0,
            rows: 0,
        };
        let dir = self.dir.clone();
        let schema = self.store.checkpoint_schema();
        let started = std::time::Instant::now();
        let written = tokio::task::spawn_blocking(move || {
            let batches = rows().map_err(|reason| CheckpointError::Mismatch {
                path: dir.path().to_path_buf(),
                reason,
            })?;
            dir.write(manifest, &schema, &batches)
        })
        .await
        .unwrap_or_else(|join_error| std::panic::resume_unwind(join_error.into_panic()))?;
        tracing::debug!(
            table = %self.name,
            rows = written.rows,
            bytes = written.snapshot_bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "checkpoint written"
        );
        *self.last.lock() = Some((positions, created));
        Ok(true)
    }

    /// Writes a checkpoint every `interval` until the returned handle is dropped.
    pub fn every(self: &Arc<Self>, interval: Duration) -> Checkpointing {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let checkpoints = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {
                        if let Err(error) = checkpoints.write().await {
                            tracing::warn!(table = %checkpoints.name, %error, "checkpoint failed; the previous one stays");
                        }
                    }
                }
            }
        });
        Checkpointing {
            checkpoints: Arc::clone(self),
            _stop: stop,
        }
    }
}

/// The periodic checkpoint task of a table; dropping this ends it.
pub struct Checkpointing {
    checkpoints: Arc<TableCheckpoints>,
    _stop: oneshot::Sender<()>,
}

impl Checkpointing {
    /// The table's checkpoints.
    pub fn checkpoints(&self) -> &Arc<TableCheckpoints> {
        &self.checkpoints
    }
}

fn age(at: SystemTime) -> Duration {
    SystemTime::now().duration_since(at).unwrap_or_default()
}

/// Reads, checks and loads the checkpoint into the (empty) store; the reason when it
/// cannot be used, with the store left empty.
fn load(
    dir: &CheckpointDir,
    schema: &str,
    topic: &str,
    watermarks: &[(i32, i64, i64)],
    facts: &TopicFacts,
    table: &dyn CheckpointStore,
) -> Result<Manifest, Mismatch> {
    let unreadable = |e: CheckpointError| Mismatch::Unreadable(e.to_string());
    let manifest = dir
        .read_manifest()
        .map_err(unreadable)?
        .ok_or(Mismatch::NoCheckpoint)?;
    manifest.check(&Observed {
        schema,
        topic,
        watermarks,
        facts,
        now: SystemTime::now(),
    })?;
    let batches = dir
        .read_snapshot(&manifest, &table.checkpoint_schema())
        .map_err(unreadable)?;
    for batch in batches {
        if let Err(error) = table.load(batch) {
            table.clear();
            return Err(Mismatch::Unreadable(error));
        }
    }
    if table.key_count() as u64 != manifest.rows {
        let reason = format!(
            "{} distinct keys, the manifest says {} rows",
            table.key_count(),
            manifest.rows
        );
        table.clear();
        return Err(Mismatch::Unreadable(reason));
    }
    Ok(manifest)
}

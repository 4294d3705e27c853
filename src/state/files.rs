//! A table's checkpoint folder: the snapshot files and the manifest that commits one.
//!
//! Writing a checkpoint: the snapshot goes to `snapshot-N.arrow.tmp`, is fsynced and
//! renamed to `snapshot-N.arrow`; then the manifest goes to `manifest.json.tmp`, is
//! fsynced and renamed over `manifest.json`; the folder is fsynced after each rename.
//! The rename of the manifest is the commit point: a crash before it leaves the
//! previous manifest naming the previous snapshot, which is only deleted after the new
//! manifest is durable. Reading takes the manifest and checks that its snapshot has the
//! size it names and reads whole as Arrow IPC (a file format with a footer, so a torn
//! file does not parse), with the declared schema and the row count named.
//!
//! Arrow IPC because the store's segments are Arrow already: writing is a copy of the
//! column buffers, loading hands the buffers back as segments, and the arrow crate
//! (already a dependency, with its IPC module) reads and writes it.

use super::manifest::Manifest;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

const MANIFEST: &str = "manifest.json";
const SNAPSHOT_PREFIX: &str = "snapshot-";
const SNAPSHOT_SUFFIX: &str = ".arrow";
const TEMPORARY: &str = ".tmp";

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file operation failed.
    #[error("{path}: {error}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// The snapshot could not be written or read as Arrow IPC.
    #[error("snapshot {path}: {error}")]
    Arrow {
        /// The snapshot file.
        path: PathBuf,
        /// What failed.
        error: ArrowError,
    },
    /// The manifest is not valid.
    #[error("manifest {path}: {error}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        error: serde_json::Error,
    },
    /// The snapshot does not match its manifest.
    #[error("snapshot {path}: {reason}")]
    Mismatch {
        /// The snapshot file.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |error| CheckpointError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// The checkpoint folder of one table.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    path: PathBuf,
}

impl CheckpointDir {
    /// The folder of table `table` under the state folder `state_dir`. The name is
    /// escaped so that any SQL identifier makes one folder name.
    pub fn new(state_dir: &Path, table: &str) -> Self {
        let escaped: String = table
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' => c.to_string(),
                other => format!("%{:X}", other as u32),
            })
            .collect();
        Self {
            path: state_dir.join("tables").join(escaped),
        }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The committed manifest, if any.
    pub fn read_manifest(&self) -> Result<Option<Manifest>, CheckpointError> {
        let path = self.path.join(MANIFEST);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(CheckpointError::Io { path, error }),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|error| CheckpointError::Manifest { path, error })
    }

    /// The rows of the snapshot `manifest` names, checked against it and `schema`.
    pub fn read_snapshot(
        &self,
        manifest: &Manifest,
        schema: &SchemaRef,
    ) -> Result<Vec<RecordBatch>, CheckpointError> {
        let path = self.path.join(&manifest.snapshot);
        let mismatch = |reason: String| CheckpointError::Mismatch {
            path: path.clone(),
            reason,
        };
        if manifest.snapshot.contains(['/', '\\']) {
            return Err(mismatch(
                "the manifest names a file outside its folder".into(),
            ));
        }
        let file = File::open(&path).map_err(io(&path))?;
        let bytes = file.metadata().map_err(io(&path))?.len();
        if bytes != manifest.snapshot_bytes {
            return Err(mismatch(format!(
                "{bytes} bytes, the manifest says {}",
                manifest.snapshot_bytes
            )));
        }
        let arrow = |error| CheckpointError::Arrow {
            path: path.clone(),
            error,
        };
        let reader = FileReader::try_new(BufReader::new(file), None).map_err(arrow)?;
        if !same_columns(&reader.schema(), schema) {
            return Err(mismatch("its columns are not the table's".into()));
        }
        let batches = reader.collect::<Result<Vec<_>, _>>().map_err(arrow)?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows as u64 != manifest.rows {
            return Err(mismatch(format!(
                "{rows} rows, the manifest says {}",
                manifest.rows
            )));
        }
        // Batches carry the table's own schema (field metadata may differ).
        batches
            .into_iter()
            .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()).map_err(arrow))
            .collect()
    }

    /// Writes `batches` (rows of `schema`) as a new snapshot and commits `manifest`
    /// naming it (its `snapshot`, `snapshot_bytes` and `rows` are filled in here), then
    /// deletes older snapshots. Blocks on disk writes: call it off the async threads.
    pub fn write(
        &self,
        mut manifest: Manifest,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<Manifest, CheckpointError> {
        fs::create_dir_all(&self.path).map_err(io(&self.path))?;
        let number = self
            .snapshot_numbers()?
            .into_iter()
            .max()
            .map_or(1, |n| n + 1);
        let name = format!("{SNAPSHOT_PREFIX}{number:020}{SNAPSHOT_SUFFIX}");
        let path = self.path.join(&name);
        let temporary = self.path.join(format!("{name}{TEMPORARY}"));
        let file = File::create(&temporary).map_err(io(&temporary))?;
        let arrow = |error| CheckpointError::Arrow {
            path: temporary.clone(),
            error,
        };
        let mut writer = FileWriter::try_new(BufWriter::new(file), schema).map_err(arrow)?;
        for batch in batches {
            writer.write(batch).map_err(arrow)?;
        }
        writer.finish().map_err(arrow)?;
        let file = writer
            .into_inner()
            .map_err(arrow)?
            .into_inner()
            .map_err(|e| CheckpointError::Io {
                path: temporary.clone(),
                error: e.into_error(),
            })?;
        file.sync_all().map_err(io(&temporary))?;
        manifest.snapshot_bytes = file.metadata().map_err(io(&temporary))?.len();
        drop(file);
        fs::rename(&temporary, &path).map_err(io(&path))?;
        self.sync_folder()?;

        manifest.snapshot = name;
        manifest.rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        let text =
            serde_json::to_vec_pretty(&manifest).map_err(|error| CheckpointError::Manifest {
                path: self.path.join(MANIFEST),
                error,
            })?;
        let temporary = self.path.join(format!("{MANIFEST}{TEMPORARY}"));
        let mut file = File::create(&temporary).map_err(io(&temporary))?;
        file.write_all(&text).map_err(io(&temporary))?;
        file.sync_all().map_err(io(&temporary))?;
        drop(file);
        let committed = self.path.join(MANIFEST);
        fs::rename(&temporary, &committed).map_err(io(&committed))?;
        self.sync_folder()?;

        self.remove_all_but(&manifest.snapshot);
        Ok(manifest)
    }

    /// Numbers of the snapshot files present (committed or not).
    fn snapshot_numbers(&self) -> Result<Vec<u64>, CheckpointError> {
        let entries = fs::read_dir(&self.path).map_err(io(&self.path))?;
        Ok(entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let number = name
                    .strip_prefix(SNAPSHOT_PREFIX)?
                    .split('.')
                    .next()?
                    .parse()
                    .ok()?;
                Some(number)
            })
            .collect())
    }

    /// Deletes snapshots other than `keep`, and files of interrupted writes. Failures
    /// are only logged: leftovers waste space, nothing reads them.
    fn remove_all_but(&self, keep: &str) {
        let Ok(entries) = fs::read_dir(&self.path) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let stale =
                (name.starts_with(SNAPSHOT_PREFIX) && name != keep) || name.ends_with(TEMPORARY);
            if stale {
                if let Err(error) = fs::remove_file(entry.path()) {
                    tracing::warn!(file = %entry.path().display(), %error, "cannot delete an old checkpoint file");
                }
            }
        }
    }

    /// Makes the folder's renames durable.
    fn sync_folder(&self) -> Result<(), CheckpointError> {
        File::open(&self.path)
            .and_then(|folder| folder.sync_all())
            .map_err(io(&self.path))
    }
}

/// Same column names, types and nullability (metadata aside).
fn same_columns(a: &SchemaRef, b: &SchemaRef) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields().iter().zip(b.fields().iter()).all(|(x, y)| {
            x.name() == y.name()
                && x.data_type() == y.data_type()
                && x.is_nullable() == y.is_nullable()
        })
}

#[cfg(test)]
mod tests {
    use super::super::manifest::FORMAT_VERSION;
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    fn batch(keys: &[&str], value: i64) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from_iter_values(keys.iter().copied())),
                Arc::new(Int64Array::from_iter_values(keys.iter().map(|_| value))),
            ],
        )
        .unwrap()
    }

    fn manifest() -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            table: "t".into(),
            schema: "s".into(),
            topic: "t".into(),
            topic_id: None,
            partitions: vec![],
            created_at_ms: 0,
            snapshot: String::new(),
            snapshot_bytes: 0,
            rows: 0,
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ktable-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn values(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                b.column(1)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[test]
    fn a_written_checkpoint_reads_back_and_replaces_the_previous() {
        let root = scratch("roundtrip");
        let dir = CheckpointDir::new(&root, "my table/1");
        assert!(dir.path().ends_with("tables/my%20table%2F1"));
        assert_eq!(dir.read_manifest().unwrap(), None);
        let first = dir
            .write(manifest(), &schema(), &[batch(&["a", "b"], 1)])
            .unwrap();
        let second = dir
            .write(manifest(), &schema(), &[batch(&["a"], 2), batch(&["c"], 2)])
            .unwrap();
        assert_ne!(first.snapshot, second.snapshot);
        let read = dir.read_manifest().unwrap().unwrap();
        assert_eq!(read, second);
        assert_eq!(read.rows, 2);
        assert_eq!(
            values(&dir.read_snapshot(&read, &schema()).unwrap()),
            vec![2, 2]
        );
        assert!(
            !dir.path().join(&first.snapshot).exists(),
            "old snapshot deleted"
        );
        fs::remove_dir_all(&root).unwrap();
    }

    /// A write that died before its manifest was renamed leaves files that nothing
    /// reads: the previous checkpoint is what a restart gets.
    #[test]
    fn an_interrupted_checkpoint_leaves_the_previous_one_usable() {
        let root = scratch("interrupted");
        let dir = CheckpointDir::new(&root, "t");
        let committed = dir
            .write(manifest(), &schema(), &[batch(&["a"], 1)])
            .unwrap();
        // What a crash at each step of the next write leaves behind.
        let next = dir
            .path()
            .join(format!("{SNAPSHOT_PREFIX}{:020}{SNAPSHOT_SUFFIX}", 7));
        fs::write(
            dir.path().join("snapshot-00000000000000000006.arrow.tmp"),
            b"ARROW1\0\0half",
        )
        .unwrap();
        fs::copy(dir.path().join(&committed.snapshot), &next).unwrap();
        fs::write(
            dir.path().join("manifest.json.tmp"),
            b"{\"format_version\": 1, \"tab",
        )
        .unwrap();
        let read = dir.read_manifest().unwrap().unwrap();
        assert_eq!(read, committed);
        assert_eq!(
            values(&dir.read_snapshot(&read, &schema()).unwrap()),
            vec![1]
        );
        // The next write numbers past the leftovers and clears them.
        let after = dir
            .write(manifest(), &schema(), &[batch(&["a"], 3)])
            .unwrap();
        assert!(after.snapshot > next.file_name().unwrap().to_string_lossy().into_owned());
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left.len(),
            2,
            "only the manifest and its snapshot remain: {left:?}"
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_torn_or_altered_snapshot_is_refused() {
        let root = scratch("torn");
        let dir = CheckpointDir::new(&root, "t");
        let committed = dir
            .write(manifest(), &schema(), &[batch(&["a", "b", "c"], 1)])
            .unwrap();
        let path = dir.path().join(&committed.snapshot);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(
            dir.read_snapshot(&committed, &schema()),
            Err(CheckpointError::Mismatch { .. })
        ));
        // Same size, damaged footer: Arrow refuses it.
        let mut damaged = bytes.clone();
        let n = damaged.len();
        damaged[n - 12..].fill(0);
        fs::write(&path, &damaged).unwrap();
        assert!(dir.read_snapshot(&committed, &schema()).is_err());
        fs::write(&path, &bytes).unwrap();
        let other = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)]));
        assert!(dir.read_snapshot(&committed, &other).is_err());
        fs::write(dir.path().join(MANIFEST), b"{not json").unwrap();
        assert!(matches!(
            dir.read_manifest(),
            Err(CheckpointError::Manifest { .. })
        ));
        fs::remove_dir_all(&root).unwrap();
    }
}

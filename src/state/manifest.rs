//! The manifest of a checkpoint, and whether it still fits the topic.
//!
//! The manifest is the commit point of a checkpoint (see `files`): it names the
//! snapshot file and says what the snapshot is a state of — which table declaration,
//! which topic (by name and id), which partitions up to which offsets, and when. A
//! restart uses the checkpoint only if all of that still holds; [`Manifest::check`]
//! says why not otherwise, in words that `ktable_tables.restore_reason` shows. It is
//! pure so that every reason is tested without a broker.

use crate::kafka::TopicFacts;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The manifest format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// One partition's position in a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOffset {
    /// The partition number.
    pub partition: i32,
    /// The next offset to read: every record before it is in the snapshot.
    pub next_offset: i64,
}

/// What a checkpoint holds and what it is a state of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// The table's name.
    pub table: String,
    /// The declaration the rows follow: format, columns, their types and sources.
    pub schema: String,
    /// The topic's name.
    pub topic: String,
    /// The topic's id when the checkpoint was written, if the broker told it.
    pub topic_id: Option<String>,
    /// Every partition of the topic and its next offset.
    pub partitions: Vec<PartitionOffset>,
    /// When the checkpoint was cut, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// The snapshot file (Arrow IPC), in the checkpoint's folder.
    pub snapshot: String,
    /// The snapshot file's size in bytes.
    pub snapshot_bytes: u64,
    /// Rows in the snapshot.
    pub rows: u64,
}

/// What a restart sees of the table and its topic, to check a manifest against.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// The table's declaration now (see [`describe_schema`](super::describe_schema)).
    pub schema: &'a str,
    /// The topic the table reads now.
    pub topic: &'a str,
    /// `(partition, low watermark, high watermark)` of every partition now.
    pub watermarks: &'a [(i32, i64, i64)],
    /// The topic's id and tombstone retention now, where known.
    pub facts: &'a TopicFacts,
    /// The time now.
    pub now: SystemTime,
}

/// Why a checkpoint cannot be used: the restart reads the topic from the start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// No checkpoint has been written for the table yet.
    #[error("no checkpoint")]
    NoCheckpoint,
    /// The manifest or its snapshot could not be read or does not hold together.
    #[error("checkpoint unreadable: {0}")]
    Unreadable(String),
    /// Written by a build with another manifest format.
    #[error("checkpoint format {found}, this build reads {FORMAT_VERSION}")]
    FormatVersion {
        /// The manifest's format.
        found: u32,
    },
    /// The table was declared with other columns, types or format.
    #[error("schema changed since the checkpoint")]
    SchemaChanged,
    /// The table now reads another topic.
    #[error("topic changed since the checkpoint ({saved} then, {now} now)")]
    TopicChanged {
        /// The checkpoint's topic.
        saved: String,
        /// The topic now.
        now: String,
    },
    /// The topic was deleted and created again: its id changed.
    #[error("topic recreated since the checkpoint (topic id {saved} then, {now} now)")]
    TopicRecreated {
        /// The checkpoint's topic id.
        saved: String,
        /// The topic id now.
        now: String,
    },
    /// Partitions were added (or the topic recreated with another count).
    #[error("partition count changed since the checkpoint ({saved} then, {now} now)")]
    PartitionCount {
        /// Partitions in the checkpoint.
        saved: usize,
        /// Partitions now.
        now: usize,
    },
    /// Records after the checkpoint were deleted (retention, `DeleteRecords`).
    #[error("offsets out of range: partition {partition} resumes at {offset}, below the log start offset {log_start}")]
    BelowLogStart {
        /// The partition.
        partition: i32,
        /// The checkpoint's next offset.
        offset: i64,
        /// The log start offset now.
        log_start: i64,
    },
    /// The log is shorter than the checkpoint (truncated, or the topic recreated).
    #[error("offsets out of range: partition {partition} resumes at {offset}, above the high watermark {high}")]
    AboveHighWatermark {
        /// The partition.
        partition: i32,
        /// The checkpoint's next offset.
        offset: i64,
        /// The high watermark now.
        high: i64,
    },
    /// Tombstones written after the checkpoint may have been compacted away.
    #[error("checkpoint is {}, older than the topic's delete.retention.ms ({}): deletes since may be lost", human(.age), human(.retention))]
    OlderThanDeleteRetention {
        /// The checkpoint's age.
        age: Duration,
        /// The topic's `delete.retention.ms`.
        retention: Duration,
    },
}

fn human(duration: &Duration) -> humantime::FormattedDuration {
    // Whole milliseconds: the age is measured to the nanosecond.
    humantime::format_duration(Duration::from_millis(duration.as_millis() as u64))
}

/// Kafka's default `delete.retention.ms`, assumed when the broker does not tell it.
pub const DEFAULT_DELETE_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

impl Manifest {
    /// When the checkpoint was cut.
    pub fn created_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.created_at_ms)
    }

    /// The `(partition, next offset)` positions to resume from.
    pub fn positions(&self) -> Vec<(i32, i64)> {
        self.partitions
            .iter()
            .map(|p| (p.partition, p.next_offset))
            .collect()
    }

    /// Whether a restart may load this checkpoint and read only the records after it.
    pub fn check(&self, observed: &Observed<'_>) -> Result<(), Mismatch> {
        if self.format_version != FORMAT_VERSION {
            return Err(Mismatch::FormatVersion {
                found: self.format_version,
            });
        }
        if self.schema != observed.schema {
            return Err(Mismatch::SchemaChanged);
        }
        if self.topic != observed.topic {
            return Err(Mismatch::TopicChanged {
                saved: self.topic.clone(),
                now: observed.topic.to_string(),
            });
        }
        if let (Some(saved), Some(now)) = (&self.topic_id, &observed.facts.topic_id) {
            if saved != now {
                return Err(Mismatch::TopicRecreated {
                    saved: saved.clone(),
                    now: now.clone(),
                });
            }
        }
        let same_partitions = self.partitions.len() == observed.watermarks.len()
            && observed
                .watermarks
                .iter()
                .all(|(p, _, _)| self.partitions.iter().any(|s| s.partition == *p));
        if !same_partitions {
            return Err(Mismatch::PartitionCount {
                saved: self.partitions.len(),
                now: observed.watermarks.len(),
            });
        }
        let mut records_since = false;
        for saved in &self.partitions {
            let Some(&(partition, low, high)) = observed
                .watermarks
                .iter()
                .find(|(p, _, _)| *p == saved.partition)
            else {
                continue;
            };
            if saved.next_offset < low {
                return Err(Mismatch::BelowLogStart {
                    partition,
                    offset: saved.next_offset,
                    log_start: low,
                });
            }
            if saved.next_offset > high {
                return Err(Mismatch::AboveHighWatermark {
                    partition,
                    offset: saved.next_offset,
                    high,
                });
            }
            records_since |= high > saved.next_offset;
        }
        // With nothing written since the checkpoint, no tombstone can have been missed.
        if records_since {
            let retention = observed
                .facts
                .delete_retention
                .unwrap_or(DEFAULT_DELETE_RETENTION);
            let age = observed
                .now
                .duration_since(self.created_at())
                .unwrap_or_default();
            if age >= retention {
                return Err(Mismatch::OlderThanDeleteRetention { age, retention });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            table: "users".into(),
            schema: "json; id Utf8 key".into(),
            topic: "users".into(),
            topic_id: Some("id-1".into()),
            partitions: vec![
                PartitionOffset {
                    partition: 0,
                    next_offset: 10,
                },
                PartitionOffset {
                    partition: 1,
                    next_offset: 5,
                },
            ],
            created_at_ms: 1_000_000,
            snapshot: "snapshot-1.arrow".into(),
            snapshot_bytes: 100,
            rows: 3,
        }
    }

    fn check(
        manifest: &Manifest,
        schema: &str,
        watermarks: &[(i32, i64, i64)],
        facts: &TopicFacts,
        age: Duration,
    ) -> Result<(), Mismatch> {
        manifest.check(&Observed {
            schema,
            topic: "users",
            watermarks,
            facts,
            now: manifest.created_at() + age,
        })
    }

    #[test]
    fn a_matching_checkpoint_is_used() {
        let facts = TopicFacts {
            topic_id: Some("id-1".into()),
            delete_retention: Some(Duration::from_secs(60)),
        };
        let m = manifest();
        let ok = check(
            &m,
            &m.schema,
            &[(0, 0, 20), (1, 0, 5)],
            &facts,
            Duration::from_secs(1),
        );
        assert_eq!(ok, Ok(()));
        assert_eq!(m.positions(), vec![(0, 10), (1, 5)]);
    }

    #[test]
    fn each_change_gives_its_reason() {
        let m = manifest();
        let facts = TopicFacts {
            topic_id: Some("id-1".into()),
            delete_retention: Some(Duration::from_secs(60)),
        };
        let marks = [(0, 0, 20), (1, 0, 5)];
        let second = Duration::from_secs(1);
        assert_eq!(
            check(&m, "json; id Utf8 key; name Utf8", &marks, &facts, second),
            Err(Mismatch::SchemaChanged)
        );
        let recreated = TopicFacts {
            topic_id: Some("id-2".into()),
            ..facts.clone()
        };
        assert!(matches!(
            check(&m, &m.schema, &marks, &recreated, second),
            Err(Mismatch::TopicRecreated { .. })
        ));
        assert_eq!(
            check(
                &m,
                &m.schema,
                &[(0, 0, 20), (1, 0, 5), (2, 0, 0)],
                &facts,
                second
            ),
            Err(Mismatch::PartitionCount { saved: 2, now: 3 })
        );
        assert!(matches!(
            check(&m, &m.schema, &[(0, 11, 20), (1, 0, 5)], &facts, second),
            Err(Mismatch::BelowLogStart { partition: 0, .. })
        ));
        assert!(matches!(
            check(&m, &m.schema, &[(0, 0, 20), (1, 0, 4)], &facts, second),
            Err(Mismatch::AboveHighWatermark { partition: 1, .. })
        ));
        let old = Duration::from_secs(61);
        let error = check(&m, &m.schema, &marks, &facts, old).unwrap_err();
        assert!(matches!(error, Mismatch::OlderThanDeleteRetention { .. }));
        assert!(error.to_string().contains("delete.retention.ms"), "{error}");
        let unchanged_topic = [(0, 0, 10), (1, 0, 5)];
        assert_eq!(
            check(&m, &m.schema, &unchanged_topic, &facts, old),
            Ok(()),
            "nothing written since the checkpoint: no tombstone can be missed"
        );
        let unknown_id = TopicFacts::default();
        assert_eq!(check(&m, &m.schema, &marks, &unknown_id, second), Ok(()));
        let mut other_format = m.clone();
        other_format.format_version = FORMAT_VERSION + 1;
        assert!(matches!(
            check(&other_format, &m.schema, &marks, &facts, second),
            Err(Mismatch::FormatVersion { .. })
        ));
    }
}

//! Restore progress, measured in offsets per partition.
//!
//! Record counts would lie: compacted topics have offset gaps and transactional topics
//! have control markers that no consumer ever sees. So a partition's progress is its
//! read position against the high watermark seen when the table started, and a partition
//! also counts as caught up when librdkafka reports it has reached the end of the log
//! (which covers a log that ends with a transaction marker).

/// How far one partition has been read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionProgress {
    /// The partition number.
    pub partition: i32,
    /// The low watermark when the table started: the first offset still retained.
    pub start_offset: i64,
    /// The high watermark when the table started: restore is done at this offset.
    pub target_offset: i64,
    /// The next offset to read.
    pub position: i64,
    /// Whether the partition has reached its target (or the end of its log).
    pub caught_up: bool,
    /// The newest high watermark known: the consumer's from its last fetch, or the
    /// target when it has fetched nothing yet. Never older than the target.
    pub high_watermark: i64,
    /// The high watermark when librdkafka last reported the end of the partition:
    /// everything below it was read, including transaction markers, which no
    /// consumer sees and which `position` therefore never passes.
    pub end_seen: i64,
}

impl PartitionProgress {
    fn offsets_done(&self) -> u64 {
        if self.caught_up {
            self.offsets_total()
        } else {
            (self.position.min(self.target_offset) - self.start_offset).max(0) as u64
        }
    }

    fn offsets_total(&self) -> u64 {
        (self.target_offset - self.start_offset).max(0) as u64
    }

    /// Offsets between the next one to read (or the end of the log last reached,
    /// if further: it counts transaction markers as read) and the newest high
    /// watermark known.
    pub fn lag(&self) -> u64 {
        let read = self.position.max(self.end_seen);
        (self.high_watermark.max(self.target_offset) - read).max(0) as u64
    }
}

/// Progress of every partition of a table; indexed by partition number.
#[derive(Debug, Clone, Default)]
pub(crate) struct RestoreProgress {
    partitions: Vec<PartitionProgress>,
}

impl RestoreProgress {
    /// Starts tracking partitions given as `(partition, low watermark, high watermark)`.
    pub(crate) fn new(watermarks: &[(i32, i64, i64)]) -> Self {
        let mut partitions: Vec<PartitionProgress> = watermarks
            .iter()
            .map(|&(partition, low, high)| PartitionProgress {
                partition,
                start_offset: low,
                target_offset: high,
                position: low,
                caught_up: high <= low,
                high_watermark: high,
                end_seen: low,
            })
            .collect();
        partitions.sort_by_key(|p| p.partition);
        Self { partitions }
    }

    /// Starts tracking partitions given as `(partition, low, high)` watermarks, read
    /// from `positions` (`(partition, next offset)`, e.g. from a checkpoint) instead
    /// of the low watermark: only the offsets after them count as work.
    pub(crate) fn resumed(watermarks: &[(i32, i64, i64)], positions: &[(i32, i64)]) -> Self {
        let mut progress = Self::new(watermarks);
        for p in &mut progress.partitions {
            if let Some(&(_, position)) = positions.iter().find(|(id, _)| *id == p.partition) {
                p.start_offset = position;
                p.position = position;
                p.caught_up = p.target_offset <= position;
            }
        }
        progress
    }

    fn partition_mut(&mut self, partition: i32) -> Option<&mut PartitionProgress> {
        // Partitions are numbered 0..n, so the index is the number; search as a fallback.
        match self.partitions.get(partition as usize) {
            Some(p) if p.partition == partition => self.partitions.get_mut(partition as usize),
            _ => self
                .partitions
                .iter_mut()
                .find(|p| p.partition == partition),
        }
    }

    /// Records that the record at `offset` was applied.
    pub(crate) fn record_applied(&mut self, partition: i32, offset: i64) {
        if let Some(p) = self.partition_mut(partition) {
            p.position = p.position.max(offset + 1);
            if p.position >= p.target_offset {
                p.caught_up = true;
            }
        }
    }

    /// Records that librdkafka reached the end of the partition's log, at the high
    /// watermark `end` if it is known. Only the lag uses `end`, never the position
    /// (which checkpoints save): records fetched after the end was reported may
    /// already have moved the cached high watermark past ones not applied yet.
    pub(crate) fn end_of_partition(&mut self, partition: i32, end: Option<i64>) {
        if let Some(p) = self.partition_mut(partition) {
            p.caught_up = true;
            if let Some(end) = end {
                p.end_seen = p.end_seen.max(end);
            }
        }
    }

    /// True once every partition has caught up.
    pub(crate) fn is_ready(&self) -> bool {
        self.partitions.iter().all(|p| p.caught_up)
    }

    /// Offsets restored and offsets to restore, over all partitions.
    pub(crate) fn offsets(&self) -> (u64, u64) {
        self.partitions.iter().fold((0, 0), |(done, total), p| {
            (done + p.offsets_done(), total + p.offsets_total())
        })
    }

    /// Where each partition should be read from next: `(partition, position)`.
    pub(crate) fn positions(&self) -> Vec<(i32, i64)> {
        self.partitions
            .iter()
            .map(|p| (p.partition, p.position))
            .collect()
    }

    pub(crate) fn partitions(&self) -> &[PartitionProgress] {
        &self.partitions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_partitions_are_ready_at_once() {
        let progress = RestoreProgress::new(&[(0, 5, 5), (1, 0, 0)]);
        assert!(progress.is_ready());
        assert_eq!(progress.offsets(), (0, 0));
    }

    #[test]
    fn progress_counts_offsets_not_records() {
        // Partition 0 holds offsets 10..20 with gaps (compaction): reading offset 19 is done.
        let mut progress = RestoreProgress::new(&[(0, 10, 20), (1, 0, 4)]);
        progress.record_applied(0, 12);
        assert_eq!(progress.offsets(), (3, 14));
        progress.record_applied(0, 19);
        assert!(!progress.is_ready());
        progress.record_applied(1, 2);
        assert_eq!(progress.offsets(), (13, 14));
        // Offset 3 is a transaction marker the consumer never sees: the end-of-partition
        // notice completes the partition.
        progress.end_of_partition(1, Some(4));
        assert!(progress.is_ready());
        assert_eq!(progress.offsets(), (14, 14));
        // The position stays at the last record read: a checkpoint resumes there.
        assert_eq!(progress.positions(), vec![(0, 20), (1, 3)]);
    }

    #[test]
    fn a_transaction_marker_at_the_end_is_no_lag_once_the_end_is_reached() {
        // Offsets 0..=8 are records, 9 the commit marker: the high watermark is 10.
        let mut progress = RestoreProgress::new(&[(0, 0, 10)]);
        progress.record_applied(0, 8);
        assert_eq!(progress.partitions()[0].lag(), 1);
        progress.end_of_partition(0, Some(10));
        assert_eq!(progress.partitions()[0].lag(), 0);
        assert_eq!(progress.positions(), vec![(0, 9)]);
        // New records past the end are lag again.
        let mut newer = progress.partitions()[0].clone();
        newer.high_watermark = 15;
        assert_eq!(newer.lag(), 5);
    }

    #[test]
    fn lag_counts_from_the_newest_high_watermark() {
        let mut progress = RestoreProgress::new(&[(0, 10, 20)]);
        progress.record_applied(0, 14);
        assert_eq!(progress.partitions()[0].lag(), 5);
        let mut seen = progress.partitions()[0].clone();
        seen.high_watermark = 30;
        assert_eq!(seen.lag(), 15);
        progress.record_applied(0, 19);
        assert_eq!(progress.partitions()[0].lag(), 0);
    }

    #[test]
    fn resumed_progress_counts_only_the_tail() {
        let progress = RestoreProgress::resumed(&[(0, 0, 100), (1, 0, 50)], &[(0, 90), (1, 50)]);
        assert_eq!(progress.offsets(), (0, 10));
        assert!(!progress.is_ready());
        assert_eq!(progress.positions(), vec![(0, 90), (1, 50)]);
        let done = RestoreProgress::resumed(&[(0, 0, 100)], &[(0, 100)]);
        assert!(done.is_ready());
    }

    #[test]
    fn unknown_partitions_are_ignored() {
        let mut progress = RestoreProgress::new(&[(0, 0, 1)]);
        progress.record_applied(7, 100);
        progress.end_of_partition(7, Some(5));
        assert!(!progress.is_ready());
    }
}

//! A batch's Kafka positions as Arrow columns, made once per batch however many
//! subscribers read it, and which of them one subscriber has not seen yet.

use super::Offsets;
use arrow::array::{BooleanArray, Int32Array, Int64Array};
use std::collections::BTreeMap;

/// The partition and offset of each change of a batch, as columns.
#[derive(Debug, Clone)]
pub struct PositionColumns {
    /// The partition of each change.
    pub partitions: Int32Array,
    /// The offset of each change.
    pub offsets: Int64Array,
    /// The lowest and highest offset of each partition in the batch.
    ranges: BTreeMap<i32, (i64, i64)>,
    /// Offsets rise within each partition (as Kafka delivers them).
    rising: bool,
}

impl PositionColumns {
    /// The columns of `positions`.
    pub fn of(positions: &[(i32, i64)]) -> Self {
        let mut ranges: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
        let mut rising = true;
        for &(partition, offset) in positions {
            ranges
                .entry(partition)
                .and_modify(|(low, high)| {
                    rising &= offset > *high;
                    *low = (*low).min(offset);
                    *high = (*high).max(offset);
                })
                .or_insert((offset, offset));
        }
        Self {
            partitions: positions.iter().map(|p| p.0).collect(),
            offsets: positions.iter().map(|p| p.1).collect(),
            ranges,
            rising,
        }
    }

    /// Which changes are new to a subscriber that has seen up to `seen` (per
    /// partition), moving `seen` past them; the last new offset of each partition goes
    /// into `touched`. `None` means all of them: the usual case, decided per partition
    /// rather than per change. A change at or before the offset already seen of its
    /// partition (a resume's overlap, a redelivery) is not new.
    pub fn take_unseen(&self, seen: &mut Offsets, touched: &mut Offsets) -> Option<BooleanArray> {
        let all_new = self.rising
            && self
                .ranges
                .iter()
                .all(|(p, (low, _))| seen.get(p).is_none_or(|last| last < low));
        if all_new {
            for (&partition, &(_, high)) in &self.ranges {
                seen.insert(partition, high);
                touched.insert(partition, high);
            }
            return None;
        }
        let new = self
            .partitions
            .values()
            .iter()
            .zip(self.offsets.values().iter())
            .map(|(&partition, &offset)| {
                if seen.get(&partition).is_some_and(|&last| offset <= last) {
                    return false;
                }
                seen.insert(partition, offset);
                touched.insert(partition, offset);
                true
            })
            .collect();
        Some(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unseen(positions: &[(i32, i64)], seen: &mut Offsets) -> (Option<Vec<bool>>, Offsets) {
        let mut touched = Offsets::new();
        let new = PositionColumns::of(positions).take_unseen(seen, &mut touched);
        (new.map(|n| n.values().iter().collect()), touched)
    }

    #[test]
    fn a_batch_after_what_was_seen_is_all_new() {
        let mut seen = Offsets::from([(0, 4)]);
        let (new, touched) = unseen(&[(0, 5), (1, 0), (0, 6), (1, 1)], &mut seen);
        assert_eq!(new, None);
        assert_eq!(touched, Offsets::from([(0, 6), (1, 1)]));
        assert_eq!(seen, touched);
    }

    #[test]
    fn changes_already_seen_are_left_out_one_by_one() {
        let mut seen = Offsets::from([(0, 5)]);
        let (new, touched) = unseen(&[(0, 4), (0, 5), (1, 9), (0, 6)], &mut seen);
        assert_eq!(new, Some(vec![false, false, true, true]));
        assert_eq!(touched, Offsets::from([(0, 6), (1, 9)]));
        assert_eq!(seen, Offsets::from([(0, 6), (1, 9)]));
    }

    #[test]
    fn offsets_going_back_within_a_batch_are_judged_per_change() {
        let mut seen = Offsets::new();
        let (new, _) = unseen(&[(0, 7), (0, 3), (0, 8)], &mut seen);
        assert_eq!(new, Some(vec![true, false, true]));
        assert_eq!(seen, Offsets::from([(0, 8)]));
    }
}

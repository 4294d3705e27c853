//! [`MemoryBudget`]: the memory all of an engine's tables may hold together
//! (`tables_memory_limit`), beside each table's own limit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What the tables sharing a budget hold, against its limit. Each table's sink reports
/// its size after every batch it applies; a table that grows while the tables together
/// hold more than the limit stops ingesting (the others may go on: a table that is
/// not growing does not add to the problem, and one whose updates shrink it helps).
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    held: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes for all the tables given it.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            held: AtomicUsize::new(0),
        })
    }

    /// The limit, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// What the tables hold together, as last reported.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Records that one table went from `before` to `after` bytes; what the tables
    /// hold together now.
    pub(crate) fn record(&self, before: usize, after: usize) -> usize {
        if after >= before {
            self.held.fetch_add(after - before, Ordering::Relaxed) + (after - before)
        } else {
            let freed = before - after;
            self.held
                .fetch_sub(freed, Ordering::Relaxed)
                .saturating_sub(freed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_add_up_and_give_back() {
        let budget = MemoryBudget::new(100);
        assert_eq!(budget.record(0, 60), 60);
        assert_eq!(budget.record(0, 30), 90);
        assert_eq!(budget.record(60, 20), 50);
        assert_eq!(budget.record(30, 0), 20);
        assert_eq!(budget.held(), 20);
    }
}

//! What subscribers derive alike from one change batch, made once and shared.
//!
//! A hundred clients following `SUBSCRIBE users` over the PostgreSQL protocol would
//! each run the same select list over every batch and encode the same rows into the
//! same bytes: a million rows a second of identical work at 10,000 changes/s. A
//! batch's [`SharedResults`] lets the first subscriber of a kind make it and the
//! others take it: the subscription's rows per distinct query, and their wire
//! encoding per distinct result format.
//!
//! The results live as long as the batch stays in its change log, so each batch
//! holds at most [`MAX_SHARED_RESULTS`] of them: a subscriber whose kind arrives
//! after that (say, the ninth distinct filter) makes its own and drops it when sent,
//! as before; the first kinds, typically the one query many clients share, keep
//! the benefit.

use parking_lot::Mutex;
use std::any::Any;
use std::sync::Arc;

/// The most results one batch keeps (see the module docs).
pub const MAX_SHARED_RESULTS: usize = 8;

/// Results derived from one batch, each made by the first who asked for it.
#[derive(Default)]
pub struct SharedResults {
    entries: Mutex<Vec<Arc<dyn Any + Send + Sync>>>,
}

impl std::fmt::Debug for SharedResults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedResults")
            .field("entries", &self.entries.lock().len())
            .finish()
    }
}

impl SharedResults {
    /// The kept entry of type `T` that `is_same` accepts, else a new one from `make`,
    /// kept if there is room. The entry is looked up and inserted under a short lock;
    /// filling it (an entry is typically a `OnceLock`) is the caller's, outside it, so
    /// subscribers of other kinds never wait for this one.
    pub fn entry<T: Any + Send + Sync>(
        &self,
        is_same: impl Fn(&T) -> bool,
        make: impl FnOnce() -> T,
    ) -> Arc<T> {
        let mut entries = self.entries.lock();
        // Looked at by reference: only the entry returned has its count raised (every
        // subscriber of a source looks here for every batch).
        let found = entries
            .iter()
            .find(|entry| entry.downcast_ref::<T>().is_some_and(&is_same));
        if let Some(entry) = found.and_then(|entry| Arc::clone(entry).downcast::<T>().ok()) {
            return entry;
        }
        let entry = Arc::new(make());
        if entries.len() < MAX_SHARED_RESULTS {
            entries.push(Arc::clone(&entry) as Arc<dyn Any + Send + Sync>);
        }
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_kind_is_made_once_and_other_kinds_apart() {
        let shared = SharedResults::default();
        let mut made = 0;
        let first = shared.entry(
            |e: &(u32, String)| e.0 == 1,
            || {
                made += 1;
                (1, "one".to_string())
            },
        );
        let again = shared.entry(|e: &(u32, String)| e.0 == 1, || unreachable!());
        assert!(Arc::ptr_eq(&first, &again));
        let other = shared.entry(|e: &(u32, String)| e.0 == 2, || (2, "two".to_string()));
        assert_eq!(other.1, "two");
        // An entry of another type is never taken for this one.
        let typed = shared.entry(|_: &u64| true, || 7u64);
        assert_eq!(*typed, 7);
        assert_eq!(made, 1);
    }

    #[test]
    fn past_the_limit_results_are_made_but_not_kept() {
        let shared = SharedResults::default();
        for kind in 0..MAX_SHARED_RESULTS {
            shared.entry(|e: &usize| *e == kind, || kind);
        }
        let extra = shared.entry(|e: &usize| *e == 99, || 99);
        let again = shared.entry(|e: &usize| *e == 99, || 99);
        assert!(!Arc::ptr_eq(&extra, &again), "not kept: made again");
        let kept = shared.entry(|e: &usize| *e == 0, || unreachable!());
        assert_eq!(*kept, 0);
    }
}

//! Memory limits for queries: one pool for the whole engine, and a slice of it per
//! session.
//!
//! DataFusion's operators that hold data (hash aggregates, joins, sorts) reserve
//! their memory from the `MemoryPool` of the context they run in, and fail with
//! `ResourcesExhausted` (SQLSTATE 53200 for clients) when it says no, rather than
//! letting the process grow until the kernel kills it. The engine's pool bounds all
//! queries together; [`SessionMemoryPool`] bounds what one session's statements hold
//! at once (a session runs one statement at a time, so this is the per-query limit)
//! and takes every byte from the engine's pool as well.

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A session's share of the engine's memory pool, at most `limit` bytes.
#[derive(Debug)]
pub(crate) struct SessionMemoryPool {
    engine: Arc<dyn MemoryPool>,
    limit: usize,
    used: AtomicUsize,
}

impl SessionMemoryPool {
    pub(crate) fn new(engine: Arc<dyn MemoryPool>, limit: usize) -> Self {
        Self {
            engine,
            limit,
            used: AtomicUsize::new(0),
        }
    }
}

impl std::fmt::Display for SessionMemoryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "session pool: {} of {} bytes held",
            self.used.load(Ordering::Relaxed),
            self.limit
        )
    }
}

impl MemoryPool for SessionMemoryPool {
    fn name(&self) -> &str {
        "session"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.engine.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.engine.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        self.engine.grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        self.engine.shrink(reservation, shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        // Take the bytes first, so two operators growing at once cannot both pass.
        let before = self.used.fetch_add(additional, Ordering::Relaxed);
        if before.saturating_add(additional) > self.limit {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(DataFusionError::ResourcesExhausted(format!(
                "out of memory: {} needs {additional} more bytes and the query already holds \
                 {before} of its {} byte limit (query_memory_limit)",
                reservation.consumer().name(),
                self.limit
            )));
        }
        if let Err(error) = self.engine.try_grow(reservation, additional) {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(error);
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::GreedyMemoryPool;

    #[test]
    fn a_session_is_held_to_its_own_limit_and_the_engines() {
        let engine: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1000));
        let a: Arc<dyn MemoryPool> = Arc::new(SessionMemoryPool::new(Arc::clone(&engine), 600));
        let b: Arc<dyn MemoryPool> = Arc::new(SessionMemoryPool::new(Arc::clone(&engine), 600));
        let in_a = MemoryConsumer::new("a").register(&a);
        let in_b = MemoryConsumer::new("b").register(&b);

        in_a.try_grow(500).expect("within both limits");
        assert!(in_a.try_grow(200).is_err(), "over the session's 600");
        assert_eq!(a.reserved(), 500, "a refused request leaves nothing held");
        in_b.try_grow(500).expect("the engine has 500 left");
        assert!(in_b.try_grow(50).is_err(), "over the engine's 1000");
        assert_eq!(engine.reserved(), 1000);

        in_a.shrink(500);
        in_b.try_grow(50)
            .expect("a's bytes went back to the engine");
        drop(in_a);
        drop(in_b);
        assert_eq!(engine.reserved(), 0);
    }

    #[test]
    fn concurrent_growth_never_passes_the_limit() {
        let engine: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(usize::MAX));
        let session: Arc<dyn MemoryPool> = Arc::new(SessionMemoryPool::new(engine, 10_000));
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let session = Arc::clone(&session);
                std::thread::spawn(move || {
                    let held = MemoryConsumer::new(format!("t{i}")).register(&session);
                    let mut granted = 0usize;
                    for _ in 0..10_000 {
                        if held.try_grow(7).is_ok() {
                            granted += 7;
                        }
                    }
                    (held, granted)
                })
            })
            .collect();
        let results: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        let granted: usize = results.iter().map(|(_, g)| g).sum();
        assert!(granted <= 10_000, "{granted} bytes granted past the limit");
        assert_eq!(session.reserved(), granted);
    }
}

//! The threads client connections run on: one single-threaded Tokio runtime per
//! core, each connection kept on one of them for its whole life.
//!
//! A connection's work between two messages is short (a frame decoded, a point
//! lookup, a reply encoded; DataFusion statements run on the query threads), so what
//! a work-stealing runtime adds costs more than it gives: on a two-core machine
//! serving 8 pgbench clients, Tokio's multi-threaded scheduler took 27–29 µs of CPU
//! per prepared lookup against 21 µs on a single thread, the difference being
//! workers waking each other to steal (futex wake-ups, inter-processor interrupts)
//! and connections migrating between cores with their socket buffers. Here each
//! thread polls its own connections' sockets and parks in `epoll_wait` when none is
//! ready, as a PostgreSQL backend blocks in its socket; a new connection goes to the
//! thread with the fewest.
//!
//! What is not a connection's short work stays off these threads: source DDL runs
//! on the runtime that called `serve` (its consumers and checkpoint tasks live as
//! long as the engine, not as the server), DataFusion statements on the query
//! threads.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::{AbortHandle, JoinSet};

/// One connection thread: its runtime's handle and how many connections it serves.
struct ConnectionThread {
    handle: Handle,
    connections: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The connection threads of one server; dropping them ends their connections.
pub(crate) struct ConnectionThreads {
    threads: Vec<ConnectionThread>,
}

impl ConnectionThreads {
    /// `count` threads (at least one).
    pub(crate) fn start(count: usize) -> std::io::Result<Self> {
        let mut threads = Vec::with_capacity(count.max(1));
        for index in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("ktable-conn-{index}"))
                .spawn(move || {
                    // Tasks spawned through the handle run while this thread blocks
                    // here; the runtime is dropped on its own thread, outside any
                    // async context, once the server lets go of it.
                    let _ = runtime.block_on(stopped);
                })?;
            threads.push(ConnectionThread {
                handle,
                connections: Arc::new(AtomicUsize::new(0)),
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(Self { threads })
    }

    /// Spawns `connection` into `set` on the thread serving the fewest connections.
    pub(crate) fn spawn<F>(&self, set: &mut JoinSet<()>, connection: F) -> AbortHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let fewest = self
            .threads
            .iter()
            .min_by_key(|thread| thread.connections.load(Ordering::Relaxed));
        // `start` makes at least one; without, the caller's runtime serves.
        let Some(thread) = fewest else {
            return set.spawn(connection);
        };
        let count = Arc::clone(&thread.connections);
        count.fetch_add(1, Ordering::Relaxed);
        let counted = Counted(count);
        set.spawn_on(
            async move {
                let _counted = counted;
                connection.await;
            },
            &thread.handle,
        )
    }
}

impl Drop for ConnectionThreads {
    fn drop(&mut self) {
        for thread in &mut self.threads {
            if let Some(stop) = thread.stop.take() {
                let _ = stop.send(());
            }
        }
        // Joined only outside an async context: from within one, the threads end on
        // their own once their runtimes have dropped their tasks.
        if Handle::try_current().is_err() {
            for thread in &mut self.threads {
                if let Some(thread) = thread.thread.take() {
                    let _ = thread.join();
                }
            }
        }
    }
}

/// One connection counted on its thread while it lives.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

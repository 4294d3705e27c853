//! The runtime DataFusion statements run on, apart from the connections.
//!
//! Connections, point lookups and session statements run on the server's own
//! runtime; planning and executing a DataFusion statement runs here, on threads of
//! their own. Two things follow:
//! * **Short statements keep their latency under analytical load.** With 16 self-joins
//!   sharing the connections' threads, a prepared lookup took 13 s and a new login
//!   64 s: nothing separated them. These threads run at a lower scheduling priority
//!   (nice 10), so when both compete for the cores the kernel runs connection work
//!   first, and a lookup waits for a time slice, not for a join to yield.
//! * **Stack sized for the expression depth limit.** Planning, optimizing and
//!   printing an expression recurse once per level; these threads have a 64 MiB
//!   stack (address space, committed only as touched) for statements at the guard's
//!   depth limit, whatever stack the embedding runtime's threads have.
//!
//! A statement's result comes back as a pgwire `Response`; its rows are produced
//! here (DataFusion computes as its stream is polled, and spawns its own tasks onto
//! the runtime that polls it) and handed to the connection in chunks over a bounded
//! channel, so a slow client holds the query back instead of buffering its rows.
//! Dropping the response, at a cancel, a time limit or a disconnect, aborts the work.

use super::errors::error_with_code;
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::data::DataRow;
use futures::{Stream, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

/// The stack of each query thread.
const QUERY_STACK_SIZE: usize = 64 << 20;

/// Rows handed over at once: whatever is ready, up to this many.
const ROWS_PER_CHUNK: usize = 256;

/// Chunks in flight between the query and its connection.
const CHUNKS_IN_FLIGHT: usize = 4;

/// A dedicated multi-threaded Tokio runtime for DataFusion statements.
pub(crate) struct QueryRuntime {
    // Always `Some` until dropped; taken to shut it down without blocking.
    runtime: Option<tokio::runtime::Runtime>,
}

impl QueryRuntime {
    /// A runtime of `threads` query threads.
    pub(crate) fn start(threads: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("ktable-query")
            .thread_stack_size(QUERY_STACK_SIZE)
            .on_thread_start(lower_priority)
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.runtime.as_ref().map(|r| r.handle())
    }

    /// Runs `work` on a query thread and waits for it; dropping the returned future
    /// aborts the work.
    pub(crate) async fn run<T, F>(&self, work: F) -> PgWireResult<T>
    where
        T: Send + 'static,
        F: Future<Output = PgWireResult<T>> + Send + 'static,
    {
        let handle = self.handle().ok_or_else(stopped)?.spawn(work);
        let _abort = AbortOnDrop(handle.abort_handle());
        handle.await.map_err(|error| {
            tracing::error!(%error, "a query task failed");
            stopped()
        })?
    }

    /// Runs `work` on a query thread, and produces the rows of its response there.
    pub(crate) async fn respond<F>(&self, work: F) -> PgWireResult<Response>
    where
        F: Future<Output = PgWireResult<Response>> + Send + 'static,
    {
        let (head_tx, head_rx) = oneshot::channel();
        let (rows_tx, rows_rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let task = self.handle().ok_or_else(stopped)?.spawn(async move {
            match work.await {
                Ok(Response::Query(mut query)) => {
                    let rows =
                        std::mem::replace(&mut query.data_rows, Box::pin(futures::stream::empty()));
                    if head_tx.send(Ok(Response::Query(query))).is_err() {
                        return;
                    }
                    let mut chunks = rows.ready_chunks(ROWS_PER_CHUNK);
                    while let Some(chunk) = chunks.next().await {
                        if rows_tx.send(Chunk::Rows(chunk)).await.is_err() {
                            return; // the connection dropped the result
                        }
                    }
                    let _ = rows_tx.send(Chunk::End).await;
                }
                other => {
                    let _ = head_tx.send(other);
                }
            }
        });
        let abort = AbortOnDrop(task.abort_handle());
        match head_rx.await.map_err(|_| stopped())? {
            Ok(Response::Query(mut query)) => {
                query.data_rows = Box::pin(ReceivedRows {
                    chunks: rows_rx,
                    current: Vec::new().into_iter(),
                    ended: false,
                    _abort: abort,
                });
                Ok(Response::Query(query))
            }
            other => other,
        }
    }
}

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks finish, which is not allowed from
        // within another runtime: leave them to end in the background.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn stopped() -> PgWireError {
    error_with_code("XX000", "the query stopped unexpectedly".into())
}

/// What a query sends its connection.
enum Chunk {
    Rows(Vec<PgWireResult<DataRow>>),
    /// Every row was sent: a channel that closes without it lost the query.
    End,
}

/// Aborts a query task when the connection no longer wants its result.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The rows of a response, as they arrive from the query thread.
struct ReceivedRows {
    chunks: mpsc::Receiver<Chunk>,
    current: std::vec::IntoIter<PgWireResult<DataRow>>,
    ended: bool,
    _abort: AbortOnDrop,
}

impl Stream for ReceivedRows {
    type Item = PgWireResult<DataRow>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(row) = self.current.next() {
                return Poll::Ready(Some(row));
            }
            if self.ended {
                return Poll::Ready(None);
            }
            match self.chunks.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Chunk::Rows(rows))) => self.current = rows.into_iter(),
                Poll::Ready(Some(Chunk::End)) => self.ended = true,
                Poll::Ready(None) => {
                    // Never end a result early as if it were complete.
                    self.ended = true;
                    return Poll::Ready(Some(Err(stopped())));
                }
            }
        }
    }
}

/// Lowers the calling thread's scheduling priority (Linux keeps nice values per
/// thread), so that connection threads win the cores when both want them.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority only reads its integer arguments; who = 0 is the
        // calling thread on Linux.
        let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
        if result != 0 {
            tracing::debug!("cannot lower the priority of a query thread");
        }
    }
}

//! Cancel requests that stop a query wherever it is.
//!
//! pgwire cancels a statement only while the handler is planning it; once the handler
//! has returned, the rows are produced while they are sent (DataFusion computes as
//! the stream is polled), and a cancel request would be ignored until the end. Each
//! connection therefore has a [`QueryCancel`] flag that its result stream checks; a
//! cancel request with the connection's process id and secret key raises it.
//!
//! A request reaches both: pgwire's first, then the flag, and the flag only for the
//! statement that was running when the request came. Raising the flag first let the
//! statement end and the client send its next one while pgwire's half was still on
//! its way, and that half then cancelled the next statement (seen in CI: `SELECT 1`
//! after a cancelled query answered 57014); a flag raised late would do the same.

use datafusion_postgres::pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::messages::cancel::CancelRequest;
use futures::task::AtomicWaker;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::Context;

/// One connection's cancel flag: the number of its current statement (each one
/// started counts one) and, in the lowest bit, whether that statement was cancelled.
#[derive(Default)]
pub(crate) struct QueryCancel {
    state: AtomicU64,
    waker: AtomicWaker,
}

impl QueryCancel {
    /// Whether the running statement was cancelled.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.state.load(Ordering::Acquire) & 1 == 1
    }

    /// The number of the current statement.
    fn statement(&self) -> u64 {
        self.state.load(Ordering::Acquire) >> 1
    }

    /// A new statement: the next number, not cancelled. Only the connection starts
    /// statements; a cancel of the one before is forgotten.
    fn next_statement(&self) {
        let next = self.statement().wrapping_add(1);
        self.state.store(next << 1, Ordering::Release);
    }

    /// Registers `cx` to be woken by a cancel, then checks (in that order, so that a
    /// cancel between the two is not missed).
    pub(crate) fn register_and_check(&self, cx: &mut Context<'_>) -> bool {
        self.waker.register(cx.waker());
        self.is_cancelled()
    }

    /// Cancels statement `statement` if it is still the current one.
    fn cancel(&self, statement: u64) {
        let running = statement << 1;
        if self
            .state
            .compare_exchange(running, running | 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.waker.wake();
        }
    }
}

/// A connection's secret key and its flag (weak: the connection owns it).
type Registered = (Vec<u8>, Weak<QueryCancel>);

/// The cancel flags of the server's connections, by process id.
#[derive(Default)]
pub(crate) struct RunningQueries {
    by_pid: Mutex<HashMap<i32, Registered>>,
}

impl RunningQueries {
    /// The flag of `client`'s connection, cleared for a new statement.
    pub(crate) fn start<C: ClientInfo>(&self, client: &C) -> Arc<QueryCancel> {
        let flag = client
            .session_extensions()
            .get_or_insert_with(QueryCancel::default);
        let (pid, secret) = client.pid_and_secret_key();
        let mut by_pid = self.by_pid.lock();
        // Process ids are unique among open connections (one counter per server), so
        // an entry for `pid` that is not this connection's flag belongs to a closed
        // connection: replace it rather than keep a key no client holds any more.
        let registered = by_pid
            .get(&pid)
            .is_some_and(|(_, registered)| std::ptr::eq(registered.as_ptr(), &*flag));
        if !registered {
            // Forget closed connections as new ones come.
            by_pid.retain(|_, (_, flag)| flag.strong_count() > 0);
            by_pid.insert(pid, (secret.to_bytes().to_vec(), Arc::downgrade(&flag)));
        }
        drop(by_pid);
        flag.next_statement();
        flag
    }

    /// The flag of the connection `request` names, if its secret key matches.
    fn flag_of(&self, request: &CancelRequest) -> Option<Arc<QueryCancel>> {
        let by_pid = self.by_pid.lock();
        match by_pid.get(&request.pid) {
            Some((secret, flag)) if secret[..] == request.secret_key.to_bytes()[..] => {
                flag.upgrade()
            }
            _ => None,
        }
    }
}

/// pgwire's cancel (planning) and ktable's (streaming), for every request.
pub(crate) struct KtableCancel {
    pub(crate) planning: DefaultCancelHandler,
    pub(crate) running: Arc<RunningQueries>,
}

#[async_trait::async_trait]
impl CancelHandler for KtableCancel {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let flag = self.running.flag_of(&request);
        let statement = flag.as_ref().map(|flag| flag.statement());
        self.planning.on_cancel_request(request).await;
        if let (Some(flag), Some(statement)) = (flag, statement) {
            flag.cancel(statement);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::QueryCancel;

    #[test]
    fn a_cancel_stops_only_the_statement_it_came_for() {
        let flag = QueryCancel::default();
        flag.next_statement();
        let running = flag.statement();
        flag.cancel(running);
        assert!(flag.is_cancelled());
        // The next statement starts clean; a cancel that was meant for the one
        // before, arriving late, leaves it alone.
        flag.next_statement();
        assert!(!flag.is_cancelled());
        flag.cancel(running);
        assert!(!flag.is_cancelled());
        flag.cancel(flag.statement());
        assert!(flag.is_cancelled());
    }
}

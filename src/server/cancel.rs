//! Cancel requests that stop a query wherever it is.
//!
//! pgwire cancels a statement only while the handler is planning it; once the handler
//! has returned, the rows are produced while they are sent (DataFusion computes as
//! the stream is polled), and a cancel request would be ignored until the end. Each
//! connection therefore has a [`QueryCancel`] flag that its result stream checks; a
//! cancel request with the connection's process id and secret key raises it.

use datafusion_postgres::pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::messages::cancel::CancelRequest;
use futures::task::AtomicWaker;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::Context;

/// One connection's cancel flag.
#[derive(Default)]
pub(crate) struct QueryCancel {
    cancelled: AtomicBool,
    waker: AtomicWaker,
}

impl QueryCancel {
    /// Whether the running statement was cancelled.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Registers `cx` to be woken by a cancel, then checks (in that order, so that a
    /// cancel between the two is not missed).
    pub(crate) fn register_and_check(&self, cx: &mut Context<'_>) -> bool {
        self.waker.register(cx.waker());
        self.is_cancelled()
    }

    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        self.waker.wake();
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
        flag.cancelled.store(false, Ordering::Release);
        flag
    }

    fn cancel(&self, request: &CancelRequest) {
        let flag = {
            let by_pid = self.by_pid.lock();
            match by_pid.get(&request.pid) {
                Some((secret, flag)) if secret[..] == request.secret_key.to_bytes()[..] => {
                    flag.upgrade()
                }
                _ => None,
            }
        };
        if let Some(flag) = flag {
            flag.cancel();
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
        self.running.cancel(&request);
        self.planning.on_cancel_request(request).await;
    }
}

//! Per-query limits from the server's configuration: a time limit and a cap on the
//! rows one result may send; and cancel requests, which end a result the same way.
//!
//! Both hold while rows are streamed, not only while the query is planned: results go
//! to the client batch by batch as DataFusion produces them, so the limit is checked
//! between rows, and a query past its deadline stops even if it is still producing.

use super::cancel::QueryCancel;
use super::errors::{error_with_code, with_sqlstate};
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::data::DataRow;
use futures::Stream;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Limits every query of every connection is held to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryLimits {
    /// The longest a statement may run, from its arrival to its last row.
    pub timeout: Option<Duration>,
    /// The most rows one result may send; a query producing more fails.
    pub max_rows: Option<u64>,
}

pub(super) fn timed_out() -> PgWireError {
    error_with_code(
        "57014", // query_canceled, as PostgreSQL's statement_timeout
        "canceling statement due to statement timeout".into(),
    )
}

impl QueryLimits {
    /// Runs `work` (planning and starting a statement) within the time left.
    pub(crate) async fn within<F, T>(&self, started: Instant, work: F) -> PgWireResult<T>
    where
        F: Future<Output = PgWireResult<T>>,
    {
        match self.timeout {
            None => work.await,
            Some(timeout) => tokio::time::timeout_at(started + timeout, work)
                .await
                .map_err(|_| timed_out())?,
        }
    }

    /// `response` with its rows held to the limits, and ended by `cancel`.
    pub(crate) fn hold(
        &self,
        started: Instant,
        cancel: Arc<QueryCancel>,
        response: Response,
    ) -> Response {
        match response {
            Response::Query(mut query) => {
                let rows =
                    std::mem::replace(&mut query.data_rows, Box::pin(futures::stream::empty()));
                query.data_rows = Box::pin(LimitedRows {
                    rows,
                    deadline: self
                        .timeout
                        .map(|t| Box::pin(tokio::time::sleep_until(started + t))),
                    remaining: self.max_rows,
                    cancel,
                    max_rows: self.max_rows.unwrap_or(0),
                    rows_since_clock: 0,
                    finished: false,
                });
                Response::Query(query)
            }
            other => other,
        }
    }
}

/// A result's rows, ending in an error when cancelled, at the deadline or past the
/// row limit.
struct LimitedRows {
    rows: Pin<Box<dyn Stream<Item = PgWireResult<DataRow>> + Send>>,
    deadline: Option<Pin<Box<Sleep>>>,
    remaining: Option<u64>,
    cancel: Arc<QueryCancel>,
    max_rows: u64,
    rows_since_clock: u32,
    finished: bool,
}

/// How many rows pass between looks at the clock while the rows come without a
/// pause (when they pause, the deadline's timer wakes the stream instead).
const ROWS_BETWEEN_CLOCK_CHECKS: u32 = 256;

impl LimitedRows {
    fn finish(&mut self, error: PgWireError) -> Poll<Option<PgWireResult<DataRow>>> {
        self.finished = true;
        Poll::Ready(Some(Err(error)))
    }
}

pub(super) fn cancelled() -> PgWireError {
    error_with_code(
        "57014", // query_canceled
        "canceling statement due to user request".into(),
    )
}

impl Stream for LimitedRows {
    type Item = PgWireResult<DataRow>;

    // Per row this costs an atomic load and a counter; wakers are registered only
    // when the rows pause, and the clock is read every few hundred rows.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        if self.cancel.is_cancelled() {
            return self.finish(cancelled());
        }
        self.rows_since_clock += 1;
        if self.rows_since_clock >= ROWS_BETWEEN_CLOCK_CHECKS {
            self.rows_since_clock = 0;
            if self.deadline.as_ref().is_some_and(|d| d.is_elapsed()) {
                return self.finish(timed_out());
            }
        }
        let next = self.rows.as_mut().poll_next(cx);
        match &next {
            Poll::Pending => {
                // Woken by whichever comes first: rows, a cancel request, the deadline.
                if self.cancel.register_and_check(cx) {
                    return self.finish(cancelled());
                }
                if let Some(deadline) = self.deadline.as_mut() {
                    if deadline.as_mut().poll(cx).is_ready() {
                        return self.finish(timed_out());
                    }
                }
            }
            Poll::Ready(Some(Ok(_))) => {
                if let Some(remaining) = self.remaining.as_mut() {
                    if *remaining == 0 {
                        let max_rows = self.max_rows;
                        return self.finish(error_with_code(
                            "54000", // program_limit_exceeded
                            format!("the result has more than {max_rows} rows, the server's limit"),
                        ));
                    }
                    *remaining -= 1;
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Poll::Ready(Some(Err(error))) = next {
                    return Poll::Ready(Some(Err(with_sqlstate(error))));
                }
            }
            Poll::Ready(None) => {}
        }
        next
    }
}

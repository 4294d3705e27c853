//! Subscriptions over the wire, in the three forms drivers can use (Materialize's):
//!
//! * `DECLARE c CURSOR FOR SUBSCRIBE ...`, then `FETCH [n | ALL] c [WITH (timeout =
//!   '1s')]`, then `CLOSE c`: the subscription lives in the session (its extensions,
//!   so it ends with the connection); a FETCH waits up to its timeout for a first row
//!   (`0s`: takes what is ready; no timeout: until one comes), then takes whatever
//!   else is ready, up to `n`. `COMMIT` and `ROLLBACK` close the cursors not
//!   declared `WITH HOLD`, as in PostgreSQL. datafusion-postgres's cursor hook cannot hold an
//!   unbounded stream (it plans the query again at every FETCH), so subscription
//!   cursors are kept here and a FETCH or CLOSE naming one is answered here first.
//! * `COPY (SUBSCRIBE ...) TO STDOUT`: CopyOutResponse, then one CopyData per row in
//!   PostgreSQL's text format.
//! * a bare `SUBSCRIBE`: rows as a query's rows. An extended-protocol Execute that
//!   asks for at most n rows (a driver's fetch size) gets n rows and PortalSuspended
//!   each time, the subscription held in the portal by pgwire until it is closed.
//!
//! The last two never end by themselves, so they are written here, flushed after each
//! batch of changes: pgwire's `send_query_response` and `send_copy_out_response`
//! `feed` rows and leave the flush to the end of the statement, which never comes. A
//! subscription ends at a cancel request, the statement time limit, a failed write
//! (the client went away; noticed at the next change written), or when it falls
//! behind; each ends with an error, as a cancelled PostgreSQL statement does. Both
//! are sent alone (not in a multi-statement text), since their rows go out before the
//! responses pgwire sends for the statements around them. Their rows are encoded once
//! per change batch for all the subscribers of the same query in the same format
//! (`SubscriptionRows::encoded`): a hundred `psql` sessions following one table cost
//! one encoding and a hundred writes, not a hundred encodings.

use super::cancel::QueryCancel;
use super::errors::{error_with_code, user_error};
use super::handlers::Shared;
use super::limits::{cancelled, timed_out};
use super::results;
use super::session::Session;
use crate::sql::subscribe::SubscriptionRows;
use crate::sql::subscribe_syntax::{cursor_statement, CursorStatement};
use crate::sql::{Prepared, SqlError, SubscribeError, SubscribeStatement};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::{BufMut, Bytes, BytesMut};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion_postgres::arrow_pg::datatypes::encode_recordbatch;
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::copy::{CopyData, CopyOutResponse};
use datafusion_postgres::pgwire::messages::data::{DataRow, RowDescription};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use futures::stream::BoxStream;
use futures::{FutureExt, Sink, SinkExt, StreamExt};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::time::Instant;

/// The most subscription cursors one session may hold at once. Each holds a
/// subscriber's place in its source's change log (and up to the subscribe buffer of
/// changes), so without a cap one connection could pin an unbounded amount of memory
/// with `DECLARE` alone; 64 is far more than a client following a few tables needs.
pub(crate) const MAX_CURSORS_PER_SESSION: usize = 64;

/// One session's subscription cursors, by name.
#[derive(Default)]
pub(crate) struct SubscriptionCursors {
    cursors: Mutex<HashMap<String, SubscriptionCursor>>,
}

impl SubscriptionCursors {
    /// `client`'s cursors.
    pub(crate) fn of<C: ClientInfo + ?Sized>(client: &C) -> Arc<Self> {
        client
            .session_extensions()
            .get_or_insert_with(SubscriptionCursors::default)
    }

    /// Closes the cursors a transaction's end closes: all but those declared `WITH
    /// HOLD` (as PostgreSQL); with `all`, those too (`CLOSE ALL`, `DISCARD ALL`).
    pub(crate) fn end_of_transaction(&self, all: bool) {
        self.cursors.lock().retain(|_, cursor| cursor.hold && !all);
    }

    /// The schema of cursor `name`, if the session has a subscription cursor so named.
    fn schema(&self, name: &str) -> Option<SchemaRef> {
        self.cursors.lock().get(name).map(|c| Arc::clone(&c.schema))
    }
}

/// A subscription held by a cursor: its rows, and rows taken but not yet fetched.
struct SubscriptionCursor {
    schema: SchemaRef,
    hold: bool,
    rows: SendableRecordBatchStream,
    pending: VecDeque<RecordBatch>,
}

/// The statement `sql` is if it fetches from or closes a subscription cursor of
/// `client`'s session: the session decides, the engine cannot.
pub(crate) fn cursor_prepared<C: ClientInfo + ?Sized>(client: &C, sql: &str) -> Option<Prepared> {
    let statement = cursor_statement(sql)?;
    let schema = SubscriptionCursors::of(client).schema(statement.cursor())?;
    Some(Prepared::subscription_cursor(sql, statement, schema))
}

/// Whether `prepared` writes its own rows (a bare `SUBSCRIBE` or `COPY (SUBSCRIBE)`),
/// so its replies must reach the client as they are written.
pub(crate) fn streams(prepared: &Prepared) -> bool {
    matches!(
        prepared.subscribe_statement(),
        Some(SubscribeStatement::Stream(_) | SubscribeStatement::Copy(_))
    )
}

/// Runs a subscription statement for `client`; `describe`: send the rows' description
/// first (the simple protocol; the extended one described them at Describe).
pub(crate) async fn run<C>(
    client: &mut C,
    shared: &Shared,
    session: &Session,
    prepared: &Prepared,
    format: &Format,
    describe: bool,
    max_rows: usize,
) -> PgWireResult<Response>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::Error: std::fmt::Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let Some(statement) = prepared.subscribe_statement() else {
        return Ok(Response::EmptyQuery);
    };
    let started = Instant::now();
    let cancel = shared.running.start(&*client);
    let cursors = SubscriptionCursors::of(&*client);
    let start = |plan| {
        shared
            .engine
            .start_subscription(plan)
            .map_err(|e| user_error(&e))
    };
    let start_shared = |plan| {
        shared
            .engine
            .start_shared_subscription(plan)
            .map_err(|e| user_error(&e))
    };
    match statement {
        SubscribeStatement::Declare { cursor, hold, plan } => {
            {
                let held = cursors.cursors.lock();
                if held.contains_key(cursor) {
                    return Err(subscribe_error(SubscribeError::CursorExists(
                        cursor.clone(),
                    )));
                }
                if held.len() >= MAX_CURSORS_PER_SESSION {
                    return Err(subscribe_error(SubscribeError::TooManyCursors(
                        MAX_CURSORS_PER_SESSION,
                    )));
                }
            }
            let rows = start(plan)?;
            cursors.cursors.lock().insert(
                cursor.clone(),
                SubscriptionCursor {
                    schema: Arc::clone(plan.schema()),
                    hold: *hold,
                    rows,
                    pending: VecDeque::new(),
                },
            );
            tracing::debug!(
                cursor,
                source = plan.source(),
                "subscription cursor declared"
            );
            Ok(Response::Execution(Tag::new("DECLARE CURSOR")))
        }
        SubscribeStatement::Cursor {
            statement: CursorStatement::Close { cursor },
            ..
        } => match cursors.cursors.lock().remove(cursor) {
            Some(_) => Ok(Response::Execution(Tag::new("CLOSE CURSOR"))),
            None => Err(subscribe_error(SubscribeError::NoCursor(cursor.clone()))),
        },
        SubscribeStatement::Cursor {
            statement:
                CursorStatement::Fetch {
                    cursor,
                    count,
                    timeout,
                },
            ..
        } => {
            let Some(mut held) = cursors.cursors.lock().remove(cursor) else {
                return Err(subscribe_error(SubscribeError::NoCursor(cursor.clone())));
            };
            let fetched = guarded(
                shared,
                started,
                &cancel,
                fetch(&mut held, count.unwrap_or(u64::MAX), *timeout),
            )
            .await;
            // A subscription that failed, was cancelled or ran out of time is over.
            let batches = fetched?;
            cursors.cursors.lock().insert(cursor.clone(), held);
            let options = session.format(&*client);
            let fields = results::fields(&prepared.schema(), format, &options)?;
            let mut rows: Vec<PgWireResult<DataRow>> = Vec::new();
            for batch in batches {
                rows.extend(encode_recordbatch(Arc::clone(&fields), batch));
            }
            let mut response = QueryResponse::new(fields, futures::stream::iter(rows));
            response.set_command_tag("FETCH");
            Ok(Response::Query(response))
        }
        SubscribeStatement::Stream(plan) if max_rows > 0 => {
            // An Execute that asks for `max_rows` rows at a time (pgjdbc's fetch size,
            // tokio-postgres' `query_portal`): pgwire keeps the rows in the portal and
            // answers each Execute with that many and PortalSuspended. Streaming here
            // instead would never end the Execute, and the driver never returns a row.
            let rows = start(plan)?;
            let options = session.format(&*client);
            let fields = results::fields(plan.schema(), format, &options)?;
            let limit = shared.limits.timeout;
            let encode = Arc::clone(&fields);
            let batches = futures::stream::unfold(Some((rows, cancel)), move |state| {
                let fields = Arc::clone(&encode);
                async move {
                    let (mut rows, cancel) = state?;
                    let batch = within(limit, started, &cancel, next_batch(&mut rows)).await;
                    Some(match batch {
                        Ok(batch) => (
                            encode_recordbatch(fields, batch).collect::<Vec<_>>(),
                            Some((rows, cancel)),
                        ),
                        // The error is the last row: the subscription is over.
                        Err(error) => (vec![Err(error)], None),
                    })
                }
            });
            let rows = batches.flat_map(futures::stream::iter);
            Ok(Response::Query(QueryResponse::new(fields, rows)))
        }
        SubscribeStatement::Stream(plan) => {
            let mut rows = start_shared(plan)?;
            let options = session.format(&*client);
            let fields = results::fields(plan.schema(), format, &options)?;
            if describe {
                client
                    .send(PgWireBackendMessage::RowDescription(RowDescription::new(
                        fields.iter().map(Into::into).collect(),
                    )))
                    .await?;
            }
            loop {
                let batch = guarded(shared, started, &cancel, next_rows(&mut rows)).await?;
                let encoded = batch.encoded(&fields, |rows| data_rows(&fields, rows));
                for row in encoded.as_ref().as_ref().map_err(|e| encoding_error(e))? {
                    client
                        .feed(PgWireBackendMessage::DataRow(row.clone()))
                        .await?;
                }
                client.flush().await?;
            }
        }
        SubscribeStatement::Copy(plan) => {
            let mut rows = start_shared(plan)?;
            let options = session.format(&*client);
            let fields = results::fields(plan.schema(), &Format::UnifiedText, &options)?;
            let columns = fields.len();
            client
                .send(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
                    0,
                    columns as i16,
                    vec![0; columns],
                )))
                .await?;
            loop {
                let batch = guarded(shared, started, &cancel, next_rows(&mut rows)).await?;
                let encoded = batch.encoded(&fields, |rows| copy_lines(&fields, rows));
                for line in encoded.as_ref().as_ref().map_err(|e| encoding_error(e))? {
                    client
                        .feed(PgWireBackendMessage::CopyData(CopyData::new(line.clone())))
                        .await?;
                }
                client.flush().await?;
            }
        }
    }
}

/// Rows the subscribers of one query share, encoded once (see
/// `SubscriptionRows::encoded`); an error is kept as its message.
type Encoded<T> = Result<Vec<T>, String>;

fn encoding_error(message: &str) -> PgWireError {
    error_with_code("XX000", message.to_string()) // internal_error
}

/// `batch` as DataRows in the formats of `fields`.
fn data_rows(fields: &Arc<Vec<FieldInfo>>, batch: &RecordBatch) -> Encoded<DataRow> {
    encode_recordbatch(Arc::clone(fields), batch.clone())
        .map(|row| row.map_err(|e| e.to_string()))
        .collect()
}

/// `batch` as COPY text lines, one per row, slices of one buffer.
fn copy_lines(fields: &Arc<Vec<FieldInfo>>, batch: &RecordBatch) -> Encoded<Bytes> {
    let mut buffer = BytesMut::new();
    let mut ends = Vec::with_capacity(batch.num_rows());
    for row in encode_recordbatch(Arc::clone(fields), batch.clone()) {
        copy_text_line(&row.map_err(|e| e.to_string())?, &mut buffer);
        ends.push(buffer.len());
    }
    let buffer = buffer.freeze();
    let mut start = 0;
    Ok(ends
        .into_iter()
        .map(|end| {
            let line = buffer.slice(start..end);
            start = end;
            line
        })
        .collect())
}

fn subscribe_error(error: SubscribeError) -> PgWireError {
    user_error(&SqlError::Subscribe(error))
}

fn stream_error(error: DataFusionError) -> PgWireError {
    results::datafusion_error(&error)
}

/// The next batch of a subscription's rows with any.
async fn next_rows(
    rows: &mut BoxStream<'static, Result<SubscriptionRows, DataFusionError>>,
) -> PgWireResult<SubscriptionRows> {
    loop {
        match rows.next().await {
            Some(Ok(batch)) if batch.rows.num_rows() == 0 => continue,
            Some(Ok(batch)) => return Ok(batch),
            Some(Err(error)) => return Err(stream_error(error)),
            None => return Err(source_dropped()),
        }
    }
}

fn source_dropped() -> PgWireError {
    error_with_code(
        "57014", // query_canceled
        "the subscription ended: its source was dropped".into(),
    )
}

/// The next batch with rows.
async fn next_batch(rows: &mut SendableRecordBatchStream) -> PgWireResult<RecordBatch> {
    loop {
        match rows.next().await {
            Some(Ok(batch)) if batch.num_rows() == 0 => continue,
            Some(Ok(batch)) => return Ok(batch),
            Some(Err(error)) => return Err(stream_error(error)),
            None => return Err(source_dropped()),
        }
    }
}

/// Up to `count` rows of `cursor`: waits up to `timeout` for the first, then takes
/// what is ready.
async fn fetch(
    cursor: &mut SubscriptionCursor,
    count: u64,
    timeout: Option<Duration>,
) -> PgWireResult<Vec<RecordBatch>> {
    if cursor.pending.is_empty() && count > 0 {
        let first = match timeout {
            None => Some(next_batch(&mut cursor.rows).await?),
            Some(timeout) if timeout.is_zero() => None,
            Some(timeout) => {
                match tokio::time::timeout(timeout, next_batch(&mut cursor.rows)).await {
                    Ok(batch) => Some(batch?),
                    Err(_) => None,
                }
            }
        };
        cursor.pending.extend(first);
    }
    let mut taken = Vec::new();
    let mut left = count;
    while left > 0 {
        let batch = match cursor.pending.pop_front() {
            Some(batch) => batch,
            None => match cursor.rows.next().now_or_never() {
                Some(Some(Ok(batch))) => batch,
                Some(Some(Err(error))) => return Err(stream_error(error)),
                // Nothing more ready (or the stream ended: the next FETCH says so).
                Some(None) | None => break,
            },
        };
        let rows = batch.num_rows() as u64;
        if rows > left {
            let keep = left as usize;
            cursor
                .pending
                .push_front(batch.slice(keep, batch.num_rows() - keep));
            taken.push(batch.slice(0, keep));
            break;
        }
        left -= rows;
        taken.push(batch);
    }
    Ok(taken)
}

/// `work`, ended by a cancel request or the statement time limit from `started`.
async fn guarded<T>(
    shared: &Shared,
    started: Instant,
    cancel: &QueryCancel,
    work: impl Future<Output = PgWireResult<T>>,
) -> PgWireResult<T> {
    within(shared.limits.timeout, started, cancel, work).await
}

/// `work`, ended by a cancel request or when `limit` has passed since `started`.
async fn within<T>(
    limit: Option<Duration>,
    started: Instant,
    cancel: &QueryCancel,
    work: impl Future<Output = PgWireResult<T>>,
) -> PgWireResult<T> {
    let cancelled_now = futures::future::poll_fn(|cx| {
        if cancel.register_and_check(cx) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    });
    let deadline = async {
        match limit {
            Some(timeout) => tokio::time::sleep_until(started + timeout).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        result = work => result,
        () = cancelled_now => Err(cancelled()),
        () = deadline => Err(timed_out()),
    }
}

/// Appends a row in COPY's text format to `line`: its text-format fields,
/// tab-separated, `\N` for NULL, backslash, tab and line breaks escaped, ended by a
/// newline.
fn copy_text_line(row: &DataRow, line: &mut BytesMut) {
    let data = &row.data[..];
    line.reserve(data.len() + 8);
    let mut at = 0;
    for field in 0..row.field_count {
        if field > 0 {
            line.put_u8(b'\t');
        }
        let Some(length) = data.get(at..at + 4) else {
            break;
        };
        let length = i32::from_be_bytes([length[0], length[1], length[2], length[3]]);
        at += 4;
        if length < 0 {
            line.put_slice(b"\\N");
            continue;
        }
        let end = (at + length as usize).min(data.len());
        // Runs of plain bytes are copied whole: most fields have nothing to escape.
        let field = &data[at..end];
        let mut plain_from = 0;
        for (i, &byte) in field.iter().enumerate() {
            let escaped: &[u8] = match byte {
                b'\\' => b"\\\\",
                b'\t' => b"\\t",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                _ => continue,
            };
            line.put_slice(&field[plain_from..i]);
            line.put_slice(escaped);
            plain_from = i + 1;
        }
        line.put_slice(&field[plain_from..]);
        at = end;
    }
    line.put_u8(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(fields: &[Option<&str>]) -> DataRow {
        let mut data = BytesMut::new();
        for field in fields {
            match field {
                None => data.put_i32(-1),
                Some(text) => {
                    data.put_i32(text.len() as i32);
                    data.put_slice(text.as_bytes());
                }
            }
        }
        DataRow::new(data, fields.len() as i16)
    }

    #[test]
    fn copy_lines_escape_and_mark_nulls() {
        let mut line = BytesMut::from(&b"before\n"[..]);
        copy_text_line(&row(&[Some("0"), None, Some("a\tb\\c\nd")]), &mut line);
        assert_eq!(&line[..], b"before\n0\t\\N\ta\\tb\\\\c\\nd\n");
    }
}

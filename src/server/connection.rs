//! One client connection from its first byte to its close: TLS, login within the
//! authentication timeout, then messages until the client leaves, the session sits
//! idle too long, or a message breaks the protocol.
//!
//! This is pgwire's `process_socket` loop, taken over because of what it cannot do:
//! * it decodes straight from the socket, so malformed messages reach decoders that
//!   panic; here every message first passes [`frames`](super::frames) and reaches
//!   pgwire's codec alone;
//! * its only timeout is a fixed 60 s for startup, with nothing for idle sessions;
//!   here login must finish within `authentication_timeout` (TLS handshake
//!   included) and an idle session ends after `idle_session_timeout`;
//! * a decode error closes the socket without a word; here the client gets
//!   FATAL 08P01 first, as from PostgreSQL;
//! * a non-FATAL error during login would leave the connection in its
//!   ready-for-query state; here any error before login ends the connection.
//!
//! Everything else is pgwire's own code: `negotiate_tls` for the SSLRequest and the
//! handshake, `process_message` and `process_error` for each message, so the
//! handlers see exactly what they saw under `process_socket`.

use super::frames::{self, Phase};
use super::slots::Ticket;
use super::KtableHandlers;
use bytes::BytesMut;
use datafusion_postgres::pgwire::api::PgWireServerHandlers;
use datafusion_postgres::pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError};
use datafusion_postgres::pgwire::messages::response::TransactionStatus;
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use datafusion_postgres::pgwire::tokio::server::{
    negotiate_tls, process_error, process_message, MaybeTls, PgWireMessageServerCodec,
};
use datafusion_postgres::pgwire::tokio::TlsAcceptor;
use futures::SinkExt;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_util::codec::{Decoder, Framed};

/// The longest a last error message may take to send before the socket is closed
/// anyway (a client that does not read must not keep its task).
const FAREWELL: Duration = Duration::from_secs(2);

/// How long a connection may take to log in, and to sit idle once logged in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// From accept to logged in (PostgreSQL's `authentication_timeout`).
    pub(crate) authentication: Duration,
    /// Waiting for the next statement outside a transaction (PostgreSQL's
    /// `idle_session_timeout`); `None`: forever.
    pub(crate) idle_session: Option<Duration>,
    /// Refuse sessions that did not negotiate TLS.
    pub(crate) require_tls: bool,
}

/// Room made in the read buffer before each read (tokio-util's `Framed` uses the same).
const READ_CHUNK: usize = 8 * 1024;

type Socket<S> = Framed<MaybeTls, PgWireMessageServerCodec<S>>;

/// Why the wait for the next message ended without one.
enum Interrupted {
    Violation(frames::Violation),
    LoginTimeout,
    IdleTimeout,
    ShuttingDown,
    Io(io::Error),
}

/// Serves one accepted socket until it closes.
pub(crate) async fn serve(
    tcp: TcpStream,
    tls: Option<TlsAcceptor>,
    handlers: Arc<KtableHandlers>,
    mut ticket: Ticket,
    timeouts: Timeouts,
    mut stopping: watch::Receiver<bool>,
) -> io::Result<()> {
    let login_deadline = Instant::now() + timeouts.authentication;
    let Ok(negotiated) = timeout_at(login_deadline, negotiate_tls(tcp, tls)).await else {
        return Ok(());
    };
    // `None`: a direct TLS handshake without TLS configured.
    let Some(negotiated) = negotiated? else {
        return Ok(());
    };
    // Take over what pgwire's negotiation read ahead, so that every byte from here
    // on passes the frame checks.
    let parts = negotiated.into_parts();
    let mut pending = parts.read_buf;
    let mut socket: Socket<_> = Framed::new(parts.io, parts.codec);
    if socket.is_secure() && !pending.is_empty() {
        // Bytes sent in the clear after the SSLRequest would be taken as if they had
        // come through TLS (PostgreSQL's CVE-2021-23214).
        let info = fatal("08P01", "received unencrypted data after SSL request");
        return close_with(&mut socket, info).await;
    }

    let startup = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let extended = handlers.extended_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    let errors = handlers.error_handler();
    let mut sasl_messages = 0usize;
    // Whether the last thing sent was ReadyForQuery: only then is the session idle.
    let mut ready = false;
    loop {
        let logged_in = !matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let phase = match socket.state() {
            PgWireConnectionState::AwaitingStartup => Phase::Startup,
            PgWireConnectionState::AuthenticationInProgress if sasl_messages == 0 => {
                Phase::SaslInitial
            }
            PgWireConnectionState::AuthenticationInProgress => Phase::Sasl,
            _ => Phase::Ready,
        };
        let idle = ready
            && matches!(socket.state(), PgWireConnectionState::ReadyForQuery)
            && socket.transaction_status() == TransactionStatus::Idle;
        let deadline = if !logged_in {
            Some((login_deadline, Interrupted::LoginTimeout))
        } else {
            timeouts
                .idle_session
                .filter(|_| idle)
                .map(|idle| (Instant::now() + idle, Interrupted::IdleTimeout))
        };
        // The server is shutting down: this session's statement (if any) has
        // finished, and no other starts.
        let next = tokio::select! {
            next = read_frame(&mut socket, &mut pending, phase, deadline) => next,
            _ = stopping.wait_for(|stop| *stop) => Err(Interrupted::ShuttingDown),
        };
        let mut frame = match next {
            Ok(Some(frame)) => frame,
            Ok(None) => return Ok(()),
            Err(Interrupted::Violation(violation)) => {
                return close_with(&mut socket, fatal("08P01", violation.0)).await
            }
            Err(Interrupted::LoginTimeout) if phase == Phase::Startup => return Ok(()),
            Err(Interrupted::LoginTimeout) => {
                // 57014 query_canceled, as PostgreSQL's authentication_timeout.
                let info = fatal("57014", "canceling authentication due to timeout");
                return close_with(&mut socket, info).await;
            }
            Err(Interrupted::IdleTimeout) => {
                let info = fatal(
                    "57P05", // idle_session_timeout
                    "terminating connection due to idle-session timeout",
                );
                return close_with(&mut socket, info).await;
            }
            Err(Interrupted::ShuttingDown) => {
                let info = fatal(
                    "57P01", // admin_shutdown
                    "terminating connection due to administrator command",
                );
                return close_with(&mut socket, info).await;
            }
            Err(Interrupted::Io(error)) => return Err(error),
        };
        let message = match socket.codec_mut().decode(&mut frame) {
            Ok(Some(message)) => message,
            Ok(None) => return close_with(&mut socket, fatal("08P01", "incomplete message")).await,
            Err(error) => {
                let mut info = ErrorInfo::from(error);
                info.severity = "FATAL".into();
                return close_with(&mut socket, info).await;
            }
        };

        match &message {
            PgWireFrontendMessage::Terminate(_) => return Ok(()),
            PgWireFrontendMessage::Startup(_) => {
                if timeouts.require_tls && !socket.is_secure() {
                    // 28000 invalid_authorization_specification, as PostgreSQL's
                    // pg_hba.conf refusal of a non-SSL connection to a hostssl line.
                    let info = fatal(
                        "28000",
                        format!(
                            "connection from {} refused: the server requires TLS (sslmode=require)",
                            socket.socket_addr().ip()
                        ),
                    );
                    return close_with(&mut socket, info).await;
                }
                if let Err(refusal) = ticket.start_session() {
                    handlers.metrics().connection_refused();
                    // 53300 too_many_connections
                    return close_with(&mut socket, fatal("53300", refusal.message())).await;
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(_) => sasl_messages += 1,
            _ => {}
        }
        let is_cancel = matches!(message, PgWireFrontendMessage::CancelRequest(_));
        let waits_for_sync = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        let answered_with_ready = matches!(
            message,
            PgWireFrontendMessage::Query(_) | PgWireFrontendMessage::Sync(_)
        );
        let processing = process_message(
            message,
            &mut socket,
            Arc::clone(&startup),
            Arc::clone(&simple),
            Arc::clone(&extended),
            Arc::clone(&copy),
            Arc::clone(&cancel),
        );
        let result = if logged_in {
            processing.await
        } else {
            // A client that stops reading must not stretch its login past the deadline.
            match timeout_at(login_deadline, processing).await {
                Ok(result) => result,
                Err(_) => return Ok(()),
            }
        };
        if is_cancel {
            // A cancel request comes on a connection of its own, closed once served.
            return Ok(());
        }
        if let Err(mut error) = result {
            errors.on_error(&socket, &mut error);
            let mut info = ErrorInfo::from(error);
            if !logged_in {
                // pgwire leaves a connection whose login failed with a non-FATAL error
                // ready for queries; no error before login may do that.
                info.severity = "FATAL".into();
            }
            if info.is_fatal() {
                return close_with(&mut socket, info).await;
            }
            process_error(
                &mut socket,
                PgWireError::UserError(Box::new(info)),
                waits_for_sync,
            )
            .await?;
            ready = !waits_for_sync;
            continue;
        }
        if !logged_in && matches!(socket.state(), PgWireConnectionState::ReadyForQuery) {
            ticket.logged_in();
            ready = true;
        } else {
            ready = answered_with_ready;
        }
    }
}

/// Reads until `pending` holds one whole message for `phase`, or `deadline` passes.
async fn read_frame<S>(
    socket: &mut Socket<S>,
    pending: &mut BytesMut,
    phase: Phase,
    deadline: Option<(Instant, Interrupted)>,
) -> Result<Option<BytesMut>, Interrupted> {
    match deadline {
        None => read_whole_frame(socket, pending, phase).await,
        Some((deadline, expired)) => timeout_at(deadline, read_whole_frame(socket, pending, phase))
            .await
            .unwrap_or(Err(expired)),
    }
}

async fn read_whole_frame<S>(
    socket: &mut Socket<S>,
    pending: &mut BytesMut,
    phase: Phase,
) -> Result<Option<BytesMut>, Interrupted> {
    loop {
        if let Some(frame) = frames::next_frame(pending, phase).map_err(Interrupted::Violation)? {
            return Ok(Some(frame));
        }
        pending.reserve(READ_CHUNK);
        // End of file: a half-sent message is dropped with the connection.
        if socket
            .get_mut()
            .read_buf(pending)
            .await
            .map_err(Interrupted::Io)?
            == 0
        {
            return Ok(None);
        }
    }
}

/// A FATAL error with SQLSTATE `code`.
fn fatal(code: &str, message: impl Into<String>) -> ErrorInfo {
    ErrorInfo::new("FATAL".into(), code.into(), message.into())
}

/// Sends `info` and closes the connection.
async fn close_with<S>(socket: &mut Socket<S>, info: ErrorInfo) -> io::Result<()> {
    tracing::debug!(
        code = %info.code,
        message = %info.message,
        peer = %socket.socket_addr(),
        "connection closed with an error"
    );
    let farewell = async {
        socket
            .send(PgWireBackendMessage::ErrorResponse(info.into()))
            .await?;
        socket.close().await
    };
    timeout(FAREWELL, farewell).await.unwrap_or(Ok(()))
}

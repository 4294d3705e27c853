//! A copy of a connection's state that a statement can take to another thread.
//!
//! datafusion-postgres's handlers take the connection (`&mut C`) to read the
//! session's settings (statement timeout, date and float formats) and, for session
//! statements (`SET`, cursors, transactions), to answer on it. A DataFusion statement
//! runs on the query runtime, away from the connection's task, so it is handed this
//! instead: the connection's identity and settings as they were when the statement
//! started, an empty cursor store, and a sink that drops what is sent to it. Only
//! statements that do not answer on the connection are run this way (see
//! `session::runs_on_connection`).

use super::client_view::DfStatement;
use datafusion_postgres::pgwire::api::portal::Portal;
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::api::store::MemPortalStore;
use datafusion_postgres::pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireConnectionState, SessionExtensions,
};
use datafusion_postgres::pgwire::error::PgWireError;
use datafusion_postgres::pgwire::error::PgWireResult;
use datafusion_postgres::pgwire::messages::response::TransactionStatus;
use datafusion_postgres::pgwire::messages::startup::SecretKey;
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, ProtocolVersion};
use datafusion_postgres::DfSessionService;
use futures::Sink;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A connection's state, detached from the connection.
pub(crate) struct DetachedClient {
    socket_addr: SocketAddr,
    is_secure: bool,
    protocol_version: ProtocolVersion,
    pid_and_secret_key: (i32, SecretKey),
    state: PgWireConnectionState,
    transaction_status: TransactionStatus,
    metadata: HashMap<String, String>,
    extensions: SessionExtensions,
    statements: MemPortalStore<DfStatement>,
}

impl DetachedClient {
    /// `client`'s state as it is now.
    pub(crate) fn of<C: ClientInfo>(client: &C) -> Self {
        Self {
            socket_addr: client.socket_addr(),
            is_secure: client.is_secure(),
            protocol_version: client.protocol_version(),
            pid_and_secret_key: client.pid_and_secret_key(),
            state: client.state(),
            transaction_status: client.transaction_status(),
            metadata: client.metadata().clone(),
            extensions: SessionExtensions::new(),
            statements: MemPortalStore::new(),
        }
    }
}

/// Runs one statement of the simple protocol on `service` with `client`.
// Free functions, not inline in the handlers: inside their generic methods the
// compiler resolves the `Sink` error bound to the handler's client type, not this one.
pub(crate) async fn simple_query(
    service: Arc<DfSessionService>,
    mut client: DetachedClient,
    sql: String,
) -> PgWireResult<Response> {
    let mut results = SimpleQueryHandler::do_query(&*service, &mut client, &sql).await?;
    // One statement of a script: one result.
    Ok(results.pop().unwrap_or(Response::EmptyQuery))
}

/// Executes a bound portal of the extended protocol on `service` with `client`.
pub(crate) async fn execute_portal(
    service: Arc<DfSessionService>,
    mut client: DetachedClient,
    portal: Portal<DfStatement>,
    max_rows: usize,
) -> PgWireResult<Response> {
    ExtendedQueryHandler::do_query(&*service, &mut client, &portal, max_rows).await
}

impl ClientPortalStore for DetachedClient {
    type PortalStore = MemPortalStore<DfStatement>;

    fn portal_store(&self) -> &Self::PortalStore {
        &self.statements
    }
}

impl Sink<PgWireBackendMessage> for DetachedClient {
    type Error = PgWireError;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: PgWireBackendMessage) -> Result<(), Self::Error> {
        // Statements run detached do not answer on the connection; if one ever does,
        // it is a bug to see in the logs rather than a message sent out of order.
        tracing::warn!(?item, "message from a detached statement dropped");
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

impl ClientInfo for DetachedClient {
    fn socket_addr(&self) -> SocketAddr {
        self.socket_addr
    }

    fn is_secure(&self) -> bool {
        self.is_secure
    }

    fn protocol_version(&self) -> ProtocolVersion {
        self.protocol_version
    }

    fn set_protocol_version(&mut self, version: ProtocolVersion) {
        self.protocol_version = version;
    }

    fn pid_and_secret_key(&self) -> (i32, SecretKey) {
        self.pid_and_secret_key.clone()
    }

    fn set_pid_and_secret_key(&mut self, pid: i32, secret_key: SecretKey) {
        self.pid_and_secret_key = (pid, secret_key);
    }

    fn state(&self) -> PgWireConnectionState {
        self.state
    }

    fn set_state(&mut self, new_state: PgWireConnectionState) {
        self.state = new_state;
    }

    fn transaction_status(&self) -> TransactionStatus {
        self.transaction_status
    }

    fn set_transaction_status(&mut self, new_status: TransactionStatus) {
        self.transaction_status = new_status;
    }

    fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut HashMap<String, String> {
        &mut self.metadata
    }

    fn session_extensions(&self) -> &SessionExtensions {
        &self.extensions
    }

    fn sni_server_name(&self) -> Option<&str> {
        None
    }

    fn client_certificates<'a>(&self) -> Option<&[rustls_pki_types::CertificateDer<'a>]> {
        None
    }
}

//! Views of a connection that change one thing about it and pass the rest through:
//! [`DfClient`] (the statement store datafusion-postgres expects) and
//! [`BufferedClient`] (replies held until the client's Sync or Flush).

use datafusion_postgres::pgwire::api::store::MemPortalStore;
use datafusion_postgres::pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireConnectionState, SessionExtensions,
};
use datafusion_postgres::pgwire::messages::response::TransactionStatus;
use datafusion_postgres::pgwire::messages::startup::SecretKey;
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, ProtocolVersion};
use futures::Sink;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// What datafusion-postgres's cursor hook keeps for a cursor's statement.
pub(crate) type DfStatement = (
    String,
    Option<(
        datafusion::sql::sqlparser::ast::Statement,
        datafusion::logical_expr::LogicalPlan,
    )>,
);

/// The connection as datafusion-postgres's session hooks need to see it: everything
/// is the real connection's except the statement store. The connection's own store
/// holds ktable's statements; the hooks' SQL cursors (`DECLARE`/`FETCH`) live in a
/// store of their own type, which they downcast to (and panic if it is not). That store is
/// kept per connection in the session extensions, so cursors outlive a statement.
pub(crate) type DfClient<'a, C> = ClientView<'a, C, Arc<MemPortalStore<DfStatement>>>;

/// The connection with its replies held in its write buffer until the client's Sync
/// or Flush: pgwire flushes after ParseComplete, BindComplete and CommandComplete
/// each, which costs a `send` and a wake-up of the client per message, three per
/// prepared execution where PostgreSQL's one reply is enough (the protocol only asks
/// for output at Sync or Flush). The write buffer still drains by itself when it fills.
pub(crate) type BufferedClient<'a, C> = ClientView<'a, C, OwnStore>;

/// A connection `C` with `S` as its statement store and, when `flush` is false,
/// flushes left to the caller.
pub(crate) struct ClientView<'a, C, S> {
    inner: &'a mut C,
    statements: S,
    flush: bool,
}

/// The viewed connection's own statement store.
pub(crate) struct OwnStore;

impl<'a, C: ClientInfo> DfClient<'a, C> {
    pub(crate) fn new(inner: &'a mut C) -> Self {
        let statements = inner
            .session_extensions()
            .get_or_insert_with(MemPortalStore::<DfStatement>::new);
        Self {
            inner,
            statements,
            flush: true,
        }
    }
}

impl<'a, C> BufferedClient<'a, C> {
    pub(crate) fn new(inner: &'a mut C) -> Self {
        Self {
            inner,
            statements: OwnStore,
            flush: false,
        }
    }
}

impl<C> ClientPortalStore for DfClient<'_, C> {
    type PortalStore = MemPortalStore<DfStatement>;

    fn portal_store(&self) -> &Self::PortalStore {
        &self.statements
    }
}

impl<C: ClientPortalStore> ClientPortalStore for BufferedClient<'_, C> {
    type PortalStore = C::PortalStore;

    fn portal_store(&self) -> &Self::PortalStore {
        self.inner.portal_store()
    }
}

impl<C: Sink<PgWireBackendMessage> + Unpin, S: Unpin> Sink<PgWireBackendMessage>
    for ClientView<'_, C, S>
{
    type Error = C::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.inner).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: PgWireBackendMessage) -> Result<(), Self::Error> {
        Pin::new(&mut *self.inner).start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.flush {
            Pin::new(&mut *self.inner).poll_flush(cx)
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.inner).poll_close(cx)
    }
}

impl<C: ClientInfo, S> ClientInfo for ClientView<'_, C, S> {
    fn socket_addr(&self) -> SocketAddr {
        self.inner.socket_addr()
    }

    fn is_secure(&self) -> bool {
        self.inner.is_secure()
    }

    fn protocol_version(&self) -> ProtocolVersion {
        self.inner.protocol_version()
    }

    fn set_protocol_version(&mut self, version: ProtocolVersion) {
        self.inner.set_protocol_version(version)
    }

    fn pid_and_secret_key(&self) -> (i32, SecretKey) {
        self.inner.pid_and_secret_key()
    }

    fn set_pid_and_secret_key(&mut self, pid: i32, secret_key: SecretKey) {
        self.inner.set_pid_and_secret_key(pid, secret_key)
    }

    fn state(&self) -> PgWireConnectionState {
        self.inner.state()
    }

    fn set_state(&mut self, new_state: PgWireConnectionState) {
        self.inner.set_state(new_state)
    }

    fn transaction_status(&self) -> TransactionStatus {
        self.inner.transaction_status()
    }

    fn set_transaction_status(&mut self, new_status: TransactionStatus) {
        self.inner.set_transaction_status(new_status)
    }

    fn metadata(&self) -> &HashMap<String, String> {
        self.inner.metadata()
    }

    fn metadata_mut(&mut self) -> &mut HashMap<String, String> {
        self.inner.metadata_mut()
    }

    fn session_extensions(&self) -> &SessionExtensions {
        self.inner.session_extensions()
    }

    fn sni_server_name(&self) -> Option<&str> {
        self.inner.sni_server_name()
    }

    fn client_certificates<'a>(&self) -> Option<&[rustls_pki_types::CertificateDer<'a>]> {
        self.inner.client_certificates()
    }
}

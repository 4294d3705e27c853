//! Accepting connections: each runs on its own task, so a slow or broken client
//! affects only itself. Who may stay, and for how long, is decided by the
//! connection's [`Ticket`](super::slots::Ticket) and [`Timeouts`]. Every connection
//! task is tracked, so that shutdown can wait for them and then end them.

use super::connection::{self, Timeouts};
use super::connection_threads::ConnectionThreads;
use super::slots::Slots;
use super::{KtableHandlers, ServerConfig, ServerError};
use datafusion_postgres::pgwire::tokio::TlsAcceptor;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The psql command that connects to the server listening on `address`: said once
/// the listener is bound, so that it names the port the system chose for port 0.
fn psql_hint(address: SocketAddr, config: &ServerConfig, tls: bool) -> String {
    let host = if address.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        address.ip().to_string()
    };
    let user = config.users.first().map_or("ktable", |u| u.name.as_str());
    let ssl = if tls { " sslmode=require" } else { "" };
    format!(
        "psql \"host={host} port={} user={user} dbname=ktable{ssl}\"",
        address.port()
    )
}

/// Accepts connections until `stopping` turns true, then waits up to the shutdown
/// grace period for the connections to end and ends the rest.
pub(crate) async fn run(
    handlers: Arc<KtableHandlers>,
    config: &ServerConfig,
    tls: Option<TlsAcceptor>,
    threads: &ConnectionThreads,
    mut stopping: watch::Receiver<bool>,
) -> Result<(), ServerError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| ServerError::Listen {
            address: config.listen,
            reason: e.to_string(),
        })?;
    // The port chosen, when asked for port 0.
    let address = listener.local_addr().unwrap_or(config.listen);
    tracing::info!(
        %address,
        tls = tls.is_some(),
        authentication = if config.users.is_empty() { "none" } else { "scram-sha-256" },
        max_connections = config.max_connections,
        max_connections_per_address = config.max_connections_per_address,
        authentication_timeout = ?config.authentication_timeout,
        idle_session_timeout = ?config.idle_session_timeout,
        "accepting PostgreSQL connections. Connect with:  {}",
        psql_hint(address, config, tls.is_some())
    );
    let slots = Slots::new(config.max_connections, config.max_connections_per_address);
    let timeouts = Timeouts {
        authentication: config.authentication_timeout,
        idle_session: config.idle_session_timeout,
        require_tls: config.require_tls,
    };
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.wait_for(|stop| *stop) => break,
            // Reap ended connections as they go, so the set stays as large as the
            // connections open.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (socket, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(ticket) = slots.admit(peer.ip()) else {
            handlers.metrics().connection_refused();
            tracing::warn!(%peer, "connection closed: over every connection limit");
            continue;
        };
        let open = handlers.metrics().connection_opened();
        let handlers = Arc::clone(&handlers);
        let tls = tls.clone();
        let stopping = stopping.clone();
        // The socket moves to the connection thread's own reactor.
        let socket = match socket.into_std() {
            Ok(socket) => socket,
            Err(error) => {
                tracing::warn!(%peer, %error, "cannot hand a connection to its thread");
                continue;
            }
        };
        threads.spawn(&mut connections, async move {
            let _open = open;
            let socket = match TcpStream::from_std(socket) {
                Ok(socket) => socket,
                Err(error) => {
                    tracing::warn!(%peer, %error, "cannot register a connection");
                    return;
                }
            };
            if let Err(error) =
                connection::serve(socket, tls, handlers, ticket, timeouts, stopping).await
            {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let open = connections.len();
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "closing connections whose statements outlived the shutdown grace period"
        );
        connections.shutdown().await;
    }
    tracing::info!(connections = open, "all connections closed");
    Ok(())
}

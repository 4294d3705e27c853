//! Accepting connections: each runs on its own task, so a slow or broken client
//! affects only itself.

use super::{KtableHandlers, ServerConfig, ServerError};
use datafusion_postgres::pgwire::tokio::{process_socket, TlsAcceptor};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub(crate) async fn run(
    handlers: Arc<KtableHandlers>,
    config: &ServerConfig,
    tls: Option<TlsAcceptor>,
) -> Result<(), ServerError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| ServerError::Listen {
            address: config.listen,
            reason: e.to_string(),
        })?;
    tracing::info!(
        address = %config.listen,
        tls = tls.is_some(),
        authentication = if config.users.is_empty() { "none" } else { "scram-sha-256" },
        "accepting PostgreSQL connections"
    );
    let slots =
        (config.max_connections > 0).then(|| Arc::new(Semaphore::new(config.max_connections)));
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let permit = match &slots {
            None => None,
            Some(slots) => match Arc::clone(slots).try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    tracing::warn!(%peer, max = config.max_connections, "connection refused: too many connections");
                    continue;
                }
            },
        };
        let handlers = Arc::clone(&handlers);
        let tls = tls.clone();
        tokio::spawn(async move {
            if let Err(error) = process_socket(socket, tls, handlers).await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            drop(permit);
        });
    }
}

//! The PostgreSQL wire-protocol front end: `psql`, drivers and BI tools query the
//! engine's tables and streams.
//!
//! Queries, prepared statements, `pg_catalog` and the `SET`/`SHOW`/transaction
//! statements drivers send are datafusion-postgres's (over pgwire). ktable adds its own
//! source DDL on the simple-query path (`CREATE TABLE ... WITH (topic = ...)`,
//! `CREATE STREAM`, `DROP`), which DataFusion's parser would reject or misread, and maps
//! its errors to SQLSTATE codes.
//!
//! There is no authentication yet, so the server refuses to listen on anything but a
//! loopback address.

mod catalog;
mod handlers;

use crate::sql::Engine;
use datafusion_postgres::ServerOptions;
use std::net::SocketAddr;
use std::sync::Arc;

pub use handlers::{sqlstate, KtableHandlers};

/// Where and how the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The address to listen on; must be a loopback address until authentication exists.
    pub listen: SocketAddr,
    /// Connections served at once; more are refused (0: no limit).
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5433)),
            max_connections: 256,
        }
    }
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address is not allowed or not usable.
    #[error("cannot listen on {address}: {reason}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The catalog for clients could not be set up.
    #[error("cannot set up pg_catalog: {0}")]
    Catalog(String),
}

/// Serves `engine` until the returned future is dropped or the listener fails.
pub async fn serve(engine: Arc<Engine>, config: &ServerConfig) -> Result<(), ServerError> {
    if !config.listen.ip().is_loopback() {
        return Err(ServerError::Listen {
            address: config.listen,
            reason: "authentication is not built yet, so ktable only listens on loopback addresses"
                .into(),
        });
    }
    let context = Arc::new(engine.context().clone());
    catalog::install(&context)?;
    let options = ServerOptions::new()
        .with_host(config.listen.ip().to_string())
        .with_port(config.listen.port())
        .with_max_connections(config.max_connections);
    let handlers = Arc::new(KtableHandlers::new(engine, context));
    datafusion_postgres::serve_with_handlers(handlers, &options)
        .await
        .map_err(|e| ServerError::Listen {
            address: config.listen,
            reason: e.to_string(),
        })
}

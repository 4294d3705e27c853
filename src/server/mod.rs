//! The PostgreSQL wire protocol over the engine: `psql`, drivers and BI tools query
//! the engine's tables and streams. What a statement is and how it runs is the
//! engine's (`sql::Engine::prepare` / `execute`); this module only speaks the wire.
//!
//! * `listener` — accepts connections, and at shutdown drains them;
//!   `connection_threads` — the single-threaded runtimes, one per core, each
//!   connection lives on; `slots` — how many at once, logging in, and from one
//!   address; `connection` — one connection's TLS, login and idle timeouts;
//!   `frames` — frontend messages checked before pgwire decodes them.
//! * `auth` — SCRAM-SHA-256 users and the read-only role.
//! * `handlers` — what both protocols share; `simple` — the simple-query protocol;
//!   `extended` — Parse/Bind/Execute over `wire_statement`, a prepared statement's
//!   parameter types and field descriptions; `session_statements` — SET, SHOW,
//!   transactions and cursors, answered on the connection; `results` — Arrow rows
//!   encoded for the wire; `subscribe` — `SUBSCRIBE` as cursors, COPY and streamed
//!   rows, flushed as changes come.
//! * `session` — each connection's own DataFusion context (its settings, its memory
//!   budget); `query_runtime` — the threads DataFusion statements run on, apart from
//!   connections and lookups.
//! * `metrics` — connections and statements counted for operators (relaxed
//!   atomics, read when scraped).
//! * `limits`, `cancel` — per-query time limit, result-size cap and cancel requests,
//!   checked while rows stream; `errors` — SQLSTATEs on the wire; `client_view` —
//!   a connection seen with another statement store or without flushes.
//!
//! Without users the server does not authenticate, so it then refuses to listen on
//! anything but a loopback address.

mod auth;
mod cancel;
mod client_view;
mod connection;
mod connection_threads;
mod errors;
mod extended;
mod frames;
mod handlers;
mod limits;
mod listener;
mod metrics;
mod query_runtime;
mod results;
mod session;
mod session_statements;
mod simple;
mod slots;
mod subscribe;
mod tls;
mod wire_statement;

use crate::sql::Engine;
use connection_threads::ConnectionThreads;
use query_runtime::QueryRuntime;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use auth::UserConfig;
pub use handlers::KtableHandlers;
pub use limits::QueryLimits;
pub use metrics::{KindSnapshot, ServerMetrics, StatementLabel, DURATION_BUCKETS};
pub use tls::TlsConfig;

/// The PostgreSQL version ktable reports to clients, whose SQL it mostly speaks.
pub const SERVER_VERSION: &str = "16.6";

/// Where and how the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// Sessions served at once; more are refused with SQLSTATE 53300 (0: no limit).
    pub max_connections: usize,
    /// Connections from one IP address at once, logged in or not (0: no limit);
    /// see [`ServerConfig::default_per_address`].
    pub max_connections_per_address: usize,
    /// How long a connection may take from accept to logged in (TLS handshake
    /// included) before it is closed, as PostgreSQL's `authentication_timeout`.
    pub authentication_timeout: Duration,
    /// How long a logged-in session may wait for its next statement outside a
    /// transaction before it is closed with 57P05, as PostgreSQL's
    /// `idle_session_timeout`; `None`: no limit.
    pub idle_session_timeout: Option<Duration>,
    /// Users who may connect, with SCRAM-SHA-256. Empty: no authentication, which is
    /// only allowed on a loopback address.
    pub users: Vec<UserConfig>,
    /// TLS certificate and key; without, connections are plaintext.
    pub tls: Option<TlsConfig>,
    /// Refuse connections that do not use TLS (as a `hostssl` line in PostgreSQL's
    /// pg_hba.conf), with SQLSTATE 28000; needs `tls`.
    pub require_tls: bool,
    /// How long running statements may take to finish once shutdown begins; then
    /// their connections are closed.
    pub shutdown_grace: Duration,
    /// Per-query time and result-size limits.
    pub limits: QueryLimits,
}

impl ServerConfig {
    /// The default cap on connections from one address: a quarter of
    /// `max_connections` (at least 4), so it takes four hosts to fill the server
    /// while one application server's connection pool still fits; no cap when
    /// `max_connections` is 0.
    pub fn default_per_address(max_connections: usize) -> usize {
        if max_connections == 0 {
            0
        } else {
            (max_connections / 4).max(4)
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5433)),
            max_connections: 256,
            max_connections_per_address: Self::default_per_address(256),
            authentication_timeout: Duration::from_secs(10),
            idle_session_timeout: None,
            users: Vec::new(),
            tls: None,
            require_tls: false,
            shutdown_grace: Duration::from_secs(30),
            limits: QueryLimits::default(),
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
    /// The TLS certificate or key cannot be used.
    #[error("cannot use TLS file {path}: {reason}")]
    Tls {
        /// The certificate or key file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The catalog for clients could not be set up.
    #[error("cannot set up pg_catalog: {0}")]
    Catalog(String),
    /// The threads that run connections or queries could not start.
    #[error("cannot start the server's threads: {0}")]
    Runtime(std::io::Error),
}

/// Serves `engine` until `shutdown` completes (or the listener fails).
///
/// At shutdown the server stops accepting connections, closes idle sessions with
/// SQLSTATE 57P01 as PostgreSQL does, lets running statements finish for up to
/// `shutdown_grace`, then closes what is left, and returns.
///
/// The server starts threads of its own: one per core for connections (each a
/// single-threaded runtime serving the connections given to it) and as many for
/// DataFusion statements. Sources declared over the wire start on the runtime this
/// future runs on, and outlive the server.
pub async fn serve(
    engine: Arc<Engine>,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    serve_counted(engine, config, ServerMetrics::new(), shutdown).await
}

/// [`serve`], counting connections and statements in `metrics` (which the
/// operations endpoint reports).
pub async fn serve_counted(
    engine: Arc<Engine>,
    config: &ServerConfig,
    metrics: Arc<ServerMetrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    if config.users.is_empty() && !config.listen.ip().is_loopback() {
        return Err(ServerError::Listen {
            address: config.listen,
            reason: "without users to authenticate, ktable only listens on loopback addresses"
                .into(),
        });
    }
    if config.require_tls && config.tls.is_none() {
        return Err(ServerError::Listen {
            address: config.listen,
            reason: "require_tls needs a TLS certificate and key".into(),
        });
    }
    let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
    // Sessions copy the engine's context when they start: install first.
    let logins: Vec<String> = config.users.iter().map(|user| user.name.clone()).collect();
    crate::sql::pg_compat::install_with_roles(engine.context(), &logins)
        .map_err(|e| ServerError::Catalog(e.to_string()))?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = Arc::new(QueryRuntime::start(threads).map_err(ServerError::Runtime)?);
    let connection_threads = ConnectionThreads::start(threads).map_err(ServerError::Runtime)?;
    let handlers = Arc::new(KtableHandlers::new(
        engine,
        &config.users,
        config.limits,
        runtime,
        metrics,
    ));
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let serving = listener::run(handlers, config, tls, &connection_threads, stopping);
    tokio::pin!(serving);
    tokio::select! {
        result = &mut serving => return result,
        () = shutdown => {}
    }
    tracing::info!(grace = ?config.shutdown_grace, "shutting down: no new connections");
    let _ = stop.send(true);
    serving.await
}

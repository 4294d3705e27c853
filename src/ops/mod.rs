//! Running ktable in production: one HTTP endpoint for the people and systems
//! that operate it.
//!
//! * `/metrics` — Prometheus text: each source's lag, restore progress, rows,
//!   bytes, counters and freshness; the server's connections, statements and their
//!   durations; the process's memory (`metrics`, `process`).
//! * `/healthz` — 200 while the process serves; `/readyz` — 200 when every declared
//!   source has restored, else 503 naming those that have not (`health`).
//! * `http` — the small HTTP/1 server that answers them.
//!
//! The endpoint only reads: what it reports is what the engine
//! (`Engine::sources`, the same as `ktable_tables`) and the PostgreSQL server
//! (`server::ServerMetrics`) already keep, collected when scraped.

mod health;
mod http;
mod metrics;
mod process;

pub use health::{not_ready, readiness_text, NotReady, Phase};
pub use http::{Endpoint, HEADER_TIMEOUT, MAX_CONNECTIONS};
pub use metrics::{Metrics, CONTENT_TYPE};
pub use process::{memory as process_memory, Memory};

/// Why the operations endpoint could not run.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The address cannot be listened on.
    #[error("cannot serve the HTTP endpoint on {address}: {error}")]
    Bind {
        /// The address.
        address: std::net::SocketAddr,
        /// Why.
        error: std::io::Error,
    },
}

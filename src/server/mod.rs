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

mod handlers;

use crate::sql::Engine;
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{create_udf, ColumnarValue, ScalarUDF, Volatility};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;
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

/// `version()` in PostgreSQL's format, naming ktable and DataFusion after it.
fn version_udf() -> ScalarUDF {
    let version = format!(
        "PostgreSQL 16.6 on {}-linux, ktable {} (Apache DataFusion)",
        std::env::consts::ARCH,
        env!("CARGO_PKG_VERSION")
    );
    create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                version.clone(),
            ))))
        }),
    )
}

/// `to_regtype(name)`: psycopg looks up optional types (SQLAlchemy asks for `hstore`)
/// with it. ktable defines no such types, so the answer is always NULL ("no such
/// type"), which drivers take as the type being absent.
fn to_regtype_udf() -> ScalarUDF {
    create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Int32(None)))),
    )
}

/// `pg_get_serial_sequence(table, column)`: SQLAlchemy asks it for every column it
/// inspects. ktable has no sequences: always NULL.
fn pg_get_serial_sequence_udf() -> ScalarUDF {
    create_udf(
        "pg_get_serial_sequence",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))),
    )
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
    // Drivers parse version() as PostgreSQL's (SQLAlchemy refuses DataFusion's).
    context.register_udf(version_udf());
    context.register_udf(to_regtype_udf());
    context.register_udf(pg_get_serial_sequence_udf());
    // psql's \d commands and BI tools read pg_catalog.
    let has_pg_catalog = context
        .catalog("datafusion")
        .is_some_and(|c| c.schema("pg_catalog").is_some());
    if !has_pg_catalog {
        setup_pg_catalog(&context, "datafusion", EmptyContextProvider)
            .map_err(|e| ServerError::Catalog(e.to_string()))?;
    }
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

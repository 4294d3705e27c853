//! Typed errors of the SQL engine.

use super::ddl::{DdlError, SourceKind};
use crate::source::SourceError;
use datafusion::error::DataFusionError;

/// What can go wrong running SQL on the engine.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// A source statement that is not valid.
    #[error(transparent)]
    Ddl(#[from] DdlError),
    /// DataFusion rejected or failed a query.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// A source could not start (unknown topic, broker unreachable...).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A relation with that name exists already.
    #[error("relation \"{0}\" already exists")]
    AlreadyExists(String),
    /// No source of that kind and name.
    #[error("{kind} \"{name}\" does not exist")]
    NotFound {
        /// What was looked for.
        kind: SourceKind,
        /// The name looked for.
        name: String,
    },
    /// A statement of a SQL file failed.
    #[error("{origin}:{line}: {error}")]
    Script {
        /// The file (or other origin) of the statement.
        origin: String,
        /// The line the statement starts on.
        line: u64,
        /// What went wrong.
        error: Box<SqlError>,
    },
    /// A SQL file could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
}

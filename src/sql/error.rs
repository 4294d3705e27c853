//! Typed errors of the SQL engine.

use super::ddl::{DdlError, SourceKind};
use super::guard::Refusal;
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
    /// The statement was refused before planning (too deep, host access, a setting).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A SQL file could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
}

impl SqlError {
    /// The SQLSTATE PostgreSQL clients see for this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            SqlError::Ddl(DdlError::Syntax(_)) => "42601", // syntax_error
            SqlError::Ddl(DdlError::Invalid(_)) => "42P16", // invalid_table_definition
            SqlError::AlreadyExists(_) => "42P07",         // duplicate_table
            SqlError::NotFound { .. } => "42P01",          // undefined_table
            SqlError::Source(SourceError::TopicNotFound(_)) => "42704", // undefined_object
            SqlError::Source(_) => "58000",                // system_error (Kafka)
            SqlError::DataFusion(error) => datafusion_sqlstate(error),
            SqlError::Script { error, .. } => error.sqlstate(),
            SqlError::Io { .. } => "58030", // io_error
            SqlError::Refused(refusal) => refusal.sqlstate(),
        }
    }
}

/// The SQLSTATE of a DataFusion error: a query over its memory limit fails as
/// PostgreSQL's does when out of memory; the rest are `XX000` (internal_error).
pub fn datafusion_sqlstate(error: &DataFusionError) -> &'static str {
    match error.find_root() {
        DataFusionError::ResourcesExhausted(_) => "53200", // out_of_memory
        _ => "XX000",
    }
}

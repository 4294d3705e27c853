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
    /// A prepared statement's table was dropped, or declared again with other columns,
    /// since the statement was prepared.
    #[error(
        "cached plan must not change result type: table {table} was dropped or declared \
         again since the statement was prepared"
    )]
    PlanChanged {
        /// The table.
        table: String,
    },
    /// The statement is answered by a session's wire front end (a server), not by the
    /// engine: transaction control, cursors, PostgreSQL session settings.
    #[error("{0} is not supported outside a PostgreSQL session")]
    SessionOnly(String),
    /// A statement that the wire front end sent more than one statement for.
    #[error("cannot prepare more than one statement at once")]
    MultipleStatements,
    /// A subscription could not start or go on.
    #[error(transparent)]
    Subscribe(#[from] super::subscribe::SubscribeError),
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
            SqlError::Ddl(DdlError::TooComplex) => "54001", // statement_too_complex
            SqlError::AlreadyExists(_) => "42P07",         // duplicate_table
            SqlError::NotFound { .. } => "42P01",          // undefined_table
            SqlError::Source(SourceError::TopicNotFound(_)) => "42704", // undefined_object
            SqlError::Source(_) => "58000",                // system_error (Kafka)
            SqlError::DataFusion(error) => datafusion_sqlstate(error),
            SqlError::Script { error, .. } => error.sqlstate(),
            SqlError::Io { .. } => "58030", // io_error
            SqlError::Refused(refusal) => refusal.sqlstate(),
            SqlError::PlanChanged { .. } => "0A000", // feature_not_supported, as PostgreSQL
            SqlError::SessionOnly(_) => "0A000",
            SqlError::MultipleStatements => "42601", // syntax_error, as PostgreSQL
            SqlError::Subscribe(error) => error.sqlstate(),
        }
    }
}

/// The SQLSTATE of a DataFusion error, as PostgreSQL reports the same failure: a
/// syntax error, an unknown table or column, an unsupported feature, a query over its
/// memory limit; what has no PostgreSQL counterpart is `XX000` (internal_error).
pub fn datafusion_sqlstate(error: &DataFusionError) -> &'static str {
    use datafusion::common::SchemaError;
    match error.find_root() {
        DataFusionError::ResourcesExhausted(_) => "53200", // out_of_memory
        DataFusionError::SQL(..) => "42601",               // syntax_error
        DataFusionError::SchemaError(schema, _) => match schema.as_ref() {
            SchemaError::FieldNotFound { .. } => "42703", // undefined_column
            SchemaError::AmbiguousReference { .. } => "42702", // ambiguous_column
            SchemaError::DuplicateQualifiedField { .. }
            | SchemaError::DuplicateUnqualifiedField { .. } => "42701", // duplicate_column
        },
        DataFusionError::Plan(message) if message.contains("not found") => "42P01", // undefined_table
        DataFusionError::Plan(_) => "42804", // datatype_mismatch: most plan errors are type errors
        DataFusionError::NotImplemented(_) => "0A000", // feature_not_supported
        DataFusionError::External(inner) => inner
            .downcast_ref::<super::subscribe::SubscribeError>()
            .map_or("XX000", |e| e.sqlstate()),
        DataFusionError::ArrowError(arrow, _) => match arrow.as_ref() {
            arrow::error::ArrowError::DivideByZero => "22012", // division_by_zero
            arrow::error::ArrowError::CastError(_) => "22P02", // invalid_text_representation
            arrow::error::ArrowError::ArithmeticOverflow(_) => "22003", // numeric_value_out_of_range
            _ => "XX000",
        },
        _ => "XX000",
    }
}

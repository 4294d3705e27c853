//! Errors as PostgreSQL clients see them: an ErrorResponse with a SQLSTATE.
//!
//! The codes come from `SqlError::sqlstate` (ktable's errors) and
//! `datafusion_sqlstate` (DataFusion's); this file only turns them into pgwire errors.
//! datafusion-postgres passes DataFusion's errors on as `PgWireError::ApiError`, which
//! pgwire reports as XX000 whatever they were; [`with_sqlstate`] gives the ones a client
//! can act on (a query over its memory limit) their own code.

use crate::sql::{datafusion_sqlstate, SqlError};
use datafusion::error::DataFusionError;
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError};

/// An ERROR with `code` as its SQLSTATE.
pub(crate) fn error_with_code(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        code.to_string(),
        message,
    )))
}

/// A ktable error as the client sees it.
pub(crate) fn user_error(error: &SqlError) -> PgWireError {
    error_with_code(error.sqlstate(), error.to_string())
}

/// `error` with the SQLSTATE of the DataFusion error inside it, if it has one.
pub(crate) fn with_sqlstate(error: PgWireError) -> PgWireError {
    match error {
        PgWireError::ApiError(inner) => match inner.downcast_ref::<DataFusionError>() {
            Some(datafusion) if datafusion_sqlstate(datafusion) != "XX000" => {
                error_with_code(datafusion_sqlstate(datafusion), datafusion.to_string())
            }
            _ => PgWireError::ApiError(inner),
        },
        other => other,
    }
}

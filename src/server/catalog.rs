//! What clients read about the server besides the tables: `pg_catalog` (from
//! datafusion-pg-catalog) and the functions drivers call while connecting or
//! inspecting (`version()`, `to_regtype`, `pg_get_serial_sequence`).

use super::ServerError;
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{create_udf, ColumnarValue, ScalarUDF, Volatility};
use datafusion::prelude::SessionContext;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;
use std::sync::Arc;

/// Adds the catalog and the driver functions to `context` (once; a second call only
/// re-registers the functions).
pub(crate) fn install(context: &SessionContext) -> Result<(), ServerError> {
    // Drivers parse version() as PostgreSQL's (SQLAlchemy refuses DataFusion's).
    context.register_udf(version_udf());
    context.register_udf(to_regtype_udf());
    context.register_udf(pg_get_serial_sequence_udf());
    // psql's \d commands and BI tools read pg_catalog.
    let has_pg_catalog = context
        .catalog("datafusion")
        .is_some_and(|c| c.schema("pg_catalog").is_some());
    if !has_pg_catalog {
        setup_pg_catalog(context, "datafusion", EmptyContextProvider)
            .map_err(|e| ServerError::Catalog(e.to_string()))?;
    }
    Ok(())
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

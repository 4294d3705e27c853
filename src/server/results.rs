//! The engine's results as pgwire responses: rows encoded as DataRows in the formats
//! the client asked for, commands as their tags.

use super::errors::error_with_code;
use crate::sql::pg_compat::postgres_column_name;
use crate::sql::{datafusion_sqlstate, Output};
use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::data::DataRow;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use futures::StreamExt;
use std::sync::Arc;

/// A DataFusion error as the client sees it, with its SQLSTATE.
pub(crate) fn datafusion_error(error: &DataFusionError) -> PgWireError {
    error_with_code(datafusion_sqlstate(error), error.to_string())
}

/// The columns of `schema` as a RowDescription announces them, with PostgreSQL's
/// names: a name a select list repeats was made unique for DataFusion, and is
/// repeated again here ([`postgres_column_name`]).
pub(crate) fn fields(
    schema: &Schema,
    format: &Format,
    options: &Arc<FormatOptions>,
) -> PgWireResult<Arc<Vec<FieldInfo>>> {
    let renamed;
    let schema = if schema
        .fields()
        .iter()
        .any(|f| postgres_column_name(f.name()) != f.name())
    {
        renamed = Schema::new_with_metadata(
            schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_name(postgres_column_name(f.name())))
                .collect::<Vec<_>>(),
            schema.metadata().clone(),
        );
        &renamed
    } else {
        schema
    };
    Ok(Arc::new(arrow_schema_to_pg_fields(
        schema,
        format,
        Some(Arc::clone(options)),
    )?))
}

/// What the client receives for `output`.
pub(crate) fn respond(
    output: Output,
    format: &Format,
    options: &Arc<FormatOptions>,
) -> PgWireResult<Response> {
    match output {
        Output::Empty => Ok(Response::EmptyQuery),
        Output::Command(tag) => Ok(Response::Execution(Tag::new(&tag))),
        Output::Rows(rows) => {
            let fields = fields(&rows.schema(), format, options)?;
            Ok(Response::Query(stream_rows(fields, rows)))
        }
    }
}

/// Rows encoded as the batches arrive.
fn stream_rows(fields: Arc<Vec<FieldInfo>>, batches: SendableRecordBatchStream) -> QueryResponse {
    let encoding = Arc::clone(&fields);
    let rows = batches
        .map(move |batch| {
            let rows: Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync> = match batch {
                Ok(batch) => encode_recordbatch(Arc::clone(&encoding), batch),
                Err(error) => Box::new(std::iter::once(Err(datafusion_error(&error)))),
            };
            futures::stream::iter(rows)
        })
        .flatten();
    QueryResponse::new(fields, rows)
}

/// One batch's rows, encoded with `fields` (the fast path's answer).
pub(crate) fn batch_rows(fields: Arc<Vec<FieldInfo>>, batch: RecordBatch) -> QueryResponse {
    let rows = encode_recordbatch(Arc::clone(&fields), batch);
    QueryResponse::new(fields, futures::stream::iter(rows))
}

//! The prepared point-lookup fast path: `SELECT cols FROM t WHERE key = $1`.
//!
//! DataFusion spends ~140 µs optimizing and physically planning a statement on every
//! execution, against ~20 µs for the lookup itself, and a prepared statement's plan
//! is re-optimized each time its parameters change. A statement of exactly this shape
//! is recognized once, from the logical plan DataFusion built at `Parse`, and every
//! `Execute` then reads the row straight from the table's key index and encodes it:
//! no optimizer, no physical plan, no task.
//!
//! Anything else (another shape, a stream, a non-text parameter, a table that is not
//! a Kafka table) stays on DataFusion's path, so the answer never differs between the
//! two: both read the same index.

use crate::sql::{Engine, KafkaTableProvider};
use crate::table::columnar::ColumnarTable;
use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::{FieldInfo, QueryResponse};
use datafusion_postgres::pgwire::api::Type;
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::types::format::FormatOptions;
use std::sync::Arc;

/// A recognized `SELECT cols FROM table WHERE key = $1`.
pub(crate) struct PointLookup {
    /// The table's name in the engine, looked up again at each execution so that a
    /// table dropped and declared again is read, not the stopped one.
    table_name: String,
    /// The table as it was when the statement was prepared: its schema is what the
    /// statement's result description promised.
    planned: Arc<ColumnarTable>,
    /// Table column of each result column.
    projection: Vec<usize>,
    /// The result's schema (with the statement's aliases).
    schema: SchemaRef,
}

impl PointLookup {
    /// The lookup `plan` (an unoptimized plan of a prepared statement) performs, if it
    /// is one.
    pub(crate) fn recognize(plan: &LogicalPlan) -> Option<PointLookup> {
        let LogicalPlan::Projection(projection) = plan else {
            return None;
        };
        let LogicalPlan::Filter(filter) = projection.input.as_ref() else {
            return None;
        };
        let mut input = filter.input.as_ref();
        if let LogicalPlan::SubqueryAlias(alias) = input {
            input = alias.input.as_ref();
        }
        let LogicalPlan::TableScan(scan) = input else {
            return None;
        };
        if scan.projection.is_some() || !scan.filters.is_empty() || scan.fetch.is_some() {
            return None;
        }
        let provider = source_as_provider(&scan.source).ok()?;
        let table = Arc::clone(provider.downcast_ref::<KafkaTableProvider>()?.table());
        let table_schema = Arc::clone(table.schema());
        let key_name = table_schema.field(table.key_column()).name();
        if !is_key_equals_first_parameter(&filter.predicate, key_name) {
            return None;
        }
        let columns = projection
            .expr
            .iter()
            .map(|expr| match expr {
                Expr::Column(column) => table_schema.index_of(&column.name).ok(),
                Expr::Alias(alias) => match alias.expr.as_ref() {
                    Expr::Column(column) => table_schema.index_of(&column.name).ok(),
                    _ => None,
                },
                _ => None,
            })
            .collect::<Option<Vec<usize>>>()?;
        let schema = Arc::new(projection.schema.as_arrow().clone());
        // The result must be the table's columns as they are, or encoding would not
        // match what DataFusion reports for the same statement.
        let same_types = columns
            .iter()
            .zip(schema.fields())
            .all(|(&column, field)| table_schema.field(column).data_type() == field.data_type());
        if !same_types {
            return None;
        }
        Some(PointLookup {
            table_name: scan.table_name.table().to_string(),
            planned: table,
            projection: columns,
            schema,
        })
    }

    /// The one parameter: the key, as text.
    pub(crate) fn parameter_types(&self) -> Vec<Type> {
        vec![Type::TEXT]
    }

    /// The result columns, as a `RowDescription` announces them.
    pub(crate) fn fields(
        &self,
        format: &Format,
        options: Option<Arc<FormatOptions>>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        arrow_schema_to_pg_fields(&self.schema, format, options)
    }

    /// The row of `key` (none for a missing key or a NULL parameter), encoded.
    pub(crate) fn execute(
        &self,
        engine: &Engine,
        key: Option<&[u8]>,
        format: &Format,
        options: Option<Arc<FormatOptions>>,
    ) -> PgWireResult<QueryResponse> {
        let fields = Arc::new(self.fields(format, options)?);
        let batch = match key {
            // `key = NULL` is never true.
            None => RecordBatch::new_empty(Arc::clone(&self.schema)),
            Some(key) => {
                let key = std::str::from_utf8(key).map_err(|_| {
                    user_error("22021", "the key parameter is not valid UTF-8".into())
                })?;
                self.read(engine, key)?
            }
        };
        let rows = encode_recordbatch(Arc::clone(&fields), batch);
        Ok(QueryResponse::new(fields, futures::stream::iter(rows)))
    }

    fn read(&self, engine: &Engine, key: &str) -> PgWireResult<RecordBatch> {
        let table = match engine.table(&self.table_name) {
            Some(current) if Arc::ptr_eq(&current, &self.planned) => current,
            // Declared again with the same columns: read the live table.
            Some(current) if current.schema() == self.planned.schema() => current,
            // PostgreSQL's answer when a prepared statement's table changed shape.
            _ => {
                return Err(user_error(
                    "0A000",
                    format!(
                        "cached plan must not change result type: table {} was dropped or \
                         declared again since the statement was prepared",
                        self.table_name
                    ),
                ))
            }
        };
        let row = table
            .lookup(&[key])
            .map_err(|e| user_error("XX000", e.to_string()))?;
        let columns = self
            .projection
            .iter()
            .map(|&column| Arc::clone(row.column(column)))
            .collect();
        RecordBatch::try_new(Arc::clone(&self.schema), columns)
            .map_err(|e| user_error("XX000", e.to_string()))
    }
}

/// Whether `predicate` is `key = $1` (either way round).
fn is_key_equals_first_parameter(predicate: &Expr, key_name: &str) -> bool {
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Eq,
        right,
    }) = predicate
    else {
        return false;
    };
    let is_key = |e: &Expr| matches!(e, Expr::Column(c) if c.name == key_name);
    let is_first_parameter = |e: &Expr| match e {
        Expr::Placeholder(p) => {
            p.id == "$1"
                && p.field.as_ref().is_none_or(|f| {
                    matches!(
                        f.data_type(),
                        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
                    )
                })
        }
        _ => false,
    };
    (is_key(left) && is_first_parameter(right)) || (is_key(right) && is_first_parameter(left))
}

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        code.to_string(),
        message,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};
    use datafusion::prelude::SessionContext;

    async fn plan(sql: &str) -> LogicalPlan {
        let ctx = SessionContext::new();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("age", DataType::Int32, true),
        ]));
        let table = Arc::new(ColumnarTable::new(schema, 0));
        ctx.register_table("users", Arc::new(KafkaTableProvider::new(table)))
            .expect("register");
        ctx.state().create_logical_plan(sql).await.expect("plan")
    }

    async fn columns_of(sql: &str) -> Option<Vec<usize>> {
        PointLookup::recognize(&plan(sql).await).map(|lookup| lookup.projection)
    }

    #[tokio::test]
    async fn recognizes_key_lookups_by_the_first_parameter() {
        assert_eq!(
            columns_of("SELECT name, age FROM users WHERE id = $1").await,
            Some(vec![1, 2])
        );
        assert_eq!(
            columns_of("SELECT * FROM users WHERE $1 = id").await,
            Some(vec![0, 1, 2])
        );
        assert_eq!(
            columns_of("SELECT u.age AS years FROM users u WHERE u.id = $1").await,
            Some(vec![2])
        );
        let aliased =
            PointLookup::recognize(&plan("SELECT age AS years FROM users WHERE id = $1").await)
                .expect("a lookup");
        assert_eq!(aliased.schema.field(0).name(), "years");
    }

    #[tokio::test]
    async fn leaves_everything_else_to_datafusion() {
        for sql in [
            "SELECT name FROM users WHERE name = $1",
            "SELECT name FROM users WHERE id = $1 AND age > 3",
            "SELECT name FROM users WHERE id = $2",
            "SELECT name FROM users WHERE id = 'u1'",
            "SELECT upper(name) FROM users WHERE id = $1",
            "SELECT name FROM users WHERE id = $1 LIMIT 1",
            "SELECT DISTINCT name FROM users WHERE id = $1",
            "SELECT count(*) FROM users WHERE id = $1",
            "SELECT name FROM users WHERE id <> $1",
        ] {
            assert_eq!(columns_of(sql).await, None, "{sql}");
        }
    }
}

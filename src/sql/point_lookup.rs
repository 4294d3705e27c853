//! The point-lookup fast path: `SELECT cols FROM t WHERE key = $1`.
//!
//! DataFusion spends ~140 µs optimizing and physically planning a statement on every
//! execution, against ~20 µs for the lookup itself, and a prepared statement's plan
//! is re-optimized each time its parameters change. A statement of exactly this shape
//! is recognized once, from the logical plan DataFusion built for it, and every
//! execution then reads the row straight from the table's key index: no optimizer,
//! no physical plan, no task. The same recognition serves the wire protocols and
//! embedders (`Engine::prepare` / `Engine::lookup`).
//!
//! The key may be TEXT, INT or BIGINT; a table with a composite primary key is not
//! served here (`a = $1` names only part of its key). Anything else (another shape, a
//! stream, a parameter of another type than the key's, a table that is not a Kafka
//! table) stays on DataFusion's path, so the answer never differs between the two:
//! both read the same index.

use super::{Engine, KafkaTableProvider, SqlError};
use crate::table::columnar::ColumnarTable;
use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::source_as_provider;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};
use std::fmt;
use std::sync::Arc;

/// A recognized `SELECT cols FROM table WHERE key = $1`.
pub struct PointLookup {
    /// The table's name in the engine, looked up again at each execution so that a
    /// table dropped and declared again is read, not the stopped one.
    table_name: String,
    /// The table as it was when the statement was prepared: its schema is what the
    /// statement's result description promised.
    planned: Arc<ColumnarTable>,
    /// Table column of each result column.
    projection: Vec<usize>,
    /// The key column's type: the type of the statement's parameter.
    key_type: DataType,
    /// The result's schema (with the statement's aliases).
    schema: SchemaRef,
}

impl fmt::Debug for PointLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PointLookup")
            .field("table", &self.table_name)
            .field("projection", &self.projection)
            .finish()
    }
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
        let [key_column] = table.key_columns() else {
            return None;
        };
        let key_field = table_schema.field(*key_column);
        if !is_key_equals_first_parameter(&filter.predicate, key_field) {
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
            key_type: key_field.data_type().clone(),
            planned: table,
            projection: columns,
            schema,
        })
    }

    /// The result's columns (with the statement's aliases).
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The type of the key, and so of the statement's parameter.
    pub fn key_type(&self) -> &DataType {
        &self.key_type
    }

    /// The row of `key` (none for a missing key or a NULL key: `key = NULL` is never
    /// true), with the statement's columns. The key is given as text whatever its
    /// type: an INT or BIGINT key in decimal (other text matches no row).
    pub(crate) fn read(&self, engine: &Engine, key: Option<&str>) -> Result<RecordBatch, SqlError> {
        let Some(key) = key else {
            return Ok(RecordBatch::new_empty(Arc::clone(&self.schema)));
        };
        let table = match engine.table(&self.table_name) {
            Some(current) if Arc::ptr_eq(&current, &self.planned) => current,
            // Declared again with the same columns: read the live table.
            Some(current) if current.schema() == self.planned.schema() => current,
            // PostgreSQL's answer when a prepared statement's table changed shape.
            _ => {
                return Err(SqlError::PlanChanged {
                    table: self.table_name.clone(),
                })
            }
        };
        let Some(row) = table.lookup_one(key) else {
            return Ok(RecordBatch::new_empty(Arc::clone(&self.schema)));
        };
        let columns = self
            .projection
            .iter()
            .map(|&column| Arc::clone(row.column(column)))
            .collect();
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)
            .map_err(DataFusionError::from)?)
    }
}

/// Whether `predicate` is `key = $1` (either way round), the parameter of the key's
/// own type (or of a type yet to be inferred).
fn is_key_equals_first_parameter(predicate: &Expr, key: &arrow::datatypes::Field) -> bool {
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Eq,
        right,
    }) = predicate
    else {
        return false;
    };
    let is_text =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8);
    let key_type = key.data_type();
    let servable = match key_type {
        DataType::Int32 | DataType::Int64 => true,
        other => is_text(other),
    };
    let is_key = |e: &Expr| matches!(e, Expr::Column(c) if c.name == *key.name());
    let is_first_parameter = |e: &Expr| match e {
        Expr::Placeholder(p) => {
            p.id == "$1"
                && p.field.as_ref().is_none_or(|f| {
                    f.data_type() == key_type || (is_text(f.data_type()) && is_text(key_type))
                })
        }
        _ => false,
    };
    if !servable {
        return false;
    }
    (is_key(left) && is_first_parameter(right)) || (is_key(right) && is_first_parameter(left))
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

//! Access-privilege columns (`nspacl`, `typacl`, `attacl`, `relacl`, ...) typed as
//! PostgreSQL types them, arrays (`aclitem[]`). datafusion-pg-catalog types some as
//! text and leaves `pg_class.relacl` out, so psql's `array_to_string(n.nspacl, E'\n')`
//! (`\dn+`, `\dT+`, `\df+`) cannot plan. ktable grants nothing per object: every
//! value is NULL, which PostgreSQL reads as the default privileges. (psql's `\dp`
//! still fails: it compares `pg_policy.polroles` with the array literal `'{0}'`,
//! which DataFusion reads as text.)

use arrow::array::{new_null_array, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::{MemTable, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use std::sync::Arc;

/// The type of an access-privilege column: `aclitem[]`, as text items.
pub(super) fn acl_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

/// The array type PostgreSQL gives a column the crate types as text, if it is one.
fn array_type(field: &Field) -> Option<DataType> {
    if field.data_type() != &DataType::Utf8 {
        return None;
    }
    match field.name().as_str() {
        "polroles" => Some(DataType::List(Arc::new(Field::new(
            "item",
            DataType::Int32,
            true,
        )))),
        name if name.ends_with("acl") => Some(acl_type()),
        _ => None,
    }
}

/// Whether `schema` has an access-privilege column typed as text.
pub(super) fn has_text_acl(schema: &Schema) -> bool {
    schema.fields().iter().any(|f| array_type(f).is_some())
}

/// `schema` with its text access-privilege columns as arrays.
pub(super) fn with_acl_arrays(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match array_type(f) {
            Some(array) => Field::new(f.name(), array, true),
            None => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `values` for a column typed `field`: itself, or NULLs where the field retyped it
/// (an access-privilege column made an array).
pub(super) fn as_typed(field: &Field, values: &ArrayRef) -> ArrayRef {
    if field.data_type() == values.data_type() {
        Arc::clone(values)
    } else {
        new_null_array(field.data_type(), values.len())
    }
}

/// One of the crate's tables with its access-privilege columns as arrays.
#[derive(Debug)]
pub(super) struct AclArrays {
    inner: Arc<dyn TableProvider>,
    schema: SchemaRef,
}

impl AclArrays {
    pub(super) fn new(inner: Arc<dyn TableProvider>) -> Self {
        let schema = with_acl_arrays(&inner.schema());
        Self { inner, schema }
    }
}

#[async_trait]
impl TableProvider for AclArrays {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let rows = super::catalog::read_table(&self.inner, state).await?;
        let columns = self
            .schema
            .fields()
            .iter()
            .zip(rows.columns())
            .map(|(field, values)| as_typed(field, values))
            .collect();
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        MemTable::try_new(Arc::clone(&self.schema), vec![vec![batch]])?
            .scan(state, projection, filters, limit)
            .await
    }
}

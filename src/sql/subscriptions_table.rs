//! `ktable_subscriptions`: each table's and stream's subscriptions, counted, as a
//! relation SQL reads like any other (a subscription that was cancelled, closed or
//! disconnected leaves `active`; one that fell behind is counted in `fell_behind`).
//!
//! A relation of its own rather than columns of `ktable_tables`: subscriptions come and
//! go by the second, and a client watching them should not read every source's
//! progress and counters too.

use super::provider::memory_scan;
use super::registry::{Registry, SourceHandle};
use crate::changefeed::SubscriptionCounts;
use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use std::sync::{Arc, LazyLock};

/// The name the relation is registered under.
pub const SUBSCRIPTIONS_TABLE: &str = "ktable_subscriptions";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("active", DataType::Int64, false),
        Field::new("ended", DataType::Int64, false),
        Field::new("fell_behind", DataType::Int64, false),
        Field::new("retained_changes", DataType::Int64, false),
        Field::new("buffer", DataType::Int64, false),
    ]))
});

/// Registers the relation in `ctx` unless it has it.
pub(super) fn register(ctx: &SessionContext, registry: &Arc<Registry>) {
    if !ctx.table_exist(SUBSCRIPTIONS_TABLE).unwrap_or(false) {
        // Registration only fails for a name taken, which was just checked.
        let _ = ctx.register_table(
            SUBSCRIPTIONS_TABLE,
            Arc::new(SubscriptionsTable {
                registry: Arc::clone(registry),
            }),
        );
    }
}

/// One source's row: name, kind, counts, buffer.
type Row = (String, String, SubscriptionCounts, usize);

struct SubscriptionsTable {
    registry: Arc<Registry>,
}

impl std::fmt::Debug for SubscriptionsTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubscriptionsTable")
    }
}

impl SubscriptionsTable {
    fn batch(&self) -> Result<RecordBatch> {
        let mut sources = self.registry.all();
        sources.sort_by(|a, b| a.def.name.cmp(&b.def.name));
        let rows: Vec<Row> = sources
            .iter()
            .map(|source| {
                let (counts, buffer) = match &source.handle {
                    SourceHandle::Table { table, .. } => {
                        (table.changes().counts(), table.changes().capacity())
                    }
                    SourceHandle::Stream { store, .. } => {
                        (store.changes().counts(), store.changes().capacity())
                    }
                };
                (
                    source.def.name.to_string(),
                    source.def.kind.to_string(),
                    counts,
                    buffer,
                )
            })
            .collect();
        let int = |f: &dyn Fn(&Row) -> u64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| f(r) as i64),
            ))
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.1))),
            int(&|r| r.2.active),
            int(&|r| r.2.ended),
            int(&|r| r.2.fell_behind),
            int(&|r| r.2.retained_changes),
            int(&|r| r.3 as u64),
        ];
        Ok(RecordBatch::try_new(Arc::clone(&SCHEMA), columns)?)
    }
}

#[async_trait]
impl TableProvider for SubscriptionsTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&SCHEMA)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        memory_scan(&[vec![self.batch()?]], self.schema(), projection, None)
    }
}

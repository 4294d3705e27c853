//! `ktable_tables`: every source of the engine, its progress and its counters, as a
//! relation that SQL reads like any other.

use super::provider::memory_scan;
use super::registry::Registry;
use arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use std::sync::{Arc, LazyLock};
use std::time::UNIX_EPOCH;

/// The name the system table is registered under.
pub const SYSTEM_TABLE: &str = "ktable_tables";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("topic", DataType::Utf8, false),
        Field::new("format", DataType::Utf8, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("running", DataType::Boolean, false),
        Field::new("ready", DataType::Boolean, false),
        Field::new("offsets_done", DataType::Int64, false),
        Field::new("offsets_total", DataType::Int64, false),
        Field::new("upserts", DataType::Int64, false),
        Field::new("tombstones", DataType::Int64, false),
        Field::new("null_keys", DataType::Int64, false),
        Field::new("bad_records", DataType::Int64, false),
        Field::new(
            "last_update",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        Field::new("last_error", DataType::Utf8, true),
        Field::new("restored_from", DataType::Utf8, false),
        Field::new("restore_reason", DataType::Utf8, true),
        Field::new("checkpoint_age_ms", DataType::Int64, true),
        Field::new("lag_offsets", DataType::Int64, false),
    ]))
});

/// The system table over an engine's registry.
pub(crate) struct SystemTable {
    registry: Arc<Registry>,
}

impl std::fmt::Debug for SystemTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SystemTable")
    }
}

impl SystemTable {
    pub(crate) fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }

    fn batch(&self) -> Result<RecordBatch> {
        let infos = self.registry.infos();
        let text = |f: &dyn Fn(&super::SourceInfo) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(infos.iter().map(f)))
        };
        let int = |f: &dyn Fn(&super::SourceInfo) -> u64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(
                infos.iter().map(|i| f(i) as i64),
            ))
        };
        let flag = |f: &dyn Fn(&super::SourceInfo) -> bool| -> ArrayRef {
            Arc::new(BooleanArray::from(infos.iter().map(f).collect::<Vec<_>>()))
        };
        let columns: Vec<ArrayRef> = vec![
            text(&|i| i.name.clone()),
            text(&|i| i.kind.to_string()),
            text(&|i| i.stats.topic.clone()),
            text(&|i| i.format.clone()),
            int(&|i| i.stats.rows as u64),
            flag(&|i| i.stats.running),
            flag(&|i| i.stats.ready),
            int(&|i| i.stats.offsets_done),
            int(&|i| i.stats.offsets_total),
            int(&|i| i.stats.upserts),
            int(&|i| i.stats.tombstones),
            int(&|i| i.stats.null_keys),
            int(&|i| i.stats.bad_records),
            Arc::new(TimestampMillisecondArray::from(
                infos
                    .iter()
                    .map(|i| {
                        i.stats
                            .last_updated
                            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                            .map(|d| d.as_millis() as i64)
                    })
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                infos
                    .iter()
                    .map(|i| i.stats.last_error.clone())
                    .collect::<Vec<_>>(),
            )),
            text(&|i| i.stats.restored_from.kind().to_string()),
            Arc::new(StringArray::from(
                infos
                    .iter()
                    .map(|i| i.stats.restored_from.fallback_reason().map(str::to_string))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                infos
                    .iter()
                    .map(|i| {
                        let at = i.last_checkpoint?;
                        let age = std::time::SystemTime::now()
                            .duration_since(at)
                            .unwrap_or_default();
                        Some(age.as_millis() as i64)
                    })
                    .collect::<Vec<_>>(),
            )),
            int(&|i| i.stats.lag_offsets()),
        ];
        Ok(RecordBatch::try_new(Arc::clone(&SCHEMA), columns)?)
    }
}

#[async_trait]
impl TableProvider for SystemTable {
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

//! DataFusion `TableProvider`s over the stores: one type per kind of source.
//!
//! A table answers `key = 'literal'` and `key IN (...)` filters exactly from its key
//! index (DataFusion then does not filter again), and everything else by handing the
//! snapshot's Arrow segments to DataFusion's in-memory scan, spread over the session's
//! target partitions. A stream hands over its retained window.
//!
//! A table with a composite key (`PRIMARY KEY (tenant, id)`) pushes `part = literal` and
//! `part IN (...)` filters down as inexact: when every part is bound, the scan reads the
//! combinations from the index, and DataFusion applies the filters again on top.

use crate::stream::StreamStore;
use crate::table::columnar::ColumnarTable;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{
    Constraint, Constraints, DataFusionError, Result, ScalarValue, Statistics,
};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::logical_expr::{
    BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::ExecutionPlan;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

/// A Kafka table as a relation.
pub struct KafkaTableProvider {
    table: Arc<ColumnarTable>,
    /// The key column as the primary key: `pg_catalog` and `information_schema`
    /// show it, and DataFusion may use it (a GROUP BY on the key determines the
    /// other columns, as in PostgreSQL).
    constraints: Constraints,
}

impl KafkaTableProvider {
    /// A provider over `table`.
    pub fn new(table: Arc<ColumnarTable>) -> Self {
        let constraints =
            Constraints::new_unverified(vec![Constraint::PrimaryKey(table.key_columns().to_vec())]);
        Self { table, constraints }
    }

    /// The table this provider reads.
    pub fn table(&self) -> &Arc<ColumnarTable> {
        &self.table
    }

    fn key_name(&self) -> &str {
        self.table.schema().field(self.table.key_column()).name()
    }

    fn is_composite(&self) -> bool {
        self.table.key_columns().len() > 1
    }

    /// For a composite key: the key part a filter binds and the values it allows.
    fn part_values(&self, filter: &Expr) -> Option<(usize, Vec<String>)> {
        self.table
            .key_columns()
            .iter()
            .enumerate()
            .find_map(|(part, &column)| {
                let name = self.table.schema().field(column).name();
                values_of(filter, name).map(|values| (part, values))
            })
    }

    /// The keys a filter selects, if it is `key = 'v'` or `key IN ('v', ...)`.
    fn keys_of(&self, filter: &Expr) -> Option<Vec<String>> {
        values_of(filter, self.key_name())
    }

    /// The composite keys that `filters` bind every part of (at most
    /// `MAX_KEY_COMBINATIONS`), as the text the table's lookup takes.
    fn composite_keys(&self, filters: &[Expr]) -> Option<Vec<String>> {
        const MAX_KEY_COMBINATIONS: usize = 10_000;
        let parts = self.table.key_columns().len();
        let mut bound: Vec<Option<BTreeSet<String>>> = vec![None; parts];
        for filter in filters {
            if let Some((part, values)) = self.part_values(filter) {
                let values: BTreeSet<String> = values.into_iter().collect();
                bound[part] = Some(match bound[part].take() {
                    None => values,
                    Some(previous) => previous.intersection(&values).cloned().collect(),
                });
            }
        }
        let mut keys: Vec<Vec<String>> = vec![Vec::new()];
        for values in bound {
            let values = values?;
            if keys.len() * values.len().max(1) > MAX_KEY_COMBINATIONS {
                return None;
            }
            keys = keys
                .into_iter()
                .flat_map(|prefix| {
                    values.iter().map(move |v| {
                        let mut key = prefix.clone();
                        key.push(v.clone());
                        key
                    })
                })
                .collect();
        }
        Some(
            keys.iter()
                .map(|parts| crate::format::composite_text(parts))
                .collect(),
        )
    }
}

/// The values `filter` allows column `name`, if it is `name = 'v'` or `name IN (...)`.
fn values_of(filter: &Expr, name: &str) -> Option<Vec<String>> {
    {
        let is_key = |e: &Expr| matches!(e, Expr::Column(c) if c.name == name);
        match filter {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Eq,
                right,
            }) => {
                if is_key(left) {
                    text_literal(right).map(|k| vec![k])
                } else if is_key(right) {
                    text_literal(left).map(|k| vec![k])
                } else {
                    None
                }
            }
            Expr::InList(list) if !list.negated && is_key(&list.expr) => {
                list.list.iter().map(text_literal).collect()
            }
            _ => None,
        }
    }
}

/// A key literal as the text [`ColumnarTable::lookup`] takes: strings as they are,
/// integers (INT and BIGINT keys) in decimal.
fn text_literal(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Some(s.clone()),
        Expr::Literal(ScalarValue::Int16(Some(i)), _) => Some(i.to_string()),
        Expr::Literal(ScalarValue::Int32(Some(i)), _) => Some(i.to_string()),
        Expr::Literal(ScalarValue::Int64(Some(i)), _) => Some(i.to_string()),
        _ => None,
    }
}

impl fmt::Debug for KafkaTableProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaTableProvider")
            .field("schema", self.table.schema())
            .finish()
    }
}

/// Spreads batches over `partitions` lists, for parallel execution.
fn spread(batches: Vec<RecordBatch>, partitions: usize) -> Vec<Vec<RecordBatch>> {
    let partitions = partitions.clamp(1, batches.len().max(1));
    let mut out = vec![Vec::new(); partitions];
    for (i, batch) in batches.into_iter().enumerate() {
        out[i % partitions].push(batch);
    }
    out
}

pub(crate) fn memory_scan(
    partitions: &[Vec<RecordBatch>],
    schema: SchemaRef,
    projection: Option<&Vec<usize>>,
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let source =
        MemorySourceConfig::try_new(partitions, schema, projection.cloned())?.with_limit(limit);
    Ok(DataSourceExec::from_data_source(source))
}

#[async_trait]
impl TableProvider for KafkaTableProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(self.table.schema())
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn constraints(&self) -> Option<&Constraints> {
        Some(&self.constraints)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        if self.is_composite() {
            return Ok(filters
                .iter()
                .map(|f| match self.part_values(f) {
                    Some(_) => TableProviderFilterPushDown::Inexact,
                    None => TableProviderFilterPushDown::Unsupported,
                })
                .collect());
        }
        Ok(filters
            .iter()
            .map(|f| match self.keys_of(f) {
                Some(_) => TableProviderFilterPushDown::Exact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = self.schema();
        if self.is_composite() {
            if let Some(keys) = self.composite_keys(filters) {
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                let rows = self.table.lookup(&keys)?;
                return memory_scan(&[vec![rows]], schema, projection, None);
            }
            let batches = self
                .table
                .snapshot()
                .batches()
                .map_err(DataFusionError::Execution)?;
            let partitions = spread(batches, state.config().target_partitions());
            // Filters are applied again above this scan: no limit below them.
            return memory_scan(&partitions, schema, projection, None);
        }
        // Key filters are ANDed: the rows are those whose key every filter selects.
        let mut selected: Option<BTreeSet<String>> = None;
        for filter in filters {
            if let Some(keys) = self.keys_of(filter) {
                let keys: BTreeSet<String> = keys.into_iter().collect();
                selected = Some(match selected {
                    None => keys,
                    Some(previous) => previous.intersection(&keys).cloned().collect(),
                });
            }
        }
        if let Some(keys) = selected {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let rows = self.table.lookup(&keys)?;
            return memory_scan(&[vec![rows]], schema, projection, limit);
        }
        let batches = self
            .table
            .snapshot()
            .batches()
            .map_err(DataFusionError::Execution)?;
        let partitions = spread(batches, state.config().target_partitions());
        memory_scan(&partitions, schema, projection, limit)
    }

    fn statistics(&self) -> Option<Statistics> {
        Some(
            Statistics::new_unknown(self.table.schema())
                .with_num_rows(Precision::Inexact(self.table.len()))
                // Its memory, key index included: what `pg_table_size` reports.
                .with_total_byte_size(Precision::Inexact(self.table.memory_bytes())),
        )
    }
}

/// A stream's retained window as a relation.
pub struct StreamProvider {
    store: Arc<StreamStore>,
}

impl StreamProvider {
    /// A provider over `store`.
    pub fn new(store: Arc<StreamStore>) -> Self {
        Self { store }
    }
}

impl fmt::Debug for StreamProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamProvider")
            .field("schema", self.store.schema())
            .finish()
    }
}

#[async_trait]
impl TableProvider for StreamProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(self.store.schema())
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let partitions = spread(self.store.snapshot(), state.config().target_partitions());
        memory_scan(&partitions, self.schema(), projection, limit)
    }

    fn statistics(&self) -> Option<Statistics> {
        Some(
            Statistics::new_unknown(self.store.schema())
                .with_num_rows(Precision::Inexact(self.store.len()))
                .with_total_byte_size(Precision::Inexact(self.store.memory_bytes())),
        )
    }
}

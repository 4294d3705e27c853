//! `information_schema` as PostgreSQL shows it, for the tools that browse with it:
//! Grafana's column picker reads `columns.data_type`, Metabase's sync reads
//! `columns.udt_name`, `is_identity`, `column_default` and the primary keys from
//! `table_constraints` joined with `key_column_usage`.
//!
//! DataFusion's own `information_schema` names Arrow types (`Utf8`, `Int32`) in
//! `data_type`, lacks PostgreSQL's `udt_*`/identity columns, and has no constraint
//! views. DataFusion answers `information_schema` itself whenever the session's
//! `datafusion.catalog.information_schema` option is on, before looking at the
//! catalog; so [`install`] turns the option off and registers this schema in the
//! catalog instead. It serves DataFusion's `tables`, `views`, `schemata`,
//! `df_settings`, `routines` and `parameters` unchanged (`SHOW TABLES` and `SHOW`
//! keep working through them), and replaces `columns` and adds
//! `table_constraints` and `key_column_usage`.

use super::catalog::declared_keys;
use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::information_schema::InformationSchemaProvider;
use datafusion::catalog::{CatalogProviderList, SchemaProvider, Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::{MemTable, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use datafusion_postgres::arrow_pg::datatypes::into_pg_type;
use datafusion_postgres::pgwire::api::Type;
use std::sync::Arc;

/// The views this schema adds or replaces.
const OWN_TABLES: &[&str] = &["columns", "table_constraints", "key_column_usage"];

/// Registers the schema in every catalog of `context` and turns DataFusion's
/// built-in `information_schema` off (see the module documentation).
pub(super) fn install(context: &SessionContext) -> Result<()> {
    let catalogs = Arc::clone(context.state().catalog_list());
    for name in catalogs.catalog_names() {
        let Some(catalog) = catalogs.catalog(&name) else {
            continue;
        };
        let installed = catalog
            .schema("information_schema")
            .is_some_and(|s| s.downcast_ref::<InformationSchema>().is_some());
        if !installed {
            catalog.register_schema(
                "information_schema",
                Arc::new(InformationSchema {
                    inner: Arc::new(InformationSchemaProvider::new(Arc::clone(&catalogs))),
                    catalogs: Arc::clone(&catalogs),
                }),
            )?;
        }
    }
    context
        .state_ref()
        .write()
        .config_mut()
        .options_mut()
        .catalog
        .information_schema = false;
    Ok(())
}

#[derive(Debug)]
struct InformationSchema {
    inner: Arc<dyn SchemaProvider>,
    catalogs: Arc<dyn CatalogProviderList>,
}

#[async_trait]
impl SchemaProvider for InformationSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        for own in OWN_TABLES {
            if !names.iter().any(|n| n == own) {
                names.push(own.to_string());
            }
        }
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let view = match name {
            "columns" => View::Columns,
            "table_constraints" => View::TableConstraints,
            "key_column_usage" => View::KeyColumnUsage,
            _ => return self.inner.table(name).await,
        };
        Ok(Some(Arc::new(ViewTable {
            view,
            schema: view.schema(),
            catalogs: Arc::clone(&self.catalogs),
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        OWN_TABLES.contains(&name) || self.inner.table_exist(name)
    }
}

#[derive(Debug, Clone, Copy)]
enum View {
    Columns,
    TableConstraints,
    KeyColumnUsage,
}

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn int(name: &str) -> Field {
    Field::new(name, DataType::Int32, true)
}

impl View {
    fn schema(self) -> SchemaRef {
        let fields = match self {
            // PostgreSQL 16's columns, in its order.
            View::Columns => vec![
                text("table_catalog"),
                text("table_schema"),
                text("table_name"),
                text("column_name"),
                int("ordinal_position"),
                text("column_default"),
                text("is_nullable"),
                text("data_type"),
                int("character_maximum_length"),
                int("character_octet_length"),
                int("numeric_precision"),
                int("numeric_precision_radix"),
                int("numeric_scale"),
                int("datetime_precision"),
                text("interval_type"),
                int("interval_precision"),
                text("character_set_catalog"),
                text("character_set_schema"),
                text("character_set_name"),
                text("collation_catalog"),
                text("collation_schema"),
                text("collation_name"),
                text("domain_catalog"),
                text("domain_schema"),
                text("domain_name"),
                text("udt_catalog"),
                text("udt_schema"),
                text("udt_name"),
                text("scope_catalog"),
                text("scope_schema"),
                text("scope_name"),
                int("maximum_cardinality"),
                text("dtd_identifier"),
                text("is_self_referencing"),
                text("is_identity"),
                text("identity_generation"),
                text("identity_start"),
                text("identity_increment"),
                text("identity_maximum"),
                text("identity_minimum"),
                text("identity_cycle"),
                text("is_generated"),
                text("generation_expression"),
                text("is_updatable"),
            ],
            View::TableConstraints => vec![
                text("constraint_catalog"),
                text("constraint_schema"),
                text("constraint_name"),
                text("table_catalog"),
                text("table_schema"),
                text("table_name"),
                text("constraint_type"),
                text("is_deferrable"),
                text("initially_deferred"),
                text("enforced"),
                text("nulls_distinct"),
            ],
            View::KeyColumnUsage => vec![
                text("constraint_catalog"),
                text("constraint_schema"),
                text("constraint_name"),
                text("table_catalog"),
                text("table_schema"),
                text("table_name"),
                text("column_name"),
                int("ordinal_position"),
                int("position_in_unique_constraint"),
            ],
        };
        Arc::new(Schema::new(fields))
    }
}

/// One of this schema's own views; its rows are built at scan time.
#[derive(Debug)]
struct ViewTable {
    view: View,
    schema: SchemaRef,
    catalogs: Arc<dyn CatalogProviderList>,
}

#[async_trait]
impl TableProvider for ViewTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let rows = match self.view {
            View::Columns => self.columns().await?,
            View::TableConstraints | View::KeyColumnUsage => self.keys().await?,
        };
        let batch = rows.into_batch(&self.schema)?;
        MemTable::try_new(Arc::clone(&self.schema), vec![vec![batch]])?
            .scan(state, projection, filters, limit)
            .await
    }
}

/// Rows built column by column: text or integer cells, by column name.
struct Rows {
    columns: Vec<(&'static str, Vec<Cell>)>,
    len: usize,
}

enum Cell {
    Text(Option<String>),
    Int(Option<i32>),
}

impl Rows {
    fn new() -> Self {
        Self {
            columns: Vec::new(),
            len: 0,
        }
    }

    fn push(&mut self, row: Vec<(&'static str, Cell)>) {
        for (name, cell) in row {
            match self.columns.iter_mut().find(|(n, _)| *n == name) {
                Some((_, cells)) => cells.push(cell),
                None => {
                    let mut cells: Vec<Cell> = (0..self.len).map(|_| Cell::Text(None)).collect();
                    cells.push(cell);
                    self.columns.push((name, cells));
                }
            }
        }
        self.len += 1;
        for (_, cells) in self.columns.iter_mut() {
            while cells.len() < self.len {
                cells.push(Cell::Text(None));
            }
        }
    }

    fn into_batch(self, schema: &SchemaRef) -> Result<RecordBatch> {
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let cells = self
                .columns
                .iter()
                .find(|(n, _)| *n == field.name())
                .map(|(_, c)| c.as_slice())
                .unwrap_or(&[]);
            let cell = |i: usize| cells.get(i);
            let array: ArrayRef =
                match field.data_type() {
                    DataType::Int32 => Arc::new(Int32Array::from_iter((0..self.len).map(|i| {
                        match cell(i) {
                            Some(Cell::Int(v)) => *v,
                            _ => None,
                        }
                    }))),
                    _ => Arc::new(StringArray::from_iter((0..self.len).map(|i| {
                        match cell(i) {
                            Some(Cell::Text(v)) => v.clone(),
                            Some(Cell::Int(v)) => v.map(|v| v.to_string()),
                            None => None,
                        }
                    }))),
                };
            arrays.push(array);
        }
        Ok(RecordBatch::try_new(Arc::clone(schema), arrays)?)
    }
}

fn t(value: impl Into<String>) -> Cell {
    Cell::Text(Some(value.into()))
}

/// A column type as PostgreSQL's `information_schema.columns` describes it.
struct ColumnType {
    data_type: String,
    udt_name: String,
    numeric_precision: Option<i32>,
    numeric_radix: Option<i32>,
    numeric_scale: Option<i32>,
    datetime_precision: Option<i32>,
    character_octet_length: Option<i32>,
}

fn column_type(arrow_type: &DataType) -> ColumnType {
    let pg = into_pg_type(arrow_type).unwrap_or(Type::TEXT);
    let udt_name = pg.name().to_string();
    let (data_type, precision, radix, scale, datetime, octets) = match udt_name.as_str() {
        "int2" => ("smallint", Some(16), Some(2), Some(0), None, None),
        "int4" => ("integer", Some(32), Some(2), Some(0), None, None),
        "int8" => ("bigint", Some(64), Some(2), Some(0), None, None),
        "float4" => ("real", Some(24), Some(2), None, None, None),
        "float8" => ("double precision", Some(53), Some(2), None, None, None),
        "numeric" => ("numeric", None, Some(10), None, None, None),
        "bool" => ("boolean", None, None, None, None, None),
        "text" => ("text", None, None, None, None, Some(1_073_741_824)),
        "varchar" => (
            "character varying",
            None,
            None,
            None,
            None,
            Some(1_073_741_824),
        ),
        "bpchar" => ("character", None, None, None, None, None),
        "bytea" => ("bytea", None, None, None, None, None),
        "date" => ("date", None, None, None, Some(0), None),
        "time" => ("time without time zone", None, None, None, Some(6), None),
        "timestamp" => (
            "timestamp without time zone",
            None,
            None,
            None,
            Some(6),
            None,
        ),
        "timestamptz" => ("timestamp with time zone", None, None, None, Some(6), None),
        "interval" => ("interval", None, None, None, Some(6), None),
        name if name.starts_with('_') => ("ARRAY", None, None, None, None, None),
        other => (other, None, None, None, None, None),
    };
    ColumnType {
        data_type: data_type.to_string(),
        udt_name,
        numeric_precision: precision,
        numeric_radix: radix,
        numeric_scale: scale,
        datetime_precision: datetime,
        character_octet_length: octets,
    }
}

impl ViewTable {
    /// A row per column of every table of every catalog, as PostgreSQL lists them.
    async fn columns(&self) -> Result<Rows> {
        let mut rows = Rows::new();
        for catalog_name in self.catalogs.catalog_names() {
            let Some(catalog) = self.catalogs.catalog(&catalog_name) else {
                continue;
            };
            for schema_name in catalog.schema_names() {
                let Some(schema) = catalog.schema(&schema_name) else {
                    continue;
                };
                let mut tables = schema.table_names();
                tables.sort();
                for table_name in tables {
                    let Some(table) = schema.table(&table_name).await? else {
                        continue;
                    };
                    for (index, field) in table.schema().fields().iter().enumerate() {
                        let position = i32::try_from(index + 1).unwrap_or(i32::MAX);
                        let ty = column_type(field.data_type());
                        rows.push(vec![
                            ("table_catalog", t(&catalog_name)),
                            ("table_schema", t(&schema_name)),
                            ("table_name", t(&table_name)),
                            ("column_name", t(field.name())),
                            ("ordinal_position", Cell::Int(Some(position))),
                            (
                                "is_nullable",
                                t(if field.is_nullable() { "YES" } else { "NO" }),
                            ),
                            ("data_type", t(ty.data_type)),
                            (
                                "character_octet_length",
                                Cell::Int(ty.character_octet_length),
                            ),
                            ("numeric_precision", Cell::Int(ty.numeric_precision)),
                            ("numeric_precision_radix", Cell::Int(ty.numeric_radix)),
                            ("numeric_scale", Cell::Int(ty.numeric_scale)),
                            ("datetime_precision", Cell::Int(ty.datetime_precision)),
                            ("udt_catalog", t(&catalog_name)),
                            ("udt_schema", t("pg_catalog")),
                            ("udt_name", t(ty.udt_name)),
                            ("dtd_identifier", t(position.to_string())),
                            ("is_self_referencing", t("NO")),
                            ("is_identity", t("NO")),
                            ("identity_cycle", t("NO")),
                            ("is_generated", t("NEVER")),
                            // ktable's relations are read by SQL and written by Kafka.
                            ("is_updatable", t("NO")),
                        ]);
                    }
                }
            }
        }
        Ok(rows)
    }

    /// `table_constraints` or `key_column_usage`: the primary keys.
    async fn keys(&self) -> Result<Rows> {
        let mut rows = Rows::new();
        for key in declared_keys(&self.catalogs).await? {
            let name = format!("{}_pkey", key.table);
            let common = |rows: &mut Rows, extra: Vec<(&'static str, Cell)>| {
                let mut row = vec![
                    ("constraint_catalog", t(&key.catalog)),
                    ("constraint_schema", t(&key.schema)),
                    ("constraint_name", t(&name)),
                    ("table_catalog", t(&key.catalog)),
                    ("table_schema", t(&key.schema)),
                    ("table_name", t(&key.table)),
                ];
                row.extend(extra);
                rows.push(row);
            };
            match self.view {
                View::TableConstraints => common(
                    &mut rows,
                    vec![
                        ("constraint_type", t("PRIMARY KEY")),
                        ("is_deferrable", t("NO")),
                        ("initially_deferred", t("NO")),
                        ("enforced", t("YES")),
                    ],
                ),
                _ => {
                    for (position, (column, _, _)) in key.columns.iter().enumerate() {
                        let position = i32::try_from(position + 1).unwrap_or(i32::MAX);
                        common(
                            &mut rows,
                            vec![
                                ("column_name", t(column)),
                                ("ordinal_position", Cell::Int(Some(position))),
                            ],
                        );
                    }
                }
            }
        }
        Ok(rows)
    }
}

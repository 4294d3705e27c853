//! The `pg_catalog` relations that describe keys, as PostgreSQL would show ktable's
//! tables: each table declared with a primary key has a `<table>_pkey` unique btree
//! index (a `pg_class` row of kind `i` and a `pg_index` row) and a primary-key
//! constraint (a `pg_constraint` row); no other index, no foreign key. psql's `\d`,
//! pgjdbc's `getPrimaryKeys`/`getIndexInfo`, SQLAlchemy's reflection and Metabase's
//! sync read keys from these.
//!
//! datafusion-pg-catalog builds `pg_class` from the catalog but without indexes, and
//! serves `pg_index` and `pg_constraint` as static rows exported from a real
//! PostgreSQL's own system catalogs, with the array columns (`indkey`, `conkey`) as
//! text, so `unnest(indkey)` and `attnum = ANY(conkey)` fail to plan. Its `pg_type`
//! holds the regproc columns (`typreceive`, `typinput`, ...) as function names, while
//! a `'array_in'::regproc` cast and `pg_proc.oid` are oids: Npgsql's type loading
//! (`proc.oid = typ.typreceive`) fails on that. [`PgCatalog`] wraps the crate's
//! schema and replaces these four tables, and `pg_settings` (see `pg_settings`);
//! every other table is the crate's, its access-privilege columns typed as arrays
//! (see `acl`). The static rows of `pg_index` and `pg_constraint` are dropped: they
//! describe system relations that ktable's `pg_class` does not list, so no query
//! could join them.
//!
//! A table's key comes from its `TableProvider::constraints()` (the primary key that
//! `CREATE TABLE ... PRIMARY KEY` declares, for ktable's tables and DataFusion's
//! memory tables alike). Index and constraint oids are derived from the table's oid
//! (which the crate keeps stable) by fixed offsets, above the crate's counter range.

use arrow::array::{
    Array, ArrayRef, BooleanArray, Int16Array, Int16Builder, Int32Array, Int32Builder, ListBuilder,
    RecordBatch, StringArray,
};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{CatalogProviderList, SchemaProvider, Session, TableProvider};
use datafusion::common::{Constraint, DataFusionError, Result, ScalarValue};
use datafusion::datasource::{MemTable, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::{collect, ExecutionPlan};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Index oid = table oid + this; the crate hands out table oids from 16384 up.
const INDEX_OID_OFFSET: i32 = 1_000_000_000;
/// Constraint oid = table oid + this.
const CONSTRAINT_OID_OFFSET: i32 = 1_500_000_000;
/// PostgreSQL's `btree` access method.
const BTREE_AM_OID: i32 = 403;

/// One table's primary key, as the catalog shows it.
#[derive(Debug, Clone)]
pub(super) struct KeyedTable {
    pub(super) schema: String,
    pub(super) table: String,
    pub(super) table_oid: i32,
    pub(super) namespace_oid: i32,
    /// Key column names and their `attnum`s (1-based), in key order.
    pub(super) columns: Vec<(String, i16, DataType)>,
}

impl KeyedTable {
    pub(super) fn index_oid(&self) -> i32 {
        self.table_oid.saturating_add(INDEX_OID_OFFSET)
    }

    pub(super) fn constraint_oid(&self) -> i32 {
        self.table_oid.saturating_add(CONSTRAINT_OID_OFFSET)
    }

    /// `users_pkey`, PostgreSQL's name for the primary key's index and constraint.
    pub(super) fn key_name(&self) -> String {
        format!("{}_pkey", self.table)
    }

    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(name, _, _)| quote_ident(name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// What `pg_get_indexdef(index)` answers.
    pub(super) fn index_definition(&self) -> String {
        format!(
            "CREATE UNIQUE INDEX {} ON {}.{} USING btree ({})",
            quote_ident(&self.key_name()),
            quote_ident(&self.schema),
            quote_ident(&self.table),
            self.column_list()
        )
    }

    /// What `pg_get_constraintdef(constraint)` answers.
    pub(super) fn constraint_definition(&self) -> String {
        format!("PRIMARY KEY ({})", self.column_list())
    }
}

/// Quotes an identifier where PostgreSQL's `quote_ident` would.
pub(super) fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// The keys last read from the catalog, by index oid and by constraint oid, for the
/// functions that describe them (`pg_get_indexdef`, `pg_get_constraintdef`). Every
/// scan of `pg_class`, `pg_index` or `pg_constraint` refreshes it, so a query that
/// finds an oid there finds its definition too. A scan of `pg_class` also notes the
/// schema and name of each relation's oid (`pg_table_size(oid)` and the like).
#[derive(Debug, Default)]
pub(super) struct KeyDirectory {
    by_oid: RwLock<HashMap<i32, Arc<KeyedTable>>>,
    names: RwLock<HashMap<i32, (String, String)>>,
}

impl KeyDirectory {
    /// The schema and name of the relation with this oid, as `pg_class` last listed it.
    pub(super) fn name_of(&self, oid: i64) -> Option<(String, String)> {
        let oid = i32::try_from(oid).ok()?;
        self.names.read().ok()?.get(&oid).cloned()
    }

    fn replace(&self, tables: &[Arc<KeyedTable>]) {
        let mut map = HashMap::new();
        for table in tables {
            map.insert(table.index_oid(), Arc::clone(table));
            map.insert(table.constraint_oid(), Arc::clone(table));
        }
        if let Ok(mut by_oid) = self.by_oid.write() {
            *by_oid = map;
        }
    }

    /// The table whose primary-key index or constraint has this oid.
    pub(super) fn get(&self, oid: i64) -> Option<Arc<KeyedTable>> {
        let oid = i32::try_from(oid).ok()?;
        self.by_oid.read().ok()?.get(&oid).cloned()
    }
}

/// The `pg_catalog` schema: the crate's, with `pg_class`, `pg_index`,
/// `pg_constraint` and `pg_type` replaced (see the module documentation).
#[derive(Debug)]
pub(super) struct PgCatalog {
    inner: Arc<dyn SchemaProvider>,
    catalogs: Arc<dyn CatalogProviderList>,
    keys: Arc<KeyDirectory>,
}

impl PgCatalog {
    /// The directory of keys this schema's scans keep up to date.
    pub(super) fn keys(&self) -> Arc<KeyDirectory> {
        Arc::clone(&self.keys)
    }

    pub(super) fn new(
        inner: Arc<dyn SchemaProvider>,
        catalogs: Arc<dyn CatalogProviderList>,
        keys: Arc<KeyDirectory>,
    ) -> Self {
        Self {
            inner,
            catalogs,
            keys,
        }
    }
}

#[async_trait]
impl SchemaProvider for PgCatalog {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let kind = match name {
            "pg_class" => Kind::Class,
            "pg_index" => Kind::Index,
            "pg_constraint" => Kind::Constraint,
            "pg_type" => Kind::Type,
            "pg_settings" => {
                return match self.inner.table(name).await? {
                    Some(inner) => Ok(Some(super::pg_settings::table(inner.schema())?)),
                    None => Ok(None),
                }
            }
            _ => {
                return Ok(self.inner.table(name).await?.map(|inner| {
                    if super::acl::has_text_acl(&inner.schema()) {
                        Arc::new(super::acl::AclArrays::new(inner)) as Arc<dyn TableProvider>
                    } else {
                        inner
                    }
                }))
            }
        };
        let schema = match kind {
            Kind::Class => match self.inner.table(name).await? {
                Some(inner) => with_reloptions(&inner.schema()),
                None => return Ok(None),
            },
            Kind::Type => match self.inner.table(name).await? {
                Some(inner) => super::acl::with_acl_arrays(&regproc_as_oids(&inner.schema())),
                None => return Ok(None),
            },
            Kind::Index => pg_index_schema(),
            Kind::Constraint => pg_constraint_schema(),
        };
        Ok(Some(Arc::new(KeyTable {
            kind,
            schema,
            inner: Arc::clone(&self.inner),
            catalogs: Arc::clone(&self.catalogs),
            keys: Arc::clone(&self.keys),
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Class,
    Index,
    Constraint,
    Type,
}

/// One replaced table; its rows are built at scan time from the catalog as it is.
#[derive(Debug)]
struct KeyTable {
    kind: Kind,
    schema: SchemaRef,
    inner: Arc<dyn SchemaProvider>,
    catalogs: Arc<dyn CatalogProviderList>,
    keys: Arc<KeyDirectory>,
}

#[async_trait]
impl TableProvider for KeyTable {
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
        let batch = match self.kind {
            Kind::Type => self.pg_type(state).await?,
            kind => {
                let tables = self.keyed_tables(state).await?;
                self.keys.replace(&tables);
                match kind {
                    Kind::Class => {
                        let classes = self.pg_class(state, &tables).await?;
                        self.note_names(state, &classes).await?;
                        classes
                    }
                    Kind::Index => pg_index_rows(&self.schema, &tables)?,
                    _ => pg_constraint_rows(&self.schema, &tables)?,
                }
            }
        };
        MemTable::try_new(Arc::clone(&self.schema), vec![vec![batch]])?
            .scan(state, projection, filters, limit)
            .await
    }
}

/// A primary key as its table's provider declares it.
#[derive(Debug, Clone)]
pub(super) struct DeclaredKey {
    pub(super) catalog: String,
    pub(super) schema: String,
    pub(super) table: String,
    /// Key column names, `attnum`s (1-based) and types, in key order.
    pub(super) columns: Vec<(String, i16, DataType)>,
}

/// Every table of every catalog whose provider declares a primary key
/// (`TableProvider::constraints`), outside `pg_catalog` and `information_schema`.
pub(super) async fn declared_keys(
    catalogs: &Arc<dyn CatalogProviderList>,
) -> Result<Vec<DeclaredKey>> {
    let mut keys = Vec::new();
    for catalog_name in catalogs.catalog_names() {
        let Some(catalog) = catalogs.catalog(&catalog_name) else {
            continue;
        };
        for schema_name in catalog.schema_names() {
            if schema_name == "pg_catalog" || schema_name == "information_schema" {
                continue;
            }
            let Some(schema) = catalog.schema(&schema_name) else {
                continue;
            };
            for table_name in schema.table_names() {
                let Some(provider) = schema.table(&table_name).await? else {
                    continue;
                };
                let Some(key) = provider.constraints().and_then(|c| {
                    c.iter().find_map(|c| match c {
                        Constraint::PrimaryKey(columns) => Some(columns.clone()),
                        Constraint::Unique(_) => None,
                    })
                }) else {
                    continue;
                };
                let fields = provider.schema();
                let columns = key
                    .iter()
                    .filter_map(|&i| {
                        let field = fields.fields().get(i)?;
                        let attnum = i16::try_from(i + 1).ok()?;
                        Some((field.name().clone(), attnum, field.data_type().clone()))
                    })
                    .collect();
                keys.push(DeclaredKey {
                    catalog: catalog_name.clone(),
                    schema: schema_name.clone(),
                    table: table_name,
                    columns,
                });
            }
        }
    }
    Ok(keys)
}

/// Every row of one of the crate's tables, in one batch.
async fn read_all(
    schema: &Arc<dyn SchemaProvider>,
    name: &str,
    state: &dyn Session,
) -> Result<RecordBatch> {
    let table = schema
        .table(name)
        .await?
        .ok_or_else(|| DataFusionError::Plan(format!("pg_catalog.{name} is missing")))?;
    read_table(&table, state).await
}

/// Every row of `table`, in one batch.
pub(super) async fn read_table(
    table: &Arc<dyn TableProvider>,
    state: &dyn Session,
) -> Result<RecordBatch> {
    let plan = table.scan(state, None, &[], None).await?;
    let out_schema = plan.schema();
    let batches = collect(plan, state.task_ctx()).await?;
    Ok(concat_batches(&out_schema, &batches)?)
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            DataFusionError::Internal(format!("pg_catalog column {name} has an unexpected type"))
        })
}

impl KeyTable {
    /// Notes the schema and name of each relation of `classes` (a `pg_class` batch).
    async fn note_names(&self, state: &dyn Session, classes: &RecordBatch) -> Result<()> {
        let namespaces = read_all(&self.inner, "pg_namespace", state).await?;
        let nsp_oid = column::<Int32Array>(&namespaces, "oid")?;
        let nsp_name = column::<StringArray>(&namespaces, "nspname")?;
        let namespace_of: HashMap<i32, &str> = (0..namespaces.num_rows())
            .map(|i| (nsp_oid.value(i), nsp_name.value(i)))
            .collect();
        let rel_oid = column::<Int32Array>(classes, "oid")?;
        let rel_name = column::<StringArray>(classes, "relname")?;
        let rel_nsp = column::<Int32Array>(classes, "relnamespace")?;
        let names = (0..classes.num_rows())
            .filter_map(|i| {
                let schema = namespace_of.get(&rel_nsp.value(i))?;
                Some((
                    rel_oid.value(i),
                    (schema.to_string(), rel_name.value(i).to_string()),
                ))
            })
            .collect();
        if let Ok(mut noted) = self.keys.names.write() {
            *noted = names;
        }
        Ok(())
    }

    /// The tables that declare a primary key, with the oids the crate gave them.
    async fn keyed_tables(&self, state: &dyn Session) -> Result<Vec<Arc<KeyedTable>>> {
        let namespaces = read_all(&self.inner, "pg_namespace", state).await?;
        let classes = read_all(&self.inner, "pg_class", state).await?;
        let nsp_oid = column::<Int32Array>(&namespaces, "oid")?;
        let nsp_name = column::<StringArray>(&namespaces, "nspname")?;
        let rel_oid = column::<Int32Array>(&classes, "oid")?;
        let rel_name = column::<StringArray>(&classes, "relname")?;
        let rel_nsp = column::<Int32Array>(&classes, "relnamespace")?;
        let namespace_of: HashMap<i32, &str> = (0..namespaces.num_rows())
            .map(|i| (nsp_oid.value(i), nsp_name.value(i)))
            .collect();
        let oid_of = |schema: &str, table: &str| {
            (0..classes.num_rows()).find_map(|i| {
                (rel_name.value(i) == table && namespace_of.get(&rel_nsp.value(i)) == Some(&schema))
                    .then(|| (rel_oid.value(i), rel_nsp.value(i)))
            })
        };
        Ok(declared_keys(&self.catalogs)
            .await?
            .into_iter()
            .filter_map(|key| {
                let (table_oid, namespace_oid) = oid_of(&key.schema, &key.table)?;
                Some(Arc::new(KeyedTable {
                    schema: key.schema,
                    table: key.table,
                    table_oid,
                    namespace_oid,
                    columns: key.columns,
                }))
            })
            .collect())
    }

    /// The crate's `pg_class`, with `relhasindex` set on keyed tables and a row of
    /// kind `i` for each primary-key index.
    async fn pg_class(
        &self,
        state: &dyn Session,
        tables: &[Arc<KeyedTable>],
    ) -> Result<RecordBatch> {
        let classes = read_all(&self.inner, "pg_class", state).await?;
        // The crate's columns, then the ones ktable adds (NULL: no options are set).
        let mut columns = classes.columns().to_vec();
        for field in self.schema.fields().iter().skip(columns.len()) {
            columns.push(arrow::array::new_null_array(
                field.data_type(),
                classes.num_rows(),
            ));
        }
        let classes = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        let oids = column::<Int32Array>(&classes, "oid")?;
        let row_of: HashMap<i32, usize> = (0..classes.num_rows())
            .map(|i| (oids.value(i), i))
            .collect();
        let keyed: std::collections::HashSet<i32> = tables.iter().map(|t| t.table_oid).collect();
        let has_index: BooleanArray = (0..classes.num_rows())
            .map(|i| Some(keyed.contains(&oids.value(i))))
            .collect();
        let mut batches = vec![replace_column(
            &classes,
            "relhasindex",
            Arc::new(has_index),
        )?];
        for table in tables {
            let Some(&row) = row_of.get(&table.table_oid) else {
                continue;
            };
            let natts = i16::try_from(table.columns.len()).unwrap_or(i16::MAX);
            batches.push(row_with(
                &classes,
                row,
                &[
                    ("oid", ScalarValue::Int32(Some(table.index_oid()))),
                    ("relname", ScalarValue::Utf8(Some(table.key_name()))),
                    ("reltype", ScalarValue::Int32(Some(0))),
                    ("reloftype", ScalarValue::Int32(Some(0))),
                    ("relam", ScalarValue::Int32(Some(BTREE_AM_OID))),
                    ("relfilenode", ScalarValue::Int32(Some(table.index_oid()))),
                    ("reltoastrelid", ScalarValue::Int32(Some(0))),
                    ("relhasindex", ScalarValue::Boolean(Some(false))),
                    ("relkind", ScalarValue::Utf8(Some("i".to_string()))),
                    ("relnatts", ScalarValue::Int16(Some(natts))),
                    ("relchecks", ScalarValue::Int16(Some(0))),
                ],
            )?);
        }
        Ok(concat_batches(&self.schema, &batches)?)
    }

    /// The crate's `pg_type` with the regproc columns as `pg_proc` oids (0 for none).
    async fn pg_type(&self, state: &dyn Session) -> Result<RecordBatch> {
        let types = read_all(&self.inner, "pg_type", state).await?;
        let procs = read_all(&self.inner, "pg_proc", state).await?;
        let proc_oid = column::<Int32Array>(&procs, "oid")?;
        let proc_name = column::<StringArray>(&procs, "proname")?;
        // Overloaded names resolve to their first oid, as these support functions
        // are not overloaded in PostgreSQL.
        let mut oid_of: HashMap<&str, i32> = HashMap::new();
        for i in 0..procs.num_rows() {
            oid_of
                .entry(proc_name.value(i))
                .or_insert(proc_oid.value(i));
        }
        let mut columns = Vec::with_capacity(types.num_columns());
        for (field, values) in self.schema.fields().iter().zip(types.columns()) {
            if REGPROC_COLUMNS.contains(&field.name().as_str()) {
                let names = cast(values, &DataType::Utf8)?;
                let names = names
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| DataFusionError::Internal("regproc names".to_string()))?;
                let oids: Int32Array = names
                    .iter()
                    .map(|name| Some(name.and_then(|n| oid_of.get(n).copied()).unwrap_or(0)))
                    .collect();
                columns.push(Arc::new(oids) as ArrayRef);
            } else {
                columns.push(super::acl::as_typed(field, values));
            }
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

/// `pg_type`'s columns of type `regproc`.
const REGPROC_COLUMNS: &[&str] = &[
    "typinput",
    "typoutput",
    "typreceive",
    "typsend",
    "typmodin",
    "typmodout",
    "typanalyze",
    "typsubscript",
];

fn regproc_as_oids(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if REGPROC_COLUMNS.contains(&f.name().as_str()) {
                Field::new(f.name(), DataType::Int32, false)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// The crate's `pg_class` schema with `reloptions` (`text[]`, the storage options
/// `WITH (...)` sets), which psql's `\d+` reads, and `relacl` (`\dp`), which the
/// crate lacks.
fn with_reloptions(schema: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for name in ["reloptions", "relacl"] {
        if schema.field_with_name(name).is_err() {
            fields.push(Field::new(name, super::acl::acl_type(), true));
        }
    }
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn replace_column(batch: &RecordBatch, name: &str, values: ArrayRef) -> Result<RecordBatch> {
    let index = batch.schema().index_of(name)?;
    let mut columns = batch.columns().to_vec();
    columns[index] = values;
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// Row `row` of `batch` as a one-row batch, with some columns replaced.
fn row_with(
    batch: &RecordBatch,
    row: usize,
    overrides: &[(&str, ScalarValue)],
) -> Result<RecordBatch> {
    let schema = batch.schema();
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, values) in schema.fields().iter().zip(batch.columns()) {
        let column = match overrides.iter().find(|(name, _)| name == field.name()) {
            Some((_, value)) => cast(&value.to_array_of_size(1)?, field.data_type())?,
            None => values.slice(row, 1),
        };
        columns.push(column);
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn int16_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Int16, true)))
}

fn int32_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Int32, true)))
}

fn pg_index_schema() -> SchemaRef {
    let flag = |name: &str| Field::new(name, DataType::Boolean, false);
    Arc::new(Schema::new(vec![
        Field::new("indexrelid", DataType::Int32, false),
        Field::new("indrelid", DataType::Int32, false),
        Field::new("indnatts", DataType::Int16, false),
        Field::new("indnkeyatts", DataType::Int16, false),
        flag("indisunique"),
        flag("indnullsnotdistinct"),
        flag("indisprimary"),
        flag("indisexclusion"),
        flag("indimmediate"),
        flag("indisclustered"),
        flag("indisvalid"),
        flag("indcheckxmin"),
        flag("indisready"),
        flag("indislive"),
        flag("indisreplident"),
        Field::new("indkey", int16_list(), false),
        Field::new("indcollation", int32_list(), false),
        Field::new("indclass", int32_list(), false),
        Field::new("indoption", int16_list(), false),
        Field::new("indexprs", DataType::Utf8, true),
        Field::new("indpred", DataType::Utf8, true),
    ]))
}

/// PostgreSQL's default operator class and collation for a key column's type.
fn opclass_and_collation(data_type: &DataType) -> (i32, i32) {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => (3126, 100),
        DataType::Int16 => (1979, 0),
        DataType::Int32 => (1978, 0),
        DataType::Int64 => (3124, 0),
        _ => (0, 0),
    }
}

fn pg_index_rows(schema: &SchemaRef, tables: &[Arc<KeyedTable>]) -> Result<RecordBatch> {
    let n = tables.len();
    let mut indkey = ListBuilder::new(Int16Builder::new());
    let mut indcollation = ListBuilder::new(Int32Builder::new());
    let mut indclass = ListBuilder::new(Int32Builder::new());
    let mut indoption = ListBuilder::new(Int16Builder::new());
    for table in tables {
        for (_, attnum, data_type) in &table.columns {
            let (opclass, collation) = opclass_and_collation(data_type);
            indkey.values().append_value(*attnum);
            indcollation.values().append_value(collation);
            indclass.values().append_value(opclass);
            indoption.values().append_value(0);
        }
        indkey.append(true);
        indcollation.append(true);
        indclass.append(true);
        indoption.append(true);
    }
    let natts: Int16Array = tables
        .iter()
        .map(|t| Some(i16::try_from(t.columns.len()).unwrap_or(i16::MAX)))
        .collect();
    let flag = |value: bool| Arc::new(BooleanArray::from(vec![value; n])) as ArrayRef;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(
            tables.iter().map(|t| t.index_oid()),
        )),
        Arc::new(Int32Array::from_iter_values(
            tables.iter().map(|t| t.table_oid),
        )),
        Arc::new(natts.clone()),
        Arc::new(natts),
        flag(true),  // indisunique
        flag(false), // indnullsnotdistinct
        flag(true),  // indisprimary
        flag(false), // indisexclusion
        flag(true),  // indimmediate
        flag(false), // indisclustered
        flag(true),  // indisvalid
        flag(false), // indcheckxmin
        flag(true),  // indisready
        flag(true),  // indislive
        flag(false), // indisreplident
        Arc::new(indkey.finish()),
        Arc::new(indcollation.finish()),
        Arc::new(indclass.finish()),
        Arc::new(indoption.finish()),
        Arc::new(StringArray::new_null(n)),
        Arc::new(StringArray::new_null(n)),
    ];
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

fn pg_constraint_schema() -> SchemaRef {
    let oid = |name: &str| Field::new(name, DataType::Int32, false);
    let flag = |name: &str| Field::new(name, DataType::Boolean, false);
    let char = |name: &str| Field::new(name, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        oid("oid"),
        Field::new("conname", DataType::Utf8, false),
        oid("connamespace"),
        char("contype"),
        flag("condeferrable"),
        flag("condeferred"),
        flag("convalidated"),
        oid("conrelid"),
        oid("contypid"),
        oid("conindid"),
        oid("conparentid"),
        oid("confrelid"),
        char("confupdtype"),
        char("confdeltype"),
        char("confmatchtype"),
        flag("conislocal"),
        Field::new("coninhcount", DataType::Int16, false),
        flag("connoinherit"),
        Field::new("conkey", int16_list(), true),
        Field::new("confkey", int16_list(), true),
        Field::new("conpfeqop", int32_list(), true),
        Field::new("conppeqop", int32_list(), true),
        Field::new("conffeqop", int32_list(), true),
        Field::new("confdelsetcols", int16_list(), true),
        Field::new("conexclop", int32_list(), true),
        Field::new("conbin", DataType::Utf8, true),
    ]))
}

fn pg_constraint_rows(schema: &SchemaRef, tables: &[Arc<KeyedTable>]) -> Result<RecordBatch> {
    let n = tables.len();
    let mut conkey = ListBuilder::new(Int16Builder::new());
    for table in tables {
        for (_, attnum, _) in &table.columns {
            conkey.values().append_value(*attnum);
        }
        conkey.append(true);
    }
    let ints = |f: &dyn Fn(&KeyedTable) -> i32| {
        Arc::new(Int32Array::from_iter_values(tables.iter().map(|t| f(t)))) as ArrayRef
    };
    let text = |value: &str| Arc::new(StringArray::from(vec![value; n])) as ArrayRef;
    let flag = |value: bool| Arc::new(BooleanArray::from(vec![value; n])) as ArrayRef;
    let null_list = |data_type: DataType| arrow::array::new_null_array(&data_type, n);
    let columns: Vec<ArrayRef> = vec![
        ints(&|t| t.constraint_oid()),
        Arc::new(StringArray::from_iter_values(
            tables.iter().map(|t| t.key_name()),
        )),
        ints(&|t| t.namespace_oid),
        text("p"),
        flag(false), // condeferrable
        flag(false), // condeferred
        flag(true),  // convalidated
        ints(&|t| t.table_oid),
        ints(&|_| 0), // contypid
        ints(&|t| t.index_oid()),
        ints(&|_| 0), // conparentid
        ints(&|_| 0), // confrelid
        text(" "),
        text(" "),
        text(" "),
        flag(true), // conislocal
        Arc::new(Int16Array::from(vec![0; n])),
        flag(true), // connoinherit
        Arc::new(conkey.finish()),
        null_list(int16_list()),
        null_list(int32_list()),
        null_list(int32_list()),
        null_list(int32_list()),
        null_list(int16_list()),
        null_list(int32_list()),
        Arc::new(StringArray::new_null(n)),
    ];
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

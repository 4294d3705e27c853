//! `pg_settings` with the settings `current_setting()` answers. datafusion-pg-catalog
//! lists only `standard_conforming_strings`; pgjdbc reads `max_index_keys` from here
//! before `getImportedKeys`/`getExportedKeys` ("Unable to determine a value for
//! MaxIndexKeys" without it), and tools show the server's settings from here.

use super::functions::SETTINGS;
use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::Result;
use datafusion::datasource::MemTable;
use std::sync::Arc;

/// The view, in the crate's schema: `name` and `setting` filled, every other
/// column NULL.
pub(super) fn table(schema: SchemaRef) -> Result<Arc<dyn TableProvider>> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| match field.name().as_str() {
            "name" => Ok(strings(SETTINGS.iter().map(|(name, _)| *name))),
            "setting" | "reset_val" => Ok(strings(SETTINGS.iter().map(|(_, value)| *value))),
            _ => Ok(arrow::array::new_null_array(
                field.data_type(),
                SETTINGS.len(),
            )),
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(values.map(Some).collect::<StringArray>())
}

//! `pg_settings` with the settings `current_setting()` answers. datafusion-pg-catalog
//! lists only `standard_conforming_strings`; pgjdbc reads `max_index_keys` from here
//! before `getImportedKeys`/`getExportedKeys` ("Unable to determine a value for
//! MaxIndexKeys" without it), and tools show the server's settings from here.

use super::functions::SETTINGS;
use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::Result;
use datafusion::datasource::MemTable;
use std::sync::Arc;

/// The view, in the crate's schema and `boot_val`: `name`, `setting` (and the reset
/// and boot values, the same) filled, `source` "default", every other column NULL.
pub(super) fn table(schema: SchemaRef) -> Result<Arc<dyn TableProvider>> {
    // psql's `\dconfig` compares `setting` with `boot_val`, which the crate lacks.
    let schema = if schema.field_with_name("boot_val").is_ok() {
        schema
    } else {
        let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new("boot_val", DataType::Utf8, true)));
        Arc::new(Schema::new(fields))
    };
    let columns = schema
        .fields()
        .iter()
        .map(|field| match field.name().as_str() {
            "name" => Ok(strings(SETTINGS.iter().map(|(name, _)| *name))),
            "setting" | "reset_val" | "boot_val" => {
                Ok(strings(SETTINGS.iter().map(|(_, value)| *value)))
            }
            "source" => Ok(strings(SETTINGS.iter().map(|_| "default"))),
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

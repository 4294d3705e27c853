//! Relation sizes as PostgreSQL's functions give them: `pg_table_size`,
//! `pg_relation_size`, `pg_total_relation_size`, `pg_indexes_size`,
//! `pg_database_size`, and `pg_size_pretty` to write them (psql's `\dt+` and `\l+`, and
//! the `SELECT pg_size_pretty(pg_total_relation_size('users'))` people type).
//!
//! A relation's size is what its provider's statistics say (`total_byte_size`): for a
//! ktable table its memory, key index included (so it has no index size apart); for
//! a stream its retained batches. Sizes are read when the function runs, from the
//! context's catalogs: an oid names a relation as `pg_class` last listed it, text is
//! a name (`users`, `public.users`, `"Users"`), as a `regclass` argument is.

use super::catalog::KeyDirectory;
use super::functions::{oids, udf};
use arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::catalog::{CatalogProviderList, TableProvider};
use datafusion::common::exec_err;
use datafusion::logical_expr::{ScalarUDF, Signature, TypeSignature, Volatility};
use futures::FutureExt;
use std::sync::Arc;

/// Every function of this module, to register on a context.
pub(super) fn all(
    keys: &Arc<KeyDirectory>,
    catalogs: &Arc<dyn CatalogProviderList>,
) -> Vec<ScalarUDF> {
    let sizes = Arc::new(Sizes {
        keys: Arc::clone(keys),
        catalogs: Arc::clone(catalogs),
    });
    vec![
        pg_size_pretty(),
        relation_size("pg_table_size", Arc::clone(&sizes), false),
        relation_size("pg_relation_size", Arc::clone(&sizes), false),
        relation_size("pg_total_relation_size", Arc::clone(&sizes), false),
        relation_size("pg_indexes_size", Arc::clone(&sizes), true),
        pg_database_size(sizes),
    ]
}

/// Finds relations by oid or name in the context's catalogs.
#[derive(Debug)]
struct Sizes {
    keys: Arc<KeyDirectory>,
    catalogs: Arc<dyn CatalogProviderList>,
}

impl Sizes {
    /// The provider of `schema.table` in any catalog, if its lookup answers at once
    /// (the memory schemas' does; one that would wait counts as unknown).
    fn provider(&self, schema: &str, table: &str) -> Option<Arc<dyn TableProvider>> {
        self.catalogs.catalog_names().iter().find_map(|catalog| {
            let schema = self.catalogs.catalog(catalog)?.schema(schema)?;
            schema.table(table).now_or_never()?.ok()?
        })
    }

    /// The bytes of `schema.table`, if its provider tells them.
    fn size(&self, schema: &str, table: &str) -> Option<i64> {
        let bytes = self
            .provider(schema, table)?
            .statistics()?
            .total_byte_size
            .get_value()
            .copied()?;
        Some(i64::try_from(bytes).unwrap_or(i64::MAX))
    }

    /// The bytes of every relation outside the catalog schemas whose provider tells them.
    fn total(&self) -> i64 {
        let mut total = 0i64;
        for catalog in self.catalogs.catalog_names() {
            let Some(catalog) = self.catalogs.catalog(&catalog) else {
                continue;
            };
            // The catalogs' own schemas hold views of the catalog, not data.
            let data = catalog
                .schema_names()
                .into_iter()
                .filter(|s| s != "pg_catalog" && s != "information_schema");
            for schema in data {
                for table in catalog
                    .schema(&schema)
                    .map(|s| s.table_names())
                    .unwrap_or_default()
                {
                    total = total.saturating_add(self.size(&schema, &table).unwrap_or(0));
                }
            }
        }
        total
    }
}

/// `schema.table` of a relation named in text as PostgreSQL reads a `regclass`:
/// `users`, `public.users`, `"Mixed Case"` (unquoted names fold to lower case).
fn relation_name(text: &str) -> (String, String) {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = text.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut current)),
            c if quoted => current.push(c),
            c => current.extend(c.to_lowercase()),
        }
    }
    parts.push(current);
    match parts.len() {
        1 => ("public".to_string(), parts.remove(0)),
        _ => {
            let table = parts.pop().unwrap_or_default();
            (parts.pop().unwrap_or_default(), table)
        }
    }
}

/// `pg_table_size(rel)` and the like: `rel` an oid or a name. `indexes`: the size of
/// the relation's indexes apart, 0 for a relation whose size is known (its key index
/// is in its size). NULL for a relation not found or whose size is not known.
fn relation_size(name: &'static str, sizes: Arc<Sizes>, indexes: bool) -> ScalarUDF {
    udf(
        name,
        Signature::one_of(
            vec![TypeSignature::Any(1), TypeSignature::Any(2)],
            Volatility::Volatile,
        ),
        DataType::Int64,
        move |args| {
            let relations = &args[0];
            let named: Vec<Option<(String, String)>> = match relations.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                    let texts = cast(relations, &DataType::Utf8)?;
                    let Some(texts) = texts.as_any().downcast_ref::<StringArray>() else {
                        return exec_err!("{name} takes a relation");
                    };
                    texts.iter().map(|t| t.map(relation_name)).collect()
                }
                _ => oids(relations)?
                    .iter()
                    .map(|oid| oid.and_then(|oid| sizes.keys.name_of(oid)))
                    .collect(),
            };
            let out: Int64Array = named
                .iter()
                .map(|relation| {
                    let (schema, table) = relation.as_ref()?;
                    let size = sizes.size(schema, table)?;
                    Some(if indexes { 0 } else { size })
                })
                .collect();
            Ok(Arc::new(out) as ArrayRef)
        },
    )
}

/// `pg_database_size(name or oid)`: the bytes of every relation whose size is known
/// (one database serves them all).
fn pg_database_size(sizes: Arc<Sizes>) -> ScalarUDF {
    udf(
        "pg_database_size",
        Signature::any(1, Volatility::Volatile),
        DataType::Int64,
        move |args| {
            let total = sizes.total();
            let out: Int64Array = (0..args[0].len())
                .map(|i| (!args[0].is_null(i)).then_some(total))
                .collect();
            Ok(Arc::new(out) as ArrayRef)
        },
    )
}

/// `pg_size_pretty(bytes)`: a size as PostgreSQL writes it, in bytes below 10 kB, else
/// in the largest unit (kB, MB, GB, TB, PB) that keeps it under 20,480, rounded half
/// away from zero.
fn pg_size_pretty() -> ScalarUDF {
    udf(
        "pg_size_pretty",
        Signature::any(1, Volatility::Immutable),
        DataType::Utf8,
        |args| {
            let sizes = cast(&args[0], &DataType::Int64)?;
            let Some(sizes) = sizes.as_any().downcast_ref::<Int64Array>() else {
                return exec_err!("pg_size_pretty takes a size in bytes");
            };
            let out: StringArray = sizes.iter().map(|size| size.map(size_pretty)).collect();
            Ok(Arc::new(out) as ArrayRef)
        },
    )
}

/// PostgreSQL's `pg_size_pretty` of one size (its `size_pretty_units` table: each unit
/// after bytes is kept in halves until printed, then rounded half away from zero).
fn size_pretty(bytes: i64) -> String {
    if bytes.unsigned_abs() < 10 * 1024 {
        return format!("{bytes} bytes");
    }
    let half_rounded = |halves: i64| (halves + if halves < 0 { -1 } else { 1 }) / 2;
    // In half kilobytes, then half of each larger unit.
    let mut halves = bytes / (1 << 9);
    for unit in ["kB", "MB", "GB", "TB"] {
        if halves.unsigned_abs() < 20 * 1024 - 1 {
            return format!("{} {unit}", half_rounded(halves));
        }
        halves /= 1 << 10;
    }
    format!("{} PB", half_rounded(halves))
}

#[cfg(test)]
mod tests {
    use super::{relation_name, size_pretty};

    /// PostgreSQL 15.18's answers for the same sizes (`SELECT pg_size_pretty(v)`).
    #[test]
    fn sizes_are_written_as_postgresql_writes_them() {
        for (bytes, text) in [
            (0, "0 bytes"),
            (10_239, "10239 bytes"),
            (10_240, "10 kB"),
            (10_752, "11 kB"),
            (-10_752, "-11 kB"),
            (1_048_575, "1024 kB"),
            (10_485_248, "10 MB"),
            (20_966_400, "20 MB"),
            (20_970_496, "20 MB"),
            (20_971_520, "20 MB"),
            (98_566_144, "94 MB"),
            (1_099_511_627_776, "1024 GB"),
            (i64::MAX, "8192 PB"),
        ] {
            assert_eq!(size_pretty(bytes), text, "{bytes}");
        }
    }

    #[test]
    fn relation_names_read_as_regclass_reads_them() {
        let name = |s: &str, t: &str| (s.to_string(), t.to_string());
        assert_eq!(relation_name("users"), name("public", "users"));
        assert_eq!(relation_name("Users"), name("public", "users"));
        assert_eq!(relation_name("public.users"), name("public", "users"));
        assert_eq!(
            relation_name("\"My \"\"T\"\".x\""),
            name("public", "My \"T\".x")
        );
        assert_eq!(relation_name("other.\"Mixed\""), name("other", "Mixed"));
    }
}

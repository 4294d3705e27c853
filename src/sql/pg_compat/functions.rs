//! Catalog functions that datafusion-pg-catalog lacks or answers differently from
//! PostgreSQL, as the tools call them while connecting and browsing: psql's `\d` and
//! `\df`, pgjdbc's and SQLAlchemy's index and key queries, Grafana's version check.

use super::catalog::KeyDirectory;
use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use std::sync::Arc;

/// The settings `current_setting(name)` answers and `pg_settings` lists, as ktable's
/// server reports them at connect. A `SET` by the client is not seen here: the
/// functions have no session.
pub(super) const SETTINGS: &[(&str, &str)] = &[
    ("server_version", "16.6"),
    ("server_version_num", "160006"),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("datestyle", "ISO, MDY"),
    ("timezone", "UTC"),
    ("integer_datetimes", "on"),
    ("standard_conforming_strings", "on"),
    ("search_path", "\"$user\", public"),
    ("max_identifier_length", "63"),
    ("transaction_isolation", "read committed"),
    ("default_transaction_isolation", "read committed"),
    ("default_transaction_read_only", "off"),
    ("transaction_read_only", "off"),
    ("is_superuser", "off"),
    ("lc_collate", "C"),
    ("lc_ctype", "C"),
    ("application_name", ""),
    ("statement_timeout", "0"),
    ("block_size", "8192"),
    // PostgreSQL's compiled-in limit on index and key columns (pgjdbc reads it).
    ("max_index_keys", "32"),
];

/// How a function answers from its argument columns.
type Body = dyn Fn(&[ArrayRef]) -> Result<ArrayRef> + Send + Sync;

/// A scalar function over arrays, with the signature and return type given.
struct Function {
    name: &'static str,
    signature: Signature,
    returns: DataType,
    body: Box<Body>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.name)
            .finish()
    }
}

impl PartialEq for Function {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Function {}

impl std::hash::Hash for Function {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for Function {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let out = (self.body)(&arrays)?;
        if scalar && out.len() == 1 {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

pub(super) fn udf(
    name: &'static str,
    signature: Signature,
    returns: DataType,
    body: impl Fn(&[ArrayRef]) -> Result<ArrayRef> + Send + Sync + 'static,
) -> ScalarUDF {
    ScalarUDF::new_from_impl(Function {
        name,
        signature,
        returns,
        body: Box::new(body),
    })
}

/// An argument column as i64 (oids are Int32 columns, Int64 literals).
pub(super) fn oids(arg: &ArrayRef) -> Result<Int64Array> {
    let values = cast(arg, &DataType::Int64)?;
    match values.as_any().downcast_ref::<Int64Array>() {
        Some(values) => Ok(values.clone()),
        None => exec_err!("expected an oid argument"),
    }
}

fn texts(arg: &ArrayRef) -> Result<StringArray> {
    let values = cast(arg, &DataType::Utf8)?;
    match values.as_any().downcast_ref::<StringArray>() {
        Some(values) => Ok(values.clone()),
        None => exec_err!("expected a text argument"),
    }
}

/// Every function of this module, to register on a context.
pub(super) fn all(keys: &Arc<KeyDirectory>) -> Vec<ScalarUDF> {
    vec![
        current_setting(),
        visible("pg_type_is_visible"),
        visible("pg_function_is_visible"),
        unknown_text("pg_get_function_result"),
        unknown_text("pg_get_function_arguments"),
        unknown_text("pg_get_function_identity_arguments"),
        unknown_text("pg_get_function_sqlbody"),
        visible("pg_operator_is_visible"),
        no_comment("col_description", &[2]),
        no_comment("obj_description", &[1, 2]),
        no_comment("shobj_description", &[2]),
        pg_tablespace_location(),
        pg_get_viewdef(),
        pg_get_indexdef(Arc::clone(keys)),
        pg_get_constraintdef(Arc::clone(keys)),
        format(),
        ScalarUDF::new_from_impl(ExpandArray {
            signature: Signature::any(1, Volatility::Immutable),
        }),
    ]
}

/// `information_schema._pg_expandarray(array)`: pgjdbc's `getPrimaryKeys` and
/// `getIndexInfo` and Metabase's index sync read `(… ).x` and `(… ).n` of it over
/// `pg_index.indkey`. In PostgreSQL it is a set-returning function: a row `(x, n)` per
/// element (value and 1-based position), none for an empty or NULL array. DataFusion
/// expands rows only with `unnest`, so the function gives the list of those `(x, n)`
/// structs (empty for NULL) and the statement rewrite (`syntax.rs`) wraps each call
/// in `unnest`: a composite key's `indkey` gives a row per key column, as it does in
/// PostgreSQL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ExpandArray {
    signature: Signature,
}

impl ExpandArray {
    fn fields(element: &DataType) -> arrow::datatypes::Fields {
        arrow::datatypes::Fields::from(vec![
            arrow::datatypes::Field::new("x", element.clone(), true),
            arrow::datatypes::Field::new("n", DataType::Int32, true),
        ])
    }

    fn item(element: &DataType) -> arrow::datatypes::FieldRef {
        Arc::new(arrow::datatypes::Field::new(
            "item",
            DataType::Struct(Self::fields(element)),
            true,
        ))
    }
}

impl ScalarUDFImpl for ExpandArray {
    fn name(&self) -> &str {
        "_pg_expandarray"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [DataType::List(item)] | [DataType::LargeList(item)] => {
                Ok(DataType::List(Self::item(item.data_type())))
            }
            _ => exec_err!("_pg_expandarray takes an array"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = matches!(args.args.first(), Some(ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(lists) = arrays
            .first()
            .and_then(|a| a.as_any().downcast_ref::<arrow::array::ListArray>())
        else {
            return exec_err!("_pg_expandarray takes an array");
        };
        let element = lists.value_type();
        // Each list's elements stay where they are; only a NULL list's (if any) are
        // left out, so the offsets are rebuilt and the values taken by index.
        let mut indices: Vec<u64> = Vec::with_capacity(lists.values().len());
        let mut positions: Vec<i32> = Vec::with_capacity(lists.values().len());
        let mut offsets: Vec<i32> = Vec::with_capacity(lists.len() + 1);
        offsets.push(0);
        for i in 0..lists.len() {
            if !lists.is_null(i) {
                let start = usize::try_from(lists.value_offsets()[i]).unwrap_or(0);
                let length = lists.value_length(i).max(0) as usize;
                indices.extend((start..start + length).map(|at| at as u64));
                positions.extend(1..=length as i32);
            }
            offsets.push(indices.len() as i32);
        }
        let x = arrow::compute::take(
            lists.values().as_ref(),
            &arrow::array::UInt64Array::from(indices),
            None,
        )?;
        let n = arrow::array::Int32Array::from(positions);
        let rows =
            arrow::array::StructArray::try_new(Self::fields(&element), vec![x, Arc::new(n)], None)?;
        let out = arrow::array::ListArray::try_new(
            Self::item(&element),
            arrow::buffer::OffsetBuffer::new(offsets.into()),
            Arc::new(rows),
            None,
        )?;
        if scalar && out.len() == 1 {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(Arc::new(out)))
        }
    }
}

/// `format(template, args...)`: Metabase builds type names and qualified table names
/// with it (`format('%I.%I', schema, table)`). `%s` is the text of the argument (empty
/// for NULL), `%I` the argument quoted as an identifier where needed, `%L` as a
/// literal (`NULL` for NULL), `%%` a percent sign.
fn format() -> ScalarUDF {
    udf(
        "format",
        Signature::variadic_any(Volatility::Stable),
        DataType::Utf8,
        |args| {
            let Some(template) = args.first() else {
                return exec_err!("format takes a format string");
            };
            let template = texts(template)?;
            let values = args[1..].iter().map(texts).collect::<Result<Vec<_>>>()?;
            let mut out = Vec::with_capacity(template.len());
            for row in 0..template.len() {
                if template.is_null(row) {
                    out.push(None);
                    continue;
                }
                let mut text = String::new();
                let mut next = 0;
                let mut chars = template.value(row).chars();
                while let Some(c) = chars.next() {
                    if c != '%' {
                        text.push(c);
                        continue;
                    }
                    let Some(spec) = chars.next() else {
                        return exec_err!("unterminated format() type specifier");
                    };
                    if spec == '%' {
                        text.push('%');
                        continue;
                    }
                    let Some(arg) = values.get(next) else {
                        return exec_err!("too few arguments for format()");
                    };
                    next += 1;
                    let value = (!arg.is_null(row)).then(|| arg.value(row));
                    match (spec, value) {
                        ('s', Some(v)) => text.push_str(v),
                        ('s', None) => {}
                        ('I', Some(v)) => text.push_str(&super::catalog::quote_ident(v)),
                        ('I', None) => {
                            return exec_err!(
                                "null values cannot be formatted as an SQL identifier"
                            )
                        }
                        ('L', Some(v)) => text.push_str(&format!("'{}'", v.replace('\'', "''"))),
                        ('L', None) => text.push_str("NULL"),
                        (other, _) => {
                            return exec_err!("unrecognized format() type specifier \"{other}\"")
                        }
                    }
                }
                out.push(Some(text));
            }
            Ok(Arc::new(StringArray::from(out)) as ArrayRef)
        },
    )
}

/// `current_setting(name [, missing_ok])`: Grafana reads `server_version_num` to pick
/// its SQL, drivers read `search_path` and `standard_conforming_strings`. An unknown
/// setting is PostgreSQL's error, or NULL with `missing_ok`.
fn current_setting() -> ScalarUDF {
    udf(
        "current_setting",
        Signature::variadic_any(Volatility::Stable),
        DataType::Utf8,
        |args| {
            let Some(names) = args.first() else {
                return exec_err!("current_setting takes a setting name");
            };
            let names = texts(names)?;
            let missing_ok = match args.get(1) {
                Some(flag) => cast(flag, &DataType::Boolean)?
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .cloned(),
                None => None,
            };
            let mut out = Vec::with_capacity(names.len());
            for i in 0..names.len() {
                if names.is_null(i) {
                    out.push(None);
                    continue;
                }
                let name = names.value(i).to_ascii_lowercase();
                match SETTINGS.iter().find(|(n, _)| *n == name) {
                    Some((_, value)) => out.push(Some(value.to_string())),
                    None if missing_ok
                        .as_ref()
                        .is_some_and(|m| m.is_valid(i) && m.value(i)) =>
                    {
                        out.push(None)
                    }
                    None => return exec_err!("unrecognized configuration parameter \"{name}\""),
                }
            }
            Ok(Arc::new(StringArray::from(out)) as ArrayRef)
        },
    )
}

/// `pg_type_is_visible(oid)` and the like: every type and function of ktable's
/// catalog lives in `pg_catalog`, always on the search path: true (NULL for NULL).
fn visible(name: &'static str) -> ScalarUDF {
    udf(
        name,
        Signature::any(1, Volatility::Stable),
        DataType::Boolean,
        |args| {
            let values: BooleanArray = (0..args[0].len())
                .map(|i| (!args[0].is_null(i)).then_some(true))
                .collect();
            Ok(Arc::new(values) as ArrayRef)
        },
    )
}

/// Functions describing `pg_proc` rows that ktable's static catalog cannot answer:
/// NULL. psql's `\df` needs them to plan; it lists no row outside `pg_catalog`.
fn unknown_text(name: &'static str) -> ScalarUDF {
    udf(
        name,
        Signature::any(1, Volatility::Stable),
        DataType::Utf8,
        |args| Ok(Arc::new(StringArray::new_null(args[0].len())) as ArrayRef),
    )
}

/// `col_description(table, column)`, `obj_description(oid [, catalog])`: the comment
/// on a column or object. Metabase and DBeaver show it beside each field; nothing in
/// ktable carries a comment, so it is NULL, as PostgreSQL's for an object without one.
fn no_comment(name: &'static str, arities: &[usize]) -> ScalarUDF {
    let forms = arities.iter().map(|&n| TypeSignature::Any(n)).collect();
    udf(
        name,
        Signature::one_of(forms, Volatility::Stable),
        DataType::Utf8,
        |args| Ok(Arc::new(StringArray::new_null(args[0].len())) as ArrayRef),
    )
}

/// `pg_get_indexdef(index [, column, pretty])`: the `CREATE INDEX` statement of a
/// primary key's index, or with a column number above 0 that key column's name.
/// NULL for an oid that is no index, as in PostgreSQL.
fn pg_get_indexdef(keys: Arc<KeyDirectory>) -> ScalarUDF {
    udf(
        "pg_get_indexdef",
        Signature::variadic_any(Volatility::Stable),
        DataType::Utf8,
        move |args| {
            let Some(index) = args.first() else {
                return exec_err!("pg_get_indexdef takes an index oid");
            };
            let index = oids(index)?;
            let column = args.get(1).map(oids).transpose()?;
            let out: StringArray = (0..index.len())
                .map(|i| {
                    if index.is_null(i) {
                        return None;
                    }
                    let table = keys.get(index.value(i))?;
                    match column.as_ref().map(|c| (c.is_null(i), c.value(i))) {
                        Some((true, _)) => None,
                        Some((false, n)) if n > 0 => {
                            let n = usize::try_from(n - 1).ok()?;
                            table
                                .columns
                                .get(n)
                                .map(|(name, _, _)| super::catalog::quote_ident(name))
                        }
                        _ => Some(table.index_definition()),
                    }
                })
                .collect();
            Ok(Arc::new(out) as ArrayRef)
        },
    )
}

/// `pg_get_constraintdef(constraint [, pretty])`: `PRIMARY KEY (id)`; NULL for an
/// oid that is no constraint of a ktable table.
fn pg_get_constraintdef(keys: Arc<KeyDirectory>) -> ScalarUDF {
    udf(
        "pg_get_constraintdef",
        Signature::variadic_any(Volatility::Stable),
        DataType::Utf8,
        move |args| {
            let Some(constraint) = args.first() else {
                return exec_err!("pg_get_constraintdef takes a constraint oid");
            };
            let constraint = oids(constraint)?;
            let out: StringArray = (0..constraint.len())
                .map(|i| {
                    (!constraint.is_null(i))
                        .then(|| keys.get(constraint.value(i)))
                        .flatten()
                        .map(|t| t.constraint_definition())
                })
                .collect();
            Ok(Arc::new(out) as ArrayRef)
        },
    )
}

/// `pg_tablespace_location(oid)`: empty, as PostgreSQL's for its built-in tablespaces
/// (psql's `\db`).
fn pg_tablespace_location() -> ScalarUDF {
    udf(
        "pg_tablespace_location",
        Signature::any(1, Volatility::Stable),
        DataType::Utf8,
        |args| {
            let out: StringArray = (0..args[0].len())
                .map(|i| (!args[0].is_null(i)).then_some(""))
                .collect();
            Ok(Arc::new(out) as ArrayRef)
        },
    )
}

/// `pg_get_viewdef(view [, pretty])`: NULL. ktable's views (`ktable_tables`, ...) are
/// built in, not defined by a query (psql's `\d+` of a view asks).
fn pg_get_viewdef() -> ScalarUDF {
    udf(
        "pg_get_viewdef",
        Signature::one_of(
            vec![TypeSignature::Any(1), TypeSignature::Any(2)],
            Volatility::Stable,
        ),
        DataType::Utf8,
        |args| Ok(Arc::new(StringArray::new_null(args[0].len())) as ArrayRef),
    )
}

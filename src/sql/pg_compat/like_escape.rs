//! `like_escape(pattern, escape)`, PostgreSQL's function that rewrites a LIKE
//! pattern written with the escape character `escape` into one written with the
//! backslash, DataFusion's only escape character. The statement rewrites turn
//! `LIKE p ESCAPE '/'` (SQLAlchemy 2's schema listing) into
//! `LIKE like_escape(p, '/')`.

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{create_udf, ColumnarValue, ScalarUDF, Volatility};
use std::sync::Arc;

pub(super) fn like_escape_udf() -> ScalarUDF {
    create_udf(
        "like_escape",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args| {
            let scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let [patterns, escapes] = arrays.as_slice() else {
                return exec_err!("like_escape takes a pattern and an escape character");
            };
            let patterns = texts(patterns)?;
            let escapes = texts(escapes)?;
            let translated = (0..patterns.len())
                .map(|i| {
                    if patterns.is_null(i) || escapes.is_null(i) {
                        return Ok(None);
                    }
                    translate(patterns.value(i), escapes.value(i)).map(Some)
                })
                .collect::<Result<StringArray>>()?;
            let translated: ArrayRef = Arc::new(translated);
            Ok(if scalar {
                ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(
                    &translated,
                    0,
                )?)
            } else {
                ColumnarValue::Array(translated)
            })
        }),
    )
}

fn texts(values: &ArrayRef) -> Result<StringArray> {
    let values = cast(values, &DataType::Utf8)?;
    match values.as_any().downcast_ref::<StringArray>() {
        Some(values) => Ok(values.clone()),
        None => exec_err!("like_escape takes text"),
    }
}

/// `pattern` with `escape` as its escape character, rewritten with the backslash.
/// An empty `escape` means no escape character, as in PostgreSQL.
fn translate(pattern: &str, escape: &str) -> Result<String> {
    let mut escape_chars = escape.chars();
    let escape = escape_chars.next();
    if escape_chars.next().is_some() {
        return exec_err!("invalid escape string: it must be empty or one character");
    }
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            match chars.next() {
                Some(escaped) => {
                    out.push('\\');
                    out.push(escaped);
                }
                None => return exec_err!("LIKE pattern must not end with escape character"),
            }
        } else if c == '\\' {
            // A backslash that is not the escape character stands for itself.
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::translate;

    #[test]
    fn another_escape_character_becomes_the_backslash() {
        assert_eq!(translate("pg/_%", "/").unwrap(), r"pg\_%");
        assert_eq!(translate(r"a\b//c", "/").unwrap(), r"a\\b\/c");
        assert_eq!(translate(r"a\b", "").unwrap(), r"a\\b");
        assert!(translate("a/", "/").is_err());
    }
}

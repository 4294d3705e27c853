//! `json_build_object(key, value, ...)`: SQLAlchemy's column reflection builds its
//! identity and collation details with it.

use arrow::array::{ArrayRef, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use std::sync::Arc;

/// The function, ready to register.
pub(super) fn json_build_object_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(JsonBuildObject {
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

/// PostgreSQL's `json_build_object`. The result is JSON text typed `text`: DataFusion
/// has no JSON type and arrow-pg maps no Arrow type to PostgreSQL's `json`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuildObject {
    signature: Signature,
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if args.args.len() % 2 != 0 {
            return exec_err!("json_build_object: argument list must have even number of elements");
        }
        let rows = args.number_rows;
        let columns = args
            .args
            .iter()
            .map(|arg| arg.to_array(rows))
            .collect::<Result<Vec<_>>>()?;
        let mut out = StringBuilder::new();
        for row in 0..rows {
            out.append_value(object_at(&columns, row)?);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// Row `row` of the key/value columns as a JSON object, keys in argument order (as
/// PostgreSQL keeps them, duplicates included) and spaced as PostgreSQL prints `json`.
fn object_at(columns: &[ArrayRef], row: usize) -> Result<String> {
    let mut members = Vec::with_capacity(columns.len() / 2);
    for pair in columns.chunks_exact(2) {
        let key = ScalarValue::try_from_array(&pair[0], row)?;
        if key.is_null() {
            return exec_err!("json_build_object: null value not allowed for object key");
        }
        let value = ScalarValue::try_from_array(&pair[1], row)?;
        members.push(format!(
            "{} : {}",
            json_string(&text_of(&key)),
            json_value(&value)
        ));
    }
    Ok(format!("{{{}}}", members.join(", ")))
}

/// A value as JSON: numbers and booleans as themselves, everything else as a string.
fn json_value(value: &ScalarValue) -> String {
    if value.is_null() {
        return "null".into();
    }
    match value {
        ScalarValue::Boolean(Some(b)) => b.to_string(),
        ScalarValue::Int8(_)
        | ScalarValue::Int16(_)
        | ScalarValue::Int32(_)
        | ScalarValue::Int64(_)
        | ScalarValue::UInt8(_)
        | ScalarValue::UInt16(_)
        | ScalarValue::UInt32(_)
        | ScalarValue::UInt64(_)
        | ScalarValue::Decimal128(..) => value.to_string(),
        // NaN and infinities are no JSON numbers; PostgreSQL writes them as strings.
        ScalarValue::Float32(Some(f)) if f.is_finite() => value.to_string(),
        ScalarValue::Float64(Some(f)) if f.is_finite() => value.to_string(),
        _ => json_string(&text_of(value)),
    }
}

/// The text of a value as PostgreSQL would print it (strings without quotes).
fn text_of(value: &ScalarValue) -> String {
    match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => s.clone(),
        other => other.to_string(),
    }
}

fn json_string(text: &str) -> String {
    // Serializing a &str cannot fail; the fallback only keeps this total.
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BooleanArray, Int64Array, StringArray};

    #[test]
    fn builds_objects_row_by_row_in_argument_order() {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["start", "start"])),
            Arc::new(Int64Array::from(vec![Some(1), None])),
            Arc::new(StringArray::from(vec!["always", "always"])),
            Arc::new(BooleanArray::from(vec![true, false])),
            Arc::new(StringArray::from(vec!["name", "name"])),
            Arc::new(StringArray::from(vec!["a \"b\"", "c"])),
        ];
        assert_eq!(
            object_at(&columns, 0).unwrap(),
            r#"{"start" : 1, "always" : true, "name" : "a \"b\""}"#
        );
        assert_eq!(
            object_at(&columns, 1).unwrap(),
            r#"{"start" : null, "always" : false, "name" : "c"}"#
        );
    }

    #[test]
    fn a_null_key_is_an_error() {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![None::<&str>])),
            Arc::new(Int64Array::from(vec![1])),
        ];
        assert!(object_at(&columns, 0).is_err());
    }

    #[test]
    fn non_finite_floats_are_strings() {
        assert_eq!(json_value(&ScalarValue::Float64(Some(f64::NAN))), "\"NaN\"");
        assert_eq!(json_value(&ScalarValue::Float64(Some(1.5))), "1.5");
    }
}

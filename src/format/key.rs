//! Record keys into the text a table is keyed by.
//!
//! The columnar store and its lookups key rows by text (see `table/columnar/index.rs`),
//! so every key format ends as one canonical string: the UTF-8 key itself, an integer
//! in decimal, bytes as `\x` hex, or the scalar a struct key holds. A struct key (a
//! JSON object such as Debezium's `{"id": 42}`, an Avro record or a Protobuf message)
//! gives the field named
//! like the key column, or its only field. The same rendering is used for upserts and
//! for tombstones and Debezium deletes, so a delete always finds the row it removes.
//!
//! A composite key (`PRIMARY KEY (tenant, id)`) is read from a struct key, one field per
//! key column, and travels as the JSON array of its parts' texts (`["acme","42"]`):
//! [`key_parts`] splits it again where the key columns are built and where the store
//! encodes it.

use super::registry::{split_framing, RegistryError, SchemaRegistry};
use super::KeyFormat;
use prost_reflect::ReflectMessage as _;
use std::borrow::Cow;
use std::sync::Arc;

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key is not in the declared format: the record is bad.
    #[error("{0}")]
    Bad(String),
    /// The key's schema could not be fetched (see [`RegistryError::is_transient`]).
    #[error(transparent)]
    Registry(RegistryError),
}

/// Turns record keys into a table's key text.
#[derive(Debug, Clone)]
pub struct KeyDecoder {
    format: KeyFormat,
    /// The key columns' names: the fields taken from a struct key.
    columns: Vec<String>,
    registry: Option<Arc<SchemaRegistry>>,
}

impl KeyDecoder {
    /// A decoder of `format` keys for the key columns `columns` (one, or the parts of
    /// a composite key, read from a struct key).
    pub fn new(
        format: KeyFormat,
        columns: Vec<String>,
        registry: Option<Arc<SchemaRegistry>>,
    ) -> Self {
        Self {
            format,
            columns,
            registry,
        }
    }

    /// The key as the table's key text.
    pub fn decode(&self, key: &[u8]) -> Result<String, KeyError> {
        match self.columns.as_slice() {
            [column] => self.decode_part(key, column),
            _ => self.decode_composite(key),
        }
    }

    /// [`decode`](Self::decode), reading a text key in place instead of copying it.
    pub fn decode_borrowed<'a>(&self, key: &'a [u8]) -> Result<Cow<'a, str>, KeyError> {
        if matches!(self.format, KeyFormat::Text) && self.columns.len() == 1 {
            return std::str::from_utf8(key)
                .map(Cow::Borrowed)
                .map_err(|e| KeyError::Bad(format!("key is not UTF-8: {e}")));
        }
        self.decode(key).map(Cow::Owned)
    }

    fn decode_composite(&self, key: &[u8]) -> Result<String, KeyError> {
        let bad = |reason: String| KeyError::Bad(reason);
        let parts: Vec<String> = match self.format {
            KeyFormat::Json => {
                let value: serde_json::Value = serde_json::from_slice(key)
                    .map_err(|e| bad(format!("key is not JSON: {e}")))?;
                let serde_json::Value::Object(object) = unwrap_converter(value) else {
                    return Err(bad("a composite key is read from a JSON object".into()));
                };
                self.columns
                    .iter()
                    .map(|c| match object.get(c) {
                        Some(v) => json_key(v.clone(), c),
                        None => Err(format!("struct key has no field '{c}'")),
                    })
                    .collect::<Result<_, _>>()
                    .map_err(bad)?
            }
            KeyFormat::Avro => {
                let value = self.avro_value(key)?;
                let apache_avro::types::Value::Record(fields) = value else {
                    return Err(bad("a composite key is read from an Avro record".into()));
                };
                self.columns
                    .iter()
                    .map(|c| match fields.iter().find(|(n, _)| n == c) {
                        Some((_, v)) => avro_key(v.clone(), c),
                        None => Err(format!("record key has no field '{c}'")),
                    })
                    .collect::<Result<_, _>>()
                    .map_err(bad)?
            }
            KeyFormat::Protobuf => {
                let message = self.protobuf_message(key)?;
                self.columns
                    .iter()
                    .map(|c| {
                        if message.descriptor().get_field_by_name(c).is_none() {
                            return Err(format!("key message has no field '{c}'"));
                        }
                        super::protobuf::key_text(&message, c)
                    })
                    .collect::<Result<_, _>>()
                    .map_err(bad)?
            }
            _ => {
                return Err(bad(
                    "a composite key needs key_format = 'json', 'avro' or 'protobuf'".into(),
                ))
            }
        };
        Ok(composite_text(&parts))
    }

    fn avro_value(&self, key: &[u8]) -> Result<apache_avro::types::Value, KeyError> {
        let bad = |reason: String| KeyError::Bad(reason);
        let registry = self
            .registry
            .as_ref()
            .ok_or_else(|| bad("an Avro key needs a schema registry (schema_registry)".into()))?;
        let (id, payload) = split_framing(key).map_err(bad)?;
        let schema = registry.schema_for_record(id).map_err(|e| {
            if e.is_transient() {
                KeyError::Registry(e)
            } else {
                bad(e.to_string())
            }
        })?;
        let avro = schema
            .avro
            .as_ref()
            .ok_or_else(|| bad(format!("key schema {id} is not an Avro schema")))?;
        super::avro::read_datum(avro, payload, None).map_err(bad)
    }

    fn protobuf_message(&self, key: &[u8]) -> Result<prost_reflect::DynamicMessage, KeyError> {
        let registry = self.registry.as_ref().ok_or_else(|| {
            KeyError::Bad("a Protobuf key needs a schema registry (schema_registry)".into())
        })?;
        match super::protobuf::read_message(registry, key) {
            Ok((_, _, message)) => Ok(message),
            Err(super::protobuf::ReadError::Bad(reason)) => Err(KeyError::Bad(reason)),
            Err(super::protobuf::ReadError::Registry(e)) => Err(KeyError::Registry(e)),
        }
    }

    fn decode_part(&self, key: &[u8], column: &str) -> Result<String, KeyError> {
        let bad = |reason: String| KeyError::Bad(reason);
        match self.format {
            KeyFormat::Text => std::str::from_utf8(key)
                .map(str::to_string)
                .map_err(|e| bad(format!("key is not UTF-8: {e}"))),
            KeyFormat::Int => <[u8; 4]>::try_from(key)
                .map(|b| i32::from_be_bytes(b).to_string())
                .map_err(|_| bad(format!("an INT key has 4 bytes, not {}", key.len()))),
            KeyFormat::BigInt => <[u8; 8]>::try_from(key)
                .map(|b| i64::from_be_bytes(b).to_string())
                .map_err(|_| bad(format!("a BIGINT key has 8 bytes, not {}", key.len()))),
            KeyFormat::Bytes => {
                let mut text = String::with_capacity(2 + key.len() * 2);
                text.push_str("\\x");
                for b in key {
                    text.push_str(&format!("{b:02x}"));
                }
                Ok(text)
            }
            KeyFormat::Json => {
                let value: serde_json::Value = serde_json::from_slice(key)
                    .map_err(|e| bad(format!("key is not JSON: {e}")))?;
                json_key(unwrap_converter(value), column).map_err(bad)
            }
            KeyFormat::Avro => avro_key(self.avro_value(key)?, column).map_err(bad),
            KeyFormat::Protobuf => {
                super::protobuf::key_text(&self.protobuf_message(key)?, column).map_err(bad)
            }
        }
    }
}

/// Kafka Connect's JSON converter with schemas wraps a value as
/// `{"schema": ..., "payload": ...}`: the payload is the value.
pub(crate) fn unwrap_converter(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(mut object)
            if object.len() == 2
                && object.contains_key("schema")
                && object.contains_key("payload") =>
        {
            object.remove("payload").unwrap_or_default()
        }
        other => other,
    }
}

fn json_key(value: serde_json::Value, column: &str) -> Result<String, String> {
    use serde_json::Value as J;
    match value {
        J::String(s) => Ok(s),
        J::Number(n) => Ok(n.to_string()),
        J::Bool(b) => Ok(b.to_string()),
        J::Object(mut object) => {
            let field = match object.remove(column) {
                Some(field) => field,
                None if object.len() == 1 => object
                    .into_iter()
                    .next()
                    .map(|(_, v)| v)
                    .unwrap_or_default(),
                None => {
                    return Err(format!(
                        "struct key has no field '{column}' and more than one field"
                    ))
                }
            };
            match field {
                J::Object(_) | J::Array(_) | J::Null => Err(format!(
                    "struct key field '{column}' is not a string or number: {field}"
                )),
                scalar => json_key(scalar, column),
            }
        }
        other => Err(format!("key is not a string, number or object: {other}")),
    }
}

fn avro_key(value: apache_avro::types::Value, column: &str) -> Result<String, String> {
    use apache_avro::types::Value as A;
    match value {
        A::Union(_, inner) => avro_key(*inner, column),
        A::String(s) | A::Enum(_, s) => Ok(s),
        A::Int(i) | A::Date(i) | A::TimeMillis(i) => Ok(i.to_string()),
        A::Long(i)
        | A::TimeMicros(i)
        | A::TimestampMillis(i)
        | A::TimestampMicros(i)
        | A::TimestampNanos(i)
        | A::LocalTimestampMillis(i)
        | A::LocalTimestampMicros(i)
        | A::LocalTimestampNanos(i) => Ok(i.to_string()),
        A::Uuid(u) => Ok(u.to_string()),
        A::Boolean(b) => Ok(b.to_string()),
        A::Record(mut fields) => {
            let at = match fields.iter().position(|(name, _)| name == column) {
                Some(at) => at,
                None if fields.len() == 1 => 0,
                None => {
                    return Err(format!(
                        "record key has no field '{column}' and more than one field"
                    ))
                }
            };
            avro_key(fields.swap_remove(at).1, column)
        }
        other => Err(format!("key is not a string, number or record: {other:?}")),
    }
}

/// The text of a composite key: the JSON array of its parts' texts.
pub fn composite_text(parts: &[String]) -> String {
    serde_json::to_string(parts).unwrap_or_default()
}

/// The parts of a key's text for `n` key columns: the text itself for one, the
/// elements of its JSON array for more (None if it is not such an array).
pub fn key_parts(text: &str, n: usize) -> Option<Vec<String>> {
    if n == 1 {
        return Some(vec![text.to_string()]);
    }
    let parts: Vec<String> = serde_json::from_str(text).ok()?;
    (parts.len() == n).then_some(parts)
}

/// Checks that a key's text fits the key columns of types `types`: any text for TEXT,
/// a number in range for INT and BIGINT.
pub(crate) fn key_fits(types: &[arrow::datatypes::DataType], text: &str) -> Result<(), String> {
    // One key column, the common case: the text is the part, nothing to split.
    if let [only] = types {
        return part_fits(only, text);
    }
    let parts = key_parts(text, types.len())
        .ok_or_else(|| format!("key '{text}' does not have {} parts", types.len()))?;
    for (data_type, part) in types.iter().zip(&parts) {
        part_fits(data_type, part)?;
    }
    Ok(())
}

fn part_fits(data_type: &arrow::datatypes::DataType, part: &str) -> Result<(), String> {
    use arrow::datatypes::DataType as D;
    let fits = match data_type {
        D::Int32 => part.parse::<i32>().is_ok(),
        D::Int64 => part.parse::<i64>().is_ok(),
        _ => true,
    };
    if fits {
        Ok(())
    } else {
        Err(format!("key '{part}' is not a {data_type} key"))
    }
}

/// Key part `part` (of `types.len()`) of the rows `rows` of `records`, whose keys are
/// text that [`key_fits`] the key columns.
pub(crate) fn key_column(
    types: &[arrow::datatypes::DataType],
    part: usize,
    records: &[super::RawRecord<'_>],
    rows: &[usize],
) -> arrow::array::ArrayRef {
    use arrow::array::{Int32Array, Int64Array, StringArray};
    use arrow::datatypes::DataType as D;
    if let [only] = types {
        // One key column: each key's text is the part, read in place.
        let texts = rows
            .iter()
            .map(|&i| records[i].key.and_then(|k| std::str::from_utf8(k).ok()));
        return match only {
            D::Int32 => Arc::new(Int32Array::from_iter(
                texts.map(|t| t.and_then(|t| t.parse::<i32>().ok())),
            )),
            D::Int64 => Arc::new(Int64Array::from_iter(
                texts.map(|t| t.and_then(|t| t.parse::<i64>().ok())),
            )),
            _ => Arc::new(StringArray::from_iter(texts)),
        };
    }
    let texts: Vec<Option<String>> = rows
        .iter()
        .map(|&i| {
            let text = records[i].key.and_then(|k| std::str::from_utf8(k).ok())?;
            key_parts(text, types.len())?.into_iter().nth(part)
        })
        .collect();
    match &types[part] {
        D::Int32 => Arc::new(Int32Array::from_iter(
            texts
                .iter()
                .map(|t| t.as_ref().and_then(|t| t.parse::<i32>().ok())),
        )),
        D::Int64 => Arc::new(Int64Array::from_iter(
            texts
                .iter()
                .map(|t| t.as_ref().and_then(|t| t.parse::<i64>().ok())),
        )),
        _ => Arc::new(StringArray::from_iter(texts)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(format: KeyFormat, bytes: &[u8]) -> Result<String, KeyError> {
        KeyDecoder::new(format, vec!["id".into()], None).decode(bytes)
    }

    #[test]
    fn a_text_key_is_read_in_place_and_bad_utf8_is_refused() {
        let decoder = KeyDecoder::new(KeyFormat::Text, vec!["id".into()], None);
        assert!(matches!(
            decoder.decode_borrowed(b"user-1"),
            Ok(Cow::Borrowed("user-1"))
        ));
        assert!(matches!(
            decoder.decode_borrowed(&[0xff, 0xfe]),
            Err(KeyError::Bad(_))
        ));
        let ints = KeyDecoder::new(KeyFormat::Int, vec!["id".into()], None);
        assert_eq!(ints.decode_borrowed(&7i32.to_be_bytes()).unwrap(), "7");
    }

    #[test]
    fn every_key_format_renders_one_text() {
        assert_eq!(key(KeyFormat::Text, b"a"), Ok("a".into()));
        assert_eq!(key(KeyFormat::Int, &42i32.to_be_bytes()), Ok("42".into()));
        assert_eq!(
            key(KeyFormat::BigInt, &(-7i64).to_be_bytes()),
            Ok("-7".into())
        );
        assert_eq!(key(KeyFormat::Bytes, &[0, 255]), Ok("\\x00ff".into()));
        for json in [
            &br#"42"#[..],
            br#"{"id": 42}"#,
            br#"{"only": 42}"#,
            br#"{"id": 42, "tenant": "t"}"#,
            br#"{"schema": {"type": "struct"}, "payload": {"id": 42}}"#,
        ] {
            assert_eq!(
                key(KeyFormat::Json, json),
                Ok("42".into()),
                "{}",
                String::from_utf8_lossy(json)
            );
        }
        assert!(matches!(key(KeyFormat::Int, b"42"), Err(KeyError::Bad(_))));
        assert!(matches!(
            key(KeyFormat::Text, &[0xff]),
            Err(KeyError::Bad(_))
        ));
        assert!(matches!(
            key(KeyFormat::Json, br#"{"a": 1, "b": 2}"#),
            Err(KeyError::Bad(_))
        ));
        assert!(matches!(
            key(KeyFormat::Avro, &[0, 0, 0, 0, 1]),
            Err(KeyError::Bad(_))
        ));
    }
}

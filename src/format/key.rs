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

use super::avro::AvroKeyPlan;
use super::registry::{split_framing, RegistryError, SchemaRegistry};
use super::KeyFormat;
use parking_lot::Mutex;
use prost_reflect::ReflectMessage as _;
use std::borrow::Cow;
use std::collections::HashMap;
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
    /// How each Avro key schema id is read without apache-avro (None: with it).
    avro_plans: Arc<Mutex<HashMap<u32, Option<AvroKeyPlan>>>>,
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
            avro_plans: Arc::default(),
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

    /// A one-column Avro key read straight from its bytes, when its schema allows
    /// (see `AvroKeyPlan`); None leaves it to apache-avro.
    fn avro_key_direct(&self, key: &[u8]) -> Option<String> {
        let (id, payload) = split_framing(key).ok()?;
        let known = self.avro_plans.lock().get(&id).copied();
        let plan = match known {
            Some(plan) => plan,
            None => {
                // Fetched without the lock: a miss may wait on the registry.
                let schema = self.registry.as_ref()?.schema_for_record(id).ok()?;
                let plan = schema.avro.as_ref().and_then(AvroKeyPlan::of);
                self.avro_plans.lock().insert(id, plan);
                plan
            }
        };
        plan?.read(payload)
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
            KeyFormat::Avro => match self.avro_key_direct(key) {
                Some(text) => Ok(text),
                None => avro_key(self.avro_value(key)?, column).map_err(bad),
            },
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
/// Why a record's key (already rendered as text) does not fit the key columns of
/// `types`: None when it fits or the source has no key column.
pub(super) fn key_misfit(
    types: &[arrow::datatypes::DataType],
    key: Option<&[u8]>,
) -> Option<String> {
    if types.is_empty() {
        return None;
    }
    match key.map(std::str::from_utf8) {
        Some(Ok(key)) => key_fits(types, key).err(),
        _ => Some("record has no key as text".to_string()),
    }
}

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

    /// Avro keys read straight from their bytes give the general path's text, and
    /// every key the direct read refuses (damaged, another shape) still gets the
    /// general path's answer.
    #[test]
    fn avro_keys_read_directly_match_the_general_path() {
        use apache_avro::types::Value;
        let schemas = [
            (1, r#""string""#),
            (2, r#""int""#),
            (3, r#"{"type": "long", "logicalType": "timestamp-millis"}"#),
            (
                4,
                r#"{"type": "record", "name": "K", "fields": [{"name": "id", "type": "long"}]}"#,
            ),
            (
                5,
                r#"{"type": "record", "name": "K2", "fields": [
                {"name": "tenant", "type": "string"}, {"name": "id", "type": "int"}]}"#,
            ),
            (
                6,
                r#"{"type": "record", "name": "K3", "fields": [{"name": "sku", "type": "string"}]}"#,
            ),
        ];
        let registry = SchemaRegistry::holding(&schemas);
        let values = [
            (1u32, Value::String("user-7".into())),
            (2, Value::Int(-42)),
            (3, Value::TimestampMillis(1_700_000_000_000)),
            (4, Value::Record(vec![("id".into(), Value::Long(i64::MAX))])),
            (
                5,
                Value::Record(vec![
                    ("tenant".into(), Value::String("acme".into())),
                    ("id".into(), Value::Int(9)),
                ]),
            ),
            (
                6,
                Value::Record(vec![("sku".into(), Value::String("é-1".into()))]),
            ),
        ];
        let direct = KeyDecoder::new(
            KeyFormat::Avro,
            vec!["id".into()],
            Some(Arc::clone(&registry)),
        );
        let mut read_directly = 0;
        for (id, value) in values {
            let schema =
                apache_avro::Schema::parse_str(schemas[id as usize - 1].1).expect("schema");
            let datum = apache_avro::to_avro_datum(&schema, value).expect("datum");
            let framed = [&[0u8][..], &id.to_be_bytes(), &datum].concat();
            let mut variants: Vec<Vec<u8>> =
                vec![framed.clone(), [framed.clone(), vec![0]].concat()];
            for cut in 5..framed.len() {
                variants.push(framed[..cut].to_vec());
            }
            let mut bad_utf8 = framed.clone();
            if let Some(last) = bad_utf8.last_mut() {
                *last = 0xff;
            }
            variants.push(bad_utf8);
            // A long where an int is declared: apache-avro refuses it.
            let long = apache_avro::to_avro_datum(&apache_avro::Schema::Long, Value::Long(1 << 40))
                .expect("datum");
            variants.push([&[0u8][..], &id.to_be_bytes(), &long].concat());
            for bytes in variants {
                let general = direct
                    .avro_value(&bytes)
                    .and_then(|v| avro_key(v, "id").map_err(KeyError::Bad));
                if let Some(text) = direct.avro_key_direct(&bytes) {
                    read_directly += 1;
                    assert_eq!(Ok(text), general, "schema {id}, bytes {bytes:?}");
                }
                assert_eq!(
                    direct.decode(&bytes),
                    general,
                    "schema {id}, bytes {bytes:?}"
                );
            }
        }
        // Four schemas of six are read directly, each whole value at least.
        assert!(read_directly >= 4, "{read_directly}");
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

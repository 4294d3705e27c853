//! Values that Kafka Connect's JSON converter writes in an encoding only their schema
//! names, read back as the JSON decoder expects them.
//!
//! With `schemas.enable` (the converter's default) every event carries its schema, and
//! a field's `name` says how its value is written: Debezium's default
//! `decimal.handling.mode = precise` writes `NUMERIC(10, 2)` 12.34 as `"BNI="` (base64
//! of the unscaled integer), and `TIMESTAMP` columns as microseconds or nanoseconds
//! since the epoch. Read as plain JSON the first fails to parse and the second lands a
//! thousand (or a million) times too far in the future, so the fields so named are
//! rewritten first: decimals to their digits, epoch counts to the milliseconds that
//! ktable's timestamps hold. Without a schema nothing says how a value was written,
//! and values are read as they are (Debezium's `decimal.handling.mode = string` suits
//! that).

use super::cells::decimal_digits;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Number, Value};
use std::borrow::Cow;
use std::collections::HashMap;

/// How one field's value is written, where it differs from plain JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// `org.apache.kafka.connect.data.Decimal`: base64 of the unscaled value, a
    /// big-endian two's-complement integer, with the schema's scale.
    Decimal { scale: u32 },
    /// `io.debezium.data.VariableScaleDecimal`: `{"scale": s, "value": base64}`.
    VariableScaleDecimal,
    /// An integer count of `per_milli` units since the epoch (micro- or nanoseconds).
    EpochUnits { per_milli: i64 },
}

/// The fields of a row schema whose values need rewriting.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Rewrites {
    fields: Vec<(String, Encoding)>,
}

#[derive(Deserialize)]
struct ConnectSchema {
    #[serde(default)]
    fields: Vec<ConnectSchema>,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    parameters: HashMap<String, String>,
}

impl Rewrites {
    /// The rewrites for the `after` row of a Debezium event whose envelope schema is
    /// `schema` (the JSON text of the event's `schema`).
    pub(super) fn of_envelope(schema: &str) -> Result<Self, String> {
        let envelope: ConnectSchema = serde_json::from_str(schema)
            .map_err(|e| format!("the event's Kafka Connect schema cannot be read: {e}"))?;
        let Some(row) = envelope
            .fields
            .iter()
            .find(|f| f.field.as_deref() == Some("after"))
        else {
            return Ok(Self::default());
        };
        let mut fields = Vec::new();
        for field in &row.fields {
            let (Some(name), Some(semantic)) = (&field.field, &field.name) else {
                continue;
            };
            let encoding = match semantic.as_str() {
                "org.apache.kafka.connect.data.Decimal" => {
                    let scale = field
                        .parameters
                        .get("scale")
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| format!("decimal field '{name}' has no scale"))?;
                    Encoding::Decimal { scale }
                }
                "io.debezium.data.VariableScaleDecimal" => Encoding::VariableScaleDecimal,
                "io.debezium.time.MicroTimestamp" => Encoding::EpochUnits { per_milli: 1_000 },
                "io.debezium.time.NanoTimestamp" => Encoding::EpochUnits {
                    per_milli: 1_000_000,
                },
                // Milliseconds (io.debezium.time.Timestamp, Connect's Timestamp) and days
                // (the Date types) are read as they are.
                _ => continue,
            };
            fields.push((name.clone(), encoding));
        }
        Ok(Self { fields })
    }

    /// Whether any field needs rewriting.
    pub(super) fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// `row` (a JSON object) with the fields rewritten. The other fields keep their
    /// text: read into `serde_json::Value`, a double may come back one unit in the
    /// last place off (serde_json's fast float parsing).
    pub(super) fn apply(&self, row: &[u8]) -> Result<Vec<u8>, String> {
        let fields: Vec<(Cow<'_, str>, &RawValue)> =
            serde_json::from_slice::<ObjectFields<'_>>(row)
                .map_err(|e| format!("'after' is not an object: {e}"))?
                .0;
        let mut out = Vec::with_capacity(row.len() + 16);
        out.push(b'{');
        for (i, (name, raw)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, name).map_err(|e| e.to_string())?;
            out.push(b':');
            let encoding = self
                .fields
                .iter()
                .find(|(field, _)| field == name)
                .map(|(_, encoding)| *encoding);
            match encoding {
                Some(encoding) if raw.get() != "null" => {
                    let value: Value = serde_json::from_str(raw.get())
                        .map_err(|e| format!("field '{name}': {e}"))?;
                    let value =
                        rewrite(&value, encoding).map_err(|e| format!("field '{name}': {e}"))?;
                    serde_json::to_writer(&mut out, &value).map_err(|e| e.to_string())?;
                }
                _ => out.extend_from_slice(raw.get().as_bytes()),
            }
        }
        out.push(b'}');
        Ok(out)
    }
}

/// A JSON object's fields in order, each value's text as written.
struct ObjectFields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for ObjectFields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = ObjectFields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(field) = map.next_entry::<Cow<'de, str>, &'de RawValue>()? {
                    fields.push(field);
                }
                Ok(ObjectFields(fields))
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

fn rewrite(value: &Value, encoding: Encoding) -> Result<Value, String> {
    match encoding {
        Encoding::Decimal { scale } => {
            let bytes = value.as_str().ok_or("a decimal is not a base64 string")?;
            Ok(Value::String(decimal_text(bytes, scale)?))
        }
        Encoding::VariableScaleDecimal => {
            let scale = value
                .get("scale")
                .and_then(Value::as_u64)
                .and_then(|s| u32::try_from(s).ok())
                .ok_or("a variable-scale decimal has no scale")?;
            let bytes = value
                .get("value")
                .and_then(Value::as_str)
                .ok_or("a variable-scale decimal has no value")?;
            Ok(Value::String(decimal_text(bytes, scale)?))
        }
        Encoding::EpochUnits { per_milli } => {
            let units = value.as_i64().ok_or("a timestamp is not an integer")?;
            Ok(Value::Number(Number::from(units.div_euclid(per_milli))))
        }
    }
}

/// The digits of the decimal whose unscaled value is the big-endian two's-complement
/// integer in `base64`, with `scale` digits after the point.
fn decimal_text(base64: &str, scale: u32) -> Result<String, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64)
        .map_err(|e| format!("a decimal is not base64: {e}"))?;
    if bytes.is_empty() || bytes.len() > 16 {
        return Err(format!(
            "a decimal of {} bytes (at most 16: 38 digits)",
            bytes.len()
        ));
    }
    let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0 };
    let mut wide = [fill; 16];
    wide[16 - bytes.len()..].copy_from_slice(&bytes);
    Ok(decimal_digits(i128::from_be_bytes(wide), scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_read_with_their_scale_and_sign() {
        // 1234 = 0x04D2; -1234 = 0xFB2E; 5 = 0x05; 2^127 - 1 in 16 bytes.
        assert_eq!(decimal_text("BNI=", 2).unwrap(), "12.34");
        assert_eq!(decimal_text("+y4=", 2).unwrap(), "-12.34");
        assert_eq!(decimal_text("BQ==", 3).unwrap(), "0.005");
        assert_eq!(decimal_text("+y4=", 0).unwrap(), "-1234");
        assert_eq!(decimal_text("AA==", 2).unwrap(), "0.00");
        let max = base64::engine::general_purpose::STANDARD.encode(i128::MAX.to_be_bytes());
        assert_eq!(decimal_text(&max, 0).unwrap(), i128::MAX.to_string());
        assert!(decimal_text("not base64!", 2).is_err());
        assert!(decimal_text("", 2).is_err());
    }

    #[test]
    fn fields_named_by_the_schema_are_rewritten() {
        let schema = r#"{"type": "struct", "fields": [
            {"type": "struct", "field": "before", "fields": []},
            {"type": "struct", "field": "after", "fields": [
                {"type": "int32", "field": "id"},
                {"type": "bytes", "field": "balance", "name": "org.apache.kafka.connect.data.Decimal",
                 "parameters": {"scale": "2", "connect.decimal.precision": "10"}},
                {"type": "struct", "field": "ratio", "name": "io.debezium.data.VariableScaleDecimal"},
                {"type": "int64", "field": "seen", "name": "io.debezium.time.MicroTimestamp"},
                {"type": "int64", "field": "at", "name": "io.debezium.time.NanoTimestamp"},
                {"type": "int32", "field": "born", "name": "io.debezium.time.Date"}
            ]},
            {"type": "string", "field": "op"}
        ]}"#;
        let rewrites = Rewrites::of_envelope(schema).unwrap();
        assert!(!rewrites.is_empty());
        let row = br#"{"id": 1, "balance": "+y4=", "ratio": {"scale": 1, "value": "BQ=="},
            "seen": -1500, "at": 1700000000123456789, "born": 19000, "score": 494612.86904482037}"#;
        let text = rewrites.apply(row).unwrap();
        // A double keeps its digits (serde_json's Value would round this one).
        assert!(String::from_utf8_lossy(&text).contains(r#""score":494612.86904482037"#));
        let mut rewritten: Value = serde_json::from_slice(&text).unwrap();
        rewritten.as_object_mut().unwrap().remove("score");
        assert_eq!(
            rewritten,
            serde_json::json!({"id": 1, "balance": "-12.34", "ratio": "0.5",
                "seen": -2, "at": 1_700_000_000_123_i64, "born": 19000})
        );
        let nulls = br#"{"id": 2, "balance": null, "seen": null}"#;
        let kept: Value = serde_json::from_slice(&rewrites.apply(nulls).unwrap()).unwrap();
        assert_eq!(
            kept,
            serde_json::json!({"id": 2, "balance": null, "seen": null})
        );
        assert!(rewrites.apply(br#"{"balance": 12}"#).is_err());
    }

    #[test]
    fn a_schema_without_encoded_fields_needs_no_rewrite() {
        let schema = r#"{"type": "struct", "fields": [{"type": "struct", "field": "after",
            "fields": [{"type": "string", "field": "name"}]}]}"#;
        assert!(Rewrites::of_envelope(schema).unwrap().is_empty());
        assert!(Rewrites::of_envelope(r#"{"type": "struct"}"#)
            .unwrap()
            .is_empty());
        assert!(Rewrites::of_envelope("[").is_err());
    }
}

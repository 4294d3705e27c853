//! Kafka Connect's semantic types in Avro schemas, as Avro logical types.
//!
//! Kafka Connect's Avro converters (Confluent's, Apicurio's) write a Connect schema's
//! name as a `connect.name` property on the Avro type. Debezium names its temporal
//! types that way and gives them no Avro logical type: a PostgreSQL `TIMESTAMP` is a
//! `long` named `io.debezium.time.MicroTimestamp` (microseconds since the epoch), a
//! `DATE` an `int` named `io.debezium.time.Date` (days). Read as a plain `long`, a
//! microsecond timestamp would land in a TIMESTAMP column a thousand times too far in
//! the future. Before a schema is parsed, each such type gets the logical type that
//! means the same (`local-timestamp-micros`, `date`...), so every path that reads the
//! schema (the columns it gives, the direct reader, apache-avro's) reads it right.
//! A type that already has a logical type keeps it.

use serde_json::Value;
use std::borrow::Cow;

/// The Avro logical type of each Connect semantic type, with the Avro type it is on.
/// Debezium's `Timestamp`s are local date-times (PostgreSQL's `TIMESTAMP`), counted
/// as if in UTC: Avro's `local-timestamp-*`.
const LOGICAL_TYPES: &[(&str, &str, &str)] = &[
    ("io.debezium.time.Date", "int", "date"),
    ("io.debezium.time.Time", "int", "time-millis"),
    ("io.debezium.time.MicroTime", "long", "time-micros"),
    (
        "io.debezium.time.Timestamp",
        "long",
        "local-timestamp-millis",
    ),
    (
        "io.debezium.time.MicroTimestamp",
        "long",
        "local-timestamp-micros",
    ),
    (
        "io.debezium.time.NanoTimestamp",
        "long",
        "local-timestamp-nanos",
    ),
    ("org.apache.kafka.connect.data.Date", "int", "date"),
    ("org.apache.kafka.connect.data.Time", "int", "time-millis"),
    (
        "org.apache.kafka.connect.data.Timestamp",
        "long",
        "timestamp-millis",
    ),
];

/// `schema` (an Avro schema's JSON text) with the logical type of every Connect
/// semantic type it names; the text itself when it names none, or is not JSON (the
/// Avro parser then says what is wrong with it).
pub(crate) fn with_logical_types(schema: &str) -> Cow<'_, str> {
    if !schema.contains("connect.name") {
        return Cow::Borrowed(schema);
    }
    let Ok(mut parsed) = serde_json::from_str::<Value>(schema) else {
        return Cow::Borrowed(schema);
    };
    if add_logical_types(&mut parsed) {
        Cow::Owned(parsed.to_string())
    } else {
        Cow::Borrowed(schema)
    }
}

/// Adds the logical types in place, anywhere in the schema; true if it added one.
fn add_logical_types(schema: &mut Value) -> bool {
    match schema {
        Value::Array(branches) => branches
            .iter_mut()
            .fold(false, |added, branch| add_logical_types(branch) | added),
        Value::Object(object) => {
            let mut added = false;
            if let (Some(Value::String(name)), Some(Value::String(avro_type)), None) = (
                object.get("connect.name"),
                object.get("type"),
                object.get("logicalType"),
            ) {
                if let Some((_, _, logical)) = LOGICAL_TYPES
                    .iter()
                    .find(|(connect, on, _)| connect == name && on == avro_type)
                {
                    object.insert("logicalType".into(), Value::String(logical.to_string()));
                    added = true;
                }
            }
            // A record's fields, a field's type, an array's items, a map's values.
            for key in ["fields", "type", "items", "values"] {
                if let Some(inner) = object.get_mut(key) {
                    added |= add_logical_types(inner);
                }
            }
            added
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::Schema;

    fn field_schema(schema: &Schema, name: &str) -> Schema {
        let Schema::Record(record) = schema else {
            panic!("a record: {schema:?}")
        };
        record.fields[record.lookup[name]].schema.clone()
    }

    #[test]
    fn debezium_temporal_types_get_their_logical_types_wherever_they_are() {
        let text = r#"{"type": "record", "name": "Value", "fields": [
            {"name": "visited", "type": {"type": "long", "connect.version": 1,
                "connect.name": "io.debezium.time.MicroTimestamp"}},
            {"name": "born", "type": ["null", {"type": "int", "connect.version": 1,
                "connect.name": "io.debezium.time.Date"}], "default": null},
            {"name": "at", "type": {"type": "long", "connect.name": "io.debezium.time.NanoTimestamp"}},
            {"name": "seen", "type": {"type": "string", "connect.name": "io.debezium.time.ZonedTimestamp"}},
            {"name": "visits", "type": {"type": "long", "connect.name": "some.Other"}},
            {"name": "when", "type": {"type": "long", "logicalType": "timestamp-millis",
                "connect.name": "io.debezium.time.MicroTimestamp"}},
            {"name": "days", "type": {"type": "array", "items":
                {"type": "int", "connect.name": "io.debezium.time.Date"}}}
        ]}"#;
        let schema = Schema::parse_str(&with_logical_types(text)).expect("schema");
        assert_eq!(
            field_schema(&schema, "visited"),
            Schema::LocalTimestampMicros
        );
        let Schema::Union(born) = field_schema(&schema, "born") else {
            panic!("a union")
        };
        assert_eq!(born.variants(), &[Schema::Null, Schema::Date]);
        assert_eq!(field_schema(&schema, "at"), Schema::LocalTimestampNanos);
        // No Avro logical type for text: read by the text-to-timestamp conversion.
        assert_eq!(field_schema(&schema, "seen"), Schema::String);
        assert_eq!(field_schema(&schema, "visits"), Schema::Long);
        // A logical type given by the writer stays.
        assert_eq!(field_schema(&schema, "when"), Schema::TimestampMillis);
        let Schema::Array(days) = field_schema(&schema, "days") else {
            panic!("an array")
        };
        assert_eq!(*days.items, Schema::Date);
    }

    #[test]
    fn schemas_without_connect_names_are_left_as_they_are() {
        let text = r#"{"type": "record", "name": "U", "fields": [{"name": "a", "type": "long"}]}"#;
        assert!(matches!(with_logical_types(text), Cow::Borrowed(_)));
        let unnamed = r#"{"type": "long", "connect.name": "some.Other"}"#;
        assert!(matches!(with_logical_types(unnamed), Cow::Borrowed(_)));
        assert!(matches!(
            with_logical_types("not json connect.name"),
            Cow::Borrowed(_)
        ));
    }
}

//! The direct reader against the general path: random writer schemas (every Avro type,
//! logical types, unions, nested values, Debezium envelopes with a named reference),
//! random columns of every SQL type over them, random records, some of them damaged;
//! each batch decoded both ways must give the same rows, rejections and deletes.

use crate::format::{
    AvroDecoder, ColumnSource, Envelope, ErrorPolicy, FormatSpec, RawRecord, RecordDecoder,
    SchemaRegistry, SourceSchema, ValueFormat,
};
use apache_avro::types::Value;
use arrow::datatypes::{DataType, TimeUnit};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value as Json};
use std::sync::Arc;

/// One field type: its schema as registered, and the plain schema its values are
/// written with (logical types are their underlying types on the wire).
struct FieldType {
    logical: Json,
    plain: Json,
}

fn field_type(rng: &mut SmallRng, depth: u32) -> FieldType {
    let same = |t: Json| FieldType {
        logical: t.clone(),
        plain: t,
    };
    let logical = |underlying: &str, logical: &str| FieldType {
        logical: json!({"type": underlying, "logicalType": logical}),
        plain: json!(underlying),
    };
    // A union's branch is neither null nor a union (Avro forbids both).
    let choices = if depth > 0 { 1..18 } else { 0..24 };
    match rng.random_range(choices) {
        0 => same(json!("null")),
        1 => same(json!("boolean")),
        2 => same(json!("int")),
        3 => same(json!("long")),
        4 => same(json!("float")),
        5 => same(json!("double")),
        6 | 7 => same(json!("string")),
        8 => same(json!("bytes")),
        9 => {
            let name = format!("E{}", rng.random::<u32>());
            same(json!({"type": "enum", "name": name, "symbols": ["RED", "GREEN", "BLUE"]}))
        }
        10 => {
            let name = format!("F{}", rng.random::<u32>());
            same(json!({"type": "fixed", "name": name, "size": 4}))
        }
        11 => FieldType {
            logical: json!({"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}),
            plain: json!("bytes"),
        },
        12 => logical("int", "date"),
        13 => logical("long", "timestamp-millis"),
        14 => logical("long", "timestamp-micros"),
        15 => logical("long", "local-timestamp-millis"),
        16 => logical("int", "time-millis"),
        17 => logical("string", "uuid"),
        18 | 19 => {
            let inner = field_type(rng, depth + 1);
            if rng.random_bool(0.5) {
                FieldType {
                    logical: json!(["null", inner.logical]),
                    plain: json!(["null", inner.plain]),
                }
            } else {
                FieldType {
                    logical: json!([inner.logical, "null"]),
                    plain: json!([inner.plain, "null"]),
                }
            }
        }
        20 => {
            let name = format!("N{}", rng.random::<u32>());
            let t = json!({"type": "record", "name": name, "fields": [
                {"name": "a", "type": "int"}, {"name": "b", "type": ["null", "string"]}]});
            same(t)
        }
        21 => same(json!({"type": "array", "items": "string"})),
        22 => same(json!({"type": "map", "values": "long"})),
        _ => same(json!(["int", "string", "null"])),
    }
}

/// A value of `plain`, the wire schema of a field.
fn value_of(plain: &Json, logical: &Json, rng: &mut SmallRng) -> Value {
    let text = |rng: &mut SmallRng| -> String {
        let pool = [
            "",
            "a",
            "héllo",
            "42",
            "-7",
            "true",
            "2024-01-02",
            "null",
            "ünï",
            "x y",
        ];
        let mut s = pool[rng.random_range(0..pool.len())].to_string();
        if rng.random_bool(0.1) {
            s = "123e4567-e89b-12d3-a456-426614174000".into();
        }
        s
    };
    match plain {
        Json::String(t) => match t.as_str() {
            "null" => Value::Null,
            "boolean" => Value::Boolean(rng.random()),
            "int" => Value::Int(match rng.random_range(0..3) {
                0 => rng.random_range(-40_000..40_000),
                1 => rng.random(),
                _ => rng.random_range(-3..3),
            }),
            "long" => Value::Long(match rng.random_range(0..3) {
                0 => rng.random_range(-3_000_000_000..3_000_000_000),
                1 => rng.random(),
                _ => rng.random_range(-3..3),
            }),
            "float" => Value::Float(rng.random_range(-1e6..1e6)),
            "double" => Value::Double(rng.random_range(-1e12..1e12)),
            "string" => Value::String(text(rng)),
            "bytes" if logical.get("logicalType").is_some() => {
                let n = rng.random_range(0..18);
                Value::Bytes((0..n).map(|_| rng.random()).collect())
            }
            "bytes" => Value::Bytes(text(rng).into_bytes()),
            other => panic!("no values for {other}"),
        },
        Json::Array(branches) => {
            let i = rng.random_range(0..branches.len());
            let logical = logical.as_array().map_or(&Json::Null, |l| &l[i]);
            Value::Union(i as u32, Box::new(value_of(&branches[i], logical, rng)))
        }
        Json::Object(o) => match o.get("type").and_then(Json::as_str) {
            Some("enum") => {
                let i = rng.random_range(0..3);
                Value::Enum(i, ["RED", "GREEN", "BLUE"][i as usize].into())
            }
            Some("fixed") => Value::Fixed(4, (0..4).map(|_| rng.random()).collect()),
            Some("record") => Value::Record(
                o["fields"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|f| {
                        let name = f["name"].as_str().unwrap_or_default().to_string();
                        (name, value_of(&f["type"], &f["type"], rng))
                    })
                    .collect(),
            ),
            Some("array") => Value::Array(
                (0..rng.random_range(0..3))
                    .map(|_| Value::String(text(rng)))
                    .collect(),
            ),
            Some("map") => Value::Map(
                (0..rng.random_range(0..3))
                    .map(|_| (text(rng), Value::Long(rng.random())))
                    .collect(),
            ),
            _ => value_of(&o["type"], logical, rng),
        },
        other => panic!("no values for {other}"),
    }
}

/// A SQL column type, by chance, for a field.
fn column_type(rng: &mut SmallRng) -> (DataType, ColumnSource) {
    let field = ColumnSource::Field;
    match rng.random_range(0..14) {
        0 => (DataType::Boolean, field),
        1 => (DataType::Int16, field),
        2 => (DataType::Int32, field),
        3 => (DataType::Int64, field),
        4 => (DataType::Float32, field),
        5 => (DataType::Float64, field),
        6 | 7 => (DataType::Utf8, field),
        8 => (DataType::Binary, field),
        9 => (DataType::Decimal128(12, 3), field),
        10 => (DataType::Date32, field),
        11 => (
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            field,
        ),
        12 => (DataType::Timestamp(TimeUnit::Microsecond, None), field),
        _ => (DataType::Utf8, ColumnSource::RawJson),
    }
}

/// Damages a record now and then: a byte changed, cut short, a byte added.
fn damage(bytes: &mut Vec<u8>, rng: &mut SmallRng) {
    if bytes.len() <= 5 || !rng.random_bool(0.25) {
        return;
    }
    let at = rng.random_range(5..bytes.len());
    match rng.random_range(0..4) {
        0 => bytes[at] = rng.random(),
        1 => bytes.truncate(at),
        2 => bytes.push(rng.random()),
        _ => bytes[at] = 0xff,
    }
}

struct Case {
    schema: Arc<SourceSchema>,
    records: Vec<(Vec<u8>, Vec<u8>)>,
}

fn random_case(rng: &mut SmallRng, seed: u64) -> Case {
    let debezium = rng.random_bool(0.3);
    let fields: Vec<(String, FieldType)> = (0..rng.random_range(1..8))
        .map(|i| (format!("f{i}"), field_type(rng, 0)))
        .collect();
    let row = |plain: bool| {
        json!({"type": "record", "name": "Row", "fields": fields.iter().map(|(name, t)| {
            json!({"name": name, "type": if plain { &t.plain } else { &t.logical }})
        }).collect::<Vec<_>>()})
    };
    // Debezium's source block, with or without the time of the change.
    let source_ts_ms = rng.random_bool(0.5);
    let writer = |plain: bool| -> Json {
        if !debezium {
            return row(plain);
        }
        let mut source = vec![
            json!({"name": "lsn", "type": ["null", "long"]}),
            json!({"name": "db", "type": "string"}),
        ];
        if source_ts_ms {
            source.insert(0, json!({"name": "ts_ms", "type": "long"}));
        }
        json!({"type": "record", "name": "Envelope", "fields": [
            {"name": "before", "type": ["null", row(plain)]},
            {"name": "after", "type": ["null", "Row"]},
            {"name": "source", "type": {"type": "record", "name": "Source", "fields": source}},
            {"name": "op", "type": "string"},
            {"name": "ts_ms", "type": ["null", "long"]}]})
    };
    let logical = writer(false).to_string();
    let plain = apache_avro::Schema::parse_str(&writer(true).to_string()).expect("plain schema");
    let registry = SchemaRegistry::holding(&[(7, &logical)]);

    let mut columns = vec![("k".to_string(), DataType::Utf8, ColumnSource::Key)];
    for (name, _) in &fields {
        if rng.random_bool(0.7) {
            let (data_type, source) = column_type(rng);
            columns.push((name.clone(), data_type, source));
        }
    }
    columns.push(("absent".to_string(), DataType::Int64, ColumnSource::Field));
    if debezium {
        for name in ["_op", "_source_ts_ms", "_lsn"] {
            if rng.random_bool(0.6) {
                let (data_type, source) = column_type(rng);
                columns.push((name.to_string(), data_type, source));
            }
        }
    }
    let on_error = if rng.random_bool(0.3) {
        ErrorPolicy::Null
    } else {
        ErrorPolicy::Skip
    };
    let format = FormatSpec {
        value: ValueFormat::Avro,
        envelope: if debezium {
            Envelope::Debezium
        } else {
            Envelope::None
        },
        keyed: true,
        registry: Some(registry),
        ..FormatSpec::default()
    };
    let schema = SourceSchema::new(columns, on_error)
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"))
        .with_format(format);

    let records = (0..40)
        .map(|i| {
            let row_value = |rng: &mut SmallRng| {
                Value::Record(
                    fields
                        .iter()
                        .map(|(name, t)| (name.clone(), value_of(&t.plain, &t.logical, rng)))
                        .collect(),
                )
            };
            let value = if debezium {
                let op = ["c", "r", "u", "d", "x"][rng.random_range(0..5)];
                let after = if op == "d" || rng.random_bool(0.05) {
                    Value::Union(0, Box::new(Value::Null))
                } else {
                    Value::Union(1, Box::new(row_value(rng)))
                };
                Value::Record(vec![
                    ("before".into(), Value::Union(0, Box::new(Value::Null))),
                    ("after".into(), after),
                    ("source".into(), {
                        let mut source = vec![
                            ("lsn".into(), Value::Union(1, Box::new(Value::Long(i)))),
                            ("db".into(), Value::String("inventory".into())),
                        ];
                        if source_ts_ms {
                            source.insert(0, ("ts_ms".into(), Value::Long(1_700_000_000_000 + i)));
                        }
                        Value::Record(source)
                    }),
                    ("op".into(), Value::String(op.into())),
                    ("ts_ms".into(), Value::Union(0, Box::new(Value::Null))),
                ])
            } else {
                row_value(rng)
            };
            let datum = apache_avro::to_avro_datum(&plain, value)
                .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            let mut bytes = [&[0u8, 0, 0, 0, 7][..], &datum].concat();
            damage(&mut bytes, rng);
            (format!("k{i}").into_bytes(), bytes)
        })
        .collect();
    Case {
        schema: Arc::new(schema),
        records,
    }
}

#[test]
fn the_direct_reader_gives_what_the_general_path_gives() {
    let base = std::env::var("KTABLE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    let (mut direct_rows, mut general_rows) = (0usize, 0usize);
    for n in 0..1000 {
        let seed = base.wrapping_add(n);
        let mut rng = SmallRng::seed_from_u64(seed);
        let case = random_case(&mut rng, seed);
        let registry = case.schema.format().registry.clone().expect("registry");
        let records: Vec<RawRecord<'_>> = case
            .records
            .iter()
            .enumerate()
            .map(|(i, (key, value))| RawRecord {
                key: Some(key),
                value,
                partition: 0,
                offset: i as i64,
                timestamp: None,
                headers: None,
            })
            .collect();
        let mut direct = AvroDecoder::new(Arc::clone(&case.schema), Arc::clone(&registry));
        let mut general =
            AvroDecoder::new(Arc::clone(&case.schema), registry).without_direct_plans();
        let (a, b) = match (direct.decode(&records), general.decode(&records)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(a), Err(b)) => {
                assert_eq!(a.to_string(), b.to_string(), "seed {seed}");
                continue;
            }
            (a, b) => panic!("seed {seed}: {a:?} against {b:?}"),
        };
        let context = || {
            let writer = direct.plans.get(&7).map(|p| format!("{p:?}"));
            format!("seed {seed} (KTABLE_TEST_SEED={seed}); plan {writer:?}")
        };
        assert_eq!(a.accepted, b.accepted, "{}", context());
        // A map's entries are printed in its hash order, which differs between any two
        // decodes: such reasons are compared up to the map.
        let comparable = |rejected: &[(usize, String)]| -> Vec<(usize, String)> {
            rejected
                .iter()
                .map(|(i, reason)| (*i, reason.split("Map(").next().unwrap_or("").to_string()))
                .collect()
        };
        assert_eq!(
            comparable(&a.rejected),
            comparable(&b.rejected),
            "{}",
            context()
        );
        assert_eq!(a.deletes, b.deletes, "{}", context());
        assert_eq!(a.batch.schema(), b.batch.schema(), "{}", context());
        for (x, y) in a.batch.columns().iter().zip(b.batch.columns()) {
            // Debug form: NaN equals NaN there, as the two paths give the same bits.
            assert_eq!(format!("{x:?}"), format!("{y:?}"), "{}", context());
        }
        if direct.plans.get(&7).is_some_and(Option::is_some) {
            direct_rows += a.accepted.len();
        } else {
            general_rows += a.accepted.len();
        }
    }
    // The comparison means something only if most schemas got a plan.
    assert!(
        direct_rows > 4 * general_rows,
        "rows read with a plan {direct_rows}, without {general_rows}"
    );
}

/// A Debezium event in Avro fills `_op`, `_source_ts_ms` and `_lsn` (as the JSON
/// envelope does), on both paths; a `d` event deletes.
#[test]
fn debezium_avro_events_carry_their_metadata_columns() {
    let envelope = json!({"type": "record", "name": "Envelope", "fields": [
        {"name": "before", "type": ["null", {"type": "record", "name": "Value",
            "fields": [{"name": "id", "type": "string"}, {"name": "name", "type": "string"}]}]},
        {"name": "after", "type": ["null", "Value"]},
        {"name": "source", "type": {"type": "record", "name": "Source", "fields": [
            {"name": "ts_ms", "type": "long"}, {"name": "lsn", "type": ["null", "long"]}]}},
        {"name": "op", "type": "string"}]});
    let text = envelope.to_string();
    let schema = apache_avro::Schema::parse_str(&text).expect("schema");
    let registry = SchemaRegistry::holding(&[(3, &text)]);
    let columns = vec![
        ("id".to_string(), DataType::Utf8, ColumnSource::Key),
        ("name".to_string(), DataType::Utf8, ColumnSource::Field),
        ("_op".to_string(), DataType::Utf8, ColumnSource::Field),
        (
            "_source_ts_ms".to_string(),
            DataType::Int64,
            ColumnSource::Field,
        ),
        ("_lsn".to_string(), DataType::Int64, ColumnSource::Field),
    ];
    let format = FormatSpec {
        value: ValueFormat::Avro,
        envelope: Envelope::Debezium,
        keyed: true,
        registry: Some(Arc::clone(&registry)),
        ..FormatSpec::default()
    };
    let source = Arc::new(
        SourceSchema::new(columns, ErrorPolicy::Skip)
            .expect("schema")
            .with_format(format),
    );
    let event = |op: &str, after: Option<&str>| {
        let after = match after {
            Some(name) => Value::Union(
                1,
                Box::new(Value::Record(vec![
                    ("id".into(), Value::String("7".into())),
                    ("name".into(), Value::String(name.into())),
                ])),
            ),
            None => Value::Union(0, Box::new(Value::Null)),
        };
        let value = Value::Record(vec![
            ("before".into(), Value::Union(0, Box::new(Value::Null))),
            ("after".into(), after),
            (
                "source".into(),
                Value::Record(vec![
                    ("ts_ms".into(), Value::Long(1_700)),
                    ("lsn".into(), Value::Union(1, Box::new(Value::Long(42)))),
                ]),
            ),
            ("op".into(), Value::String(op.into())),
        ]);
        let datum = apache_avro::to_avro_datum(&schema, value).expect("datum");
        [&[0u8, 0, 0, 0, 3][..], &datum].concat()
    };
    let values = [event("u", Some("Ada")), event("d", None)];
    let records: Vec<RawRecord<'_>> = values
        .iter()
        .map(|value| RawRecord::keyed(b"7", value))
        .collect();
    let direct = AvroDecoder::new(Arc::clone(&source), Arc::clone(&registry));
    let general = AvroDecoder::new(Arc::clone(&source), registry).without_direct_plans();
    for mut decoder in [direct, general] {
        let outcome = decoder.decode(&records).expect("decoded");
        assert_eq!(outcome.accepted, vec![0]);
        assert_eq!(outcome.deletes, vec![1]);
        let text = arrow::util::pretty::pretty_format_batches(&[outcome.batch])
            .expect("printable")
            .to_string();
        assert!(
            text.contains("| 7  | Ada  | u   | 1700          | 42   |"),
            "{text}"
        );
    }
}

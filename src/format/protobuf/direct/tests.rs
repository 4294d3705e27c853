//! The direct reader against the general path: random messages of every scalar kind
//! (proto2 and proto3, with and without presence, some with fields the plan does not
//! take), random columns of every SQL type, random records with repeated and unknown
//! fields, some damaged; each batch decoded both ways must give the same rows and
//! rejections.

use super::super::{compiled, ProtobufDecoder};
use crate::format::{
    ColumnSource, ErrorPolicy, FormatSpec, RawRecord, RecordDecoder, SchemaRegistry, SourceSchema,
    ValueFormat,
};
use arrow::datatypes::{DataType, TimeUnit};
use prost_reflect::prost::Message as _;
use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, Value};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;

const SCALARS: [&str; 16] = [
    "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64", "sfixed32",
    "sfixed64", "float", "double", "bool", "string", "bytes", "Color",
];

/// A `.proto` text of one message `M` (and the enum `Color`), by chance.
fn random_proto(rng: &mut SmallRng) -> String {
    let proto3 = rng.random_bool(0.6);
    let mut numbers: Vec<u32> = (1..40).collect();
    let mut fields = String::new();
    for i in 0..rng.random_range(1..9) {
        let at = rng.random_range(0..numbers.len());
        let number = numbers.swap_remove(at);
        let label = match (proto3, rng.random_range(0..4)) {
            (true, 0) => "optional ",
            (true, _) => "",
            (false, _) => "optional ",
        };
        let kind = SCALARS[rng.random_range(0..SCALARS.len())];
        fields.push_str(&format!("{label}{kind} f{i} = {number}; "));
    }
    // Now and then a field the plan does not take: the general path reads those.
    if rng.random_bool(0.1) {
        fields.push_str("repeated string many = 50; ");
    }
    let (syntax, zero) = if proto3 {
        ("proto3", "UNSET")
    } else {
        ("proto2", "RED")
    };
    format!(
        "syntax = \"{syntax}\"; package t; enum Color {{ {zero} = 0; GREEN = 1; BLUE = 2; }} \
         message M {{ {fields} }}"
    )
}

fn random_value(kind: &Kind, rng: &mut SmallRng) -> Value {
    let small = rng.random_bool(0.5);
    match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(if small {
            rng.random_range(-300..300)
        } else {
            rng.random()
        }),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(if small {
            rng.random_range(-70_000..70_000)
        } else {
            rng.random()
        }),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(if small {
            rng.random_range(0..300)
        } else {
            rng.random()
        }),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(if small {
            rng.random_range(0..300)
        } else {
            rng.random()
        }),
        Kind::Float => Value::F32(rng.random_range(-1e6..1e6)),
        Kind::Double => Value::F64(rng.random_range(-1e9..1e9)),
        Kind::Bool => Value::Bool(rng.random()),
        Kind::String => {
            let pool = ["", "a", "héllo", "42", "-7", "true", "x y", "2024-01-02"];
            Value::String(pool[rng.random_range(0..pool.len())].to_string())
        }
        Kind::Bytes => Value::Bytes(
            (0..rng.random_range(0..5))
                .map(|_| rng.random::<u8>())
                .collect(),
        ),
        Kind::Enum(_) => Value::EnumNumber(rng.random_range(0..4)),
        Kind::Message(_) => Value::String(String::new()),
    }
}

/// A record's bytes: some fields set, now and then a field written twice (the last
/// counts), an unknown field, a string that is not UTF-8, or damage.
fn random_record(message: &MessageDescriptor, rng: &mut SmallRng) -> Vec<u8> {
    let mut dynamic = DynamicMessage::new(message.clone());
    for field in message.fields() {
        if field.is_list() {
            if rng.random_bool(0.5) {
                dynamic.set_field(&field, Value::List(vec![Value::String("a".into())]));
            }
        } else if rng.random_bool(0.8) {
            dynamic.set_field(&field, random_value(&field.kind(), rng));
        }
    }
    let mut bytes = dynamic.encode_to_vec();
    if rng.random_bool(0.3) {
        // A field again: merged, the last one wins.
        let fields: Vec<_> = message.fields().filter(|f| !f.is_list()).collect();
        if !fields.is_empty() {
            let field = &fields[rng.random_range(0..fields.len())];
            let mut again = DynamicMessage::new(message.clone());
            again.set_field(field, random_value(&field.kind(), rng));
            bytes.extend(again.encode_to_vec());
        }
    }
    if rng.random_bool(0.2) {
        // Unknown fields: a varint (number 99), a length-delimited (100), a fixed32 (101).
        bytes.extend([
            0x98, 0x06, 0x2a, 0xa2, 0x06, 0x01, b'z', 0xad, 0x06, 1, 2, 3, 4,
        ]);
    }
    if rng.random_bool(0.1) {
        if let Some(text) = message
            .fields()
            .find(|f| matches!(f.kind(), Kind::String) && !f.is_list())
        {
            // A string field that is not UTF-8, then (sometimes) a valid one after it.
            bytes.extend([(text.number() << 3 | 2) as u8, 1, 0xff]);
            if rng.random_bool(0.5) {
                bytes.extend([(text.number() << 3 | 2) as u8, 1, b'o']);
            }
        }
    }
    if !bytes.is_empty() && rng.random_bool(0.15) {
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..3) {
            0 => bytes[at] = rng.random(),
            1 => bytes.truncate(at),
            _ => bytes.insert(at, rng.random()),
        }
    }
    [&[0u8, 0, 0, 0, 9, 0][..], &bytes].concat()
}

fn column_type(rng: &mut SmallRng) -> (DataType, ColumnSource) {
    let field = ColumnSource::Field;
    // A JSON column of a field sends the whole message to the general path: seldom.
    match rng.random_range(0..20) {
        0 => (DataType::Boolean, field),
        1 => (DataType::Int16, field),
        2 => (DataType::Int32, field),
        3 => (DataType::Int64, field),
        4 => (DataType::Float32, field),
        5 => (DataType::Float64, field),
        6..=12 => (DataType::Utf8, field),
        13 | 14 => (DataType::Binary, field),
        15 => (DataType::Decimal128(20, 2), field),
        16 => (DataType::Date32, field),
        17 | 18 => (DataType::Timestamp(TimeUnit::Millisecond, None), field),
        _ => (DataType::Utf8, ColumnSource::RawJson),
    }
}

#[test]
fn the_direct_reader_gives_what_the_general_path_gives() {
    let base = std::env::var("KTABLE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    let (mut direct_rows, mut general_rows) = (0usize, 0usize);
    for n in 0..400 {
        let seed = base.wrapping_add(n);
        let rng = &mut SmallRng::seed_from_u64(seed);
        let proto = random_proto(rng);
        let registry = SchemaRegistry::holding_protobuf(&[(9, &proto)]);
        let registered = registry.schema_by_id(9).expect("held");
        let message = compiled(&registry, &registered)
            .and_then(|c| {
                c.message_at(&[0])
                    .map_err(|reason| crate::format::RegistryError::BadSchema { id: 9, reason })
            })
            .unwrap_or_else(|e| panic!("seed {seed}: {proto}: {e}"));
        let mut columns = vec![("k".to_string(), DataType::Utf8, ColumnSource::Key)];
        for field in message.fields() {
            if rng.random_bool(0.75) {
                let (data_type, source) = column_type(rng);
                columns.push((field.name().to_string(), data_type, source));
            }
        }
        columns.push(("absent".to_string(), DataType::Int64, ColumnSource::Field));
        let on_error = if rng.random_bool(0.3) {
            ErrorPolicy::Null
        } else {
            ErrorPolicy::Skip
        };
        let format = FormatSpec {
            value: ValueFormat::Protobuf,
            keyed: true,
            registry: Some(Arc::clone(&registry)),
            ..FormatSpec::default()
        };
        let schema = Arc::new(
            SourceSchema::new(columns, on_error)
                .unwrap_or_else(|e| panic!("seed {seed}: {e}"))
                .with_format(format),
        );
        let values: Vec<Vec<u8>> = (0..40).map(|_| random_record(&message, rng)).collect();
        let records: Vec<RawRecord<'_>> = values
            .iter()
            .enumerate()
            .map(|(i, value)| RawRecord {
                key: Some(b"k"),
                value,
                partition: 0,
                offset: i as i64,
                timestamp: None,
                headers: None,
            })
            .collect();
        let mut direct = ProtobufDecoder::new(Arc::clone(&schema), Arc::clone(&registry));
        let mut general = ProtobufDecoder::new(schema, registry).without_direct_plans();
        let context = || format!("seed {seed} (KTABLE_TEST_SEED={seed}): {proto}");
        let (a, b) = match (direct.decode(&records), general.decode(&records)) {
            (Ok(a), Ok(b)) => (a, b),
            (a, b) => panic!("{}: {a:?} against {b:?}", context()),
        };
        assert_eq!(a.accepted, b.accepted, "{}: {:?}", context(), b.rejected);
        assert_eq!(a.rejected, b.rejected, "{}", context());
        assert_eq!(a.batch.schema(), b.batch.schema(), "{}", context());
        for (x, y) in a.batch.columns().iter().zip(b.batch.columns()) {
            // Debug form: NaN equals NaN there, as the two paths give the same bits.
            assert_eq!(format!("{x:?}"), format!("{y:?}"), "{}", context());
        }
        let planned = direct
            .direct_plans
            .get(&9)
            .is_some_and(|plans| plans.iter().any(|(_, plan)| plan.is_some()));
        if planned {
            direct_rows += a.accepted.len();
        } else {
            general_rows += a.accepted.len();
        }
    }
    // The comparison means something only if most messages got a plan.
    assert!(
        direct_rows > 2 * general_rows,
        "rows read with a plan {direct_rows}, without {general_rows}"
    );
}

/// Records naming messages the schema does not have are rejected by the general path
/// and leave no plan behind: made-up message indexes cannot grow the decoder.
#[test]
fn made_up_message_indexes_leave_no_plans() {
    let proto = "syntax = \"proto3\"; package t; message M { string id = 1; }";
    let registry = SchemaRegistry::holding_protobuf(&[(9, proto)]);
    let format = FormatSpec {
        value: ValueFormat::Protobuf,
        keyed: true,
        registry: Some(Arc::clone(&registry)),
        ..FormatSpec::default()
    };
    let columns = vec![
        ("k".to_string(), DataType::Utf8, ColumnSource::Key),
        ("id".to_string(), DataType::Utf8, ColumnSource::Field),
    ];
    let schema = Arc::new(
        SourceSchema::new(columns, ErrorPolicy::Skip)
            .expect("schema")
            .with_format(format),
    );
    // One good record (index [0]), then indexes [1] .. [60] (zigzag: 2, 2n).
    let mut values = vec![vec![0u8, 0, 0, 0, 9, 0, 0x0a, 1, b'a']];
    for n in 1..=60u8 {
        values.push(vec![0, 0, 0, 0, 9, 2, 2 * n, 0x0a, 1, b'a']);
    }
    let records: Vec<RawRecord<'_>> = values
        .iter()
        .map(|value| RawRecord::keyed(b"k", value))
        .collect();
    let mut decoder = ProtobufDecoder::new(schema, registry);
    for _ in 0..2 {
        let outcome = decoder.decode(&records).expect("decoded");
        assert_eq!(outcome.accepted, vec![0]);
        assert_eq!(outcome.rejected.len(), 60);
    }
    let plans = decoder.direct_plans.get(&9).map_or(0, Vec::len);
    assert_eq!(plans, 1, "one plan, for the message that exists");
}

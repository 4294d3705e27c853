//! Value and key formats through SQL: Avro and Protobuf in Confluent's wire format with
//! a schema registry (schema evolution across ids, unknown ids, broken payloads, the
//! registry down then up), columns from the registry, Debezium envelopes, key formats.
//!
//! The registry is Apicurio Registry (Confluent's REST API at `/apis/ccompat/v7`) when
//! `KTABLE_TEST_REGISTRY_URL` names it, as in CI (`scripts/registry-start.sh`), else
//! `tests/fixtures/schema_registry.py`, a real HTTP server implementing the Confluent
//! REST endpoints ktable calls. The tests that count the registry's requests or stop
//! and restart it always use the fixture. Records are written by Confluent's own
//! serializers, or encoded with `apache-avro` and framed as those frame them (magic
//! byte 0, big-endian schema id).

use crate::broker::{json_record, produce_all, tombstone, Broker, RawRecord};
use crate::READY_TIMEOUT;
use apache_avro::types::Value;
use apache_avro::Schema;
use arrow::util::pretty::pretty_format_batches;
use ktable::sql::{Engine, EngineConfig};
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::Duration;

#[path = "../fixtures/registry.rs"]
mod registry;

use registry::Registry;

/// `value` in Confluent's wire format under schema `id`.
fn framed(id: u32, schema: &Schema, value: Value) -> Vec<u8> {
    let mut bytes = vec![0];
    bytes.extend_from_slice(&id.to_be_bytes());
    bytes.extend(apache_avro::to_avro_datum(schema, value).expect("avro"));
    bytes
}

fn record(fields: &[(&str, Value)]) -> Value {
    Value::Record(
        fields
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect(),
    )
}

fn keyed(key: &str, value: Vec<u8>) -> RawRecord {
    (Some(key.as_bytes().to_vec()), Some(value))
}

fn engine(broker: &Broker, registry: &str) -> Engine {
    Engine::new(
        EngineConfig::new(broker.brokers())
            .request_timeout(Duration::from_secs(5))
            .schema_registry(registry),
    )
}

async fn text(engine: &Engine, sql: &str) -> String {
    let batches = engine
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    pretty_format_batches(&batches).expect("format").to_string()
}

/// Polls `sql` until its text equals `expected`.
async fn eventually_text(engine: &Engine, sql: &str, expected: &str) {
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    loop {
        let got = text(engine, sql).await;
        if got.trim() == expected.trim() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{sql}\nexpected:\n{expected}\ngot:\n{got}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const USER_V1: &str = r#"{"type": "record", "name": "User", "fields": [
    {"name": "name", "type": "string"},
    {"name": "score", "type": "int"}]}"#;
/// Adds `email` with a default, widens `score` to long.
const USER_V2: &str = r#"{"type": "record", "name": "User", "fields": [
    {"name": "name", "type": "string"},
    {"name": "score", "type": "long"},
    {"name": "email", "type": "string", "default": "none"}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_values_evolve_across_schema_ids_and_bad_records_are_skipped() {
    let broker = Broker::start();
    let registry = Registry::start(0);
    let topic = broker.topic("avro-users", 2, &[]).await;
    let subject = format!("{topic}-value");
    let v1 = registry.register(&subject, USER_V1);
    let v2 = registry.register(&subject, USER_V2);
    assert_ne!(v1, v2);
    let (s1, s2) = (
        Schema::parse_str(USER_V1).unwrap(),
        Schema::parse_str(USER_V2).unwrap(),
    );
    let old = |name: &str, score: i32| {
        framed(
            v1,
            &s1,
            record(&[
                ("name", Value::String(name.into())),
                ("score", Value::Int(score)),
            ]),
        )
    };
    let new = |name: &str, score: i64, email: &str| {
        framed(
            v2,
            &s2,
            record(&[
                ("name", Value::String(name.into())),
                ("score", Value::Long(score)),
                ("email", Value::String(email.into())),
            ]),
        )
    };
    let mut garbage = old("g", 1);
    garbage.extend_from_slice(&[0xff, 0xff, 0xff]);
    let truncated = old("truncated-record-name", 1)[..9].to_vec();
    let mut unknown = old("u", 1);
    unknown[1..5].copy_from_slice(&999u32.to_be_bytes());
    let records = vec![
        keyed("a", old("ann", 1)),
        keyed("b", new("bob", 1 << 40, "bob@example.com")),
        keyed("c", old("cy", 3)),
        tombstone("c"),
        keyed("a", new("ann", 2, "ann@example.com")),
        keyed("d", old("dee", 4)),
        keyed("x1", garbage),
        keyed("x2", truncated),
        keyed("x3", unknown.clone()),
        keyed("x4", unknown),
        keyed("x5", b"{\"name\": \"json\"}".to_vec()),
        keyed("x6", vec![0, 0]),
    ];
    produce_all(&broker.raw_producer(), &topic, &records).await;

    let engine = engine(&broker, &registry.url());
    engine
        .sql(&format!(
            "CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, score BIGINT, email TEXT) \
             WITH (topic = '{topic}', format = 'avro')"
        ))
        .await
        .expect("create");
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    eventually_text(
        &engine,
        "SELECT id, name, score, email FROM users ORDER BY id",
        "
+----+------+---------------+-----------------+
| id | name | score         | email           |
+----+------+---------------+-----------------+
| a  | ann  | 2             | ann@example.com |
| b  | bob  | 1099511627776 | bob@example.com |
| d  | dee  | 4             | none            |
+----+------+---------------+-----------------+",
    )
    .await;
    // Point lookups give the rows a scan gives.
    assert!(text(&engine, "SELECT email FROM users WHERE id = 'd'")
        .await
        .contains("none"));
    let stats = text(
        &engine,
        "SELECT bad_records, tombstones, last_error FROM ktable_tables WHERE name = 'users'",
    )
    .await;
    assert!(stats.contains("| 6           | 1          |"), "{stats}");
    // The unknown id was asked for once, each known id at most once.
    assert_eq!(registry.requests("/schemas/ids/999"), 1);
    assert!(registry.requests(&format!("/schemas/ids/{v1}")) <= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn columns_come_from_the_registry_with_logical_types_and_a_record_key() {
    let broker = Broker::start();
    let registry = Registry::real_or_fixture();
    let topic = broker.topic("avro-orders", 1, &[]).await;
    let key_schema =
        r#"{"type": "record", "name": "Key", "fields": [{"name": "id", "type": "long"}]}"#;
    let value_schema = r#"{"type": "record", "name": "Order", "fields": [
        {"name": "id", "type": "long"},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "note", "type": ["null", "string"], "default": null},
        {"name": "address", "type": {"type": "record", "name": "Address", "fields": [{"name": "city", "type": "string"}]}}
    ]}"#;
    let key_id = registry.register(&format!("{topic}-key"), key_schema);
    let value_id = registry.register(&format!("{topic}-value"), value_schema);
    let (ks, vs) = (
        Schema::parse_str(key_schema).unwrap(),
        Schema::parse_str(value_schema).unwrap(),
    );
    let key = |id: i64| framed(key_id, &ks, record(&[("id", Value::Long(id))]));
    let uuid = "6f1c2b8e-2d0c-4c39-9a55-0c1f0f3e7a10";
    let value = |id: i64, cents: i64| {
        framed(
            value_id,
            &vs,
            record(&[
                ("id", Value::Long(id)),
                (
                    "price",
                    Value::Decimal(apache_avro::Decimal::from(num_bigint_bytes(cents))),
                ),
                ("at", Value::TimestampMillis(1_700_000_000_123)),
                ("day", Value::Date(19_700)),
                ("ref", Value::Uuid(uuid.parse().unwrap())),
                ("note", Value::Union(0, Box::new(Value::Null))),
                ("address", record(&[("city", Value::String("Lyon".into()))])),
            ]),
        )
    };
    let records: Vec<RawRecord> = vec![
        (Some(key(42)), Some(value(42, 1999))),
        (Some(key(7)), Some(value(7, -5))),
        (Some(key(7)), None),
        (Some(key(8)), Some(value(8, 100))),
    ];
    produce_all(&broker.raw_producer(), &topic, &records).await;

    let engine = engine(&broker, &registry.url());
    engine
        .sql(&format!(
            "CREATE TABLE orders WITH (topic = '{topic}', format = 'avro', key_format = 'avro')"
        ))
        .await
        .expect("create without columns");
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    let described = text(&engine, "DESCRIBE orders").await;
    for expected in [
        "| id          | Int64",
        "Decimal128(10, 2)",
        "Timestamp(ms, \"UTC\")",
        "Date32",
        "address",
    ] {
        assert!(described.contains(expected), "{expected} in {described}");
    }
    eventually_text(
        &engine,
        "SELECT id, price, at, day, ref, note, address FROM orders ORDER BY id",
        &format!(
            "
+----+-------+--------------------------+------------+--------------------------------------+------+-----------------+
| id | price | at                       | day        | ref                                  | note | address         |
+----+-------+--------------------------+------------+--------------------------------------+------+-----------------+
| 8  | 1.00  | 2023-11-14T22:13:20.123Z | 2023-12-09 | {uuid} |      | {{\"city\":\"Lyon\"}} |
| 42 | 19.99 | 2023-11-14T22:13:20.123Z | 2023-12-09 | {uuid} |      | {{\"city\":\"Lyon\"}} |
+----+-------+--------------------------+------------+--------------------------------------+------+-----------------+"
        ),
    )
    .await;
    assert!(text(&engine, "SELECT price FROM orders WHERE id = 42")
        .await
        .contains("19.99"));
    assert_eq!(
        text(
            &engine,
            "SELECT id FROM orders WHERE id IN (7, 8, 42) ORDER BY id"
        )
        .await,
        text(
            &engine,
            "SELECT id FROM orders WHERE id + 0 IN (7, 8, 42) ORDER BY id"
        )
        .await,
    );
}

/// The big-endian two's complement bytes of `value` (an Avro decimal's unscaled value).
fn num_bigint_bytes(value: i64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let skip = bytes
        .windows(2)
        .take_while(|w| (w[0] == 0 && w[1] & 0x80 == 0) || (w[0] == 0xff && w[1] & 0x80 != 0))
        .count();
    bytes[skip..].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_registry_is_retried_shown_and_stalls_no_other_table() {
    let broker = Broker::start();
    let registry = Registry::start(0);
    let port = registry.port;
    let topic = broker.topic("avro-down", 1, &[]).await;
    let json_topic = broker.topic("json-beside", 1, &[]).await;
    let id = registry.register(&format!("{topic}-value"), USER_V1);
    let schema = Schema::parse_str(USER_V1).unwrap();
    drop(registry);

    let producer = broker.raw_producer();
    let value = framed(
        id,
        &schema,
        record(&[
            ("name", Value::String("ann".into())),
            ("score", Value::Int(1)),
        ]),
    );
    produce_all(&producer, &topic, &[keyed("a", value)]).await;
    let engine = engine(&broker, &format!("http://127.0.0.1:{port}"));
    engine
        .sql(&format!(
            "CREATE TABLE down (id TEXT PRIMARY KEY, name TEXT, score INT) \
             WITH (topic = '{topic}', format = 'avro')"
        ))
        .await
        .expect("declared columns need no registry at creation");
    engine
        .sql(&format!(
            "CREATE TABLE beside (id TEXT PRIMARY KEY, v INT) WITH (topic = '{json_topic}')"
        ))
        .await
        .expect("json table");
    produce_all(&producer, &json_topic, &[json_record("k", json!({"v": 1}))]).await;
    // The other table is served while this one waits for its registry.
    eventually_text(
        &engine,
        "SELECT id, v FROM beside",
        "
+----+---+
| id | v |
+----+---+
| k  | 1 |
+----+---+",
    )
    .await;
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    loop {
        let stats = text(
            &engine,
            "SELECT running, last_error FROM ktable_tables WHERE name = 'down'",
        )
        .await;
        if stats.contains("unreachable") {
            assert!(stats.contains("true"), "still running: {stats}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        text(&engine, "SELECT count(*) AS n FROM down")
            .await
            .matches("| 0 |")
            .count(),
        1
    );

    // The registry comes back (same port, same schema, same id): the batch is applied.
    let registry = Registry::start(port);
    assert_eq!(registry.register(&format!("{topic}-value"), USER_V1), id);
    eventually_text(
        &engine,
        "SELECT id, name, score FROM down",
        "
+----+------+-------+
| id | name | score |
+----+------+-------+
| a  | ann  | 1     |
+----+------+-------+",
    )
    .await;
    let stats = text(
        &engine,
        "SELECT bad_records, last_error FROM ktable_tables WHERE name = 'down'",
    )
    .await;
    assert!(
        stats.contains("| 0           |"),
        "nothing skipped: {stats}"
    );
    assert!(!stats.contains("unreachable"), "error cleared: {stats}");
}

const DEBEZIUM_ENVELOPE: &str = r#"{"type": "record", "name": "Envelope", "namespace": "db.public.users", "fields": [
    {"name": "before", "type": ["null", {"type": "record", "name": "Value", "fields": [
        {"name": "id", "type": "int"},
        {"name": "name", "type": ["null", "string"], "default": null}]}], "default": null},
    {"name": "after", "type": ["null", "Value"], "default": null},
    {"name": "source", "type": {"type": "record", "name": "Source", "namespace": "io.debezium.connector.postgresql", "fields": [
        {"name": "ts_ms", "type": "long"}, {"name": "lsn", "type": ["null", "long"], "default": null}]}},
    {"name": "op", "type": "string"},
    {"name": "ts_ms", "type": ["null", "long"], "default": null}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debezium_events_in_json_and_avro_upsert_and_delete() {
    let broker = Broker::start();
    let registry = Registry::real_or_fixture();
    let json_topic = broker.topic("dbz-json", 1, &[]).await;
    let avro_topic = broker.topic("dbz-avro", 1, &[]).await;

    // JSON converter, keys and values with and without the schema wrapper.
    let key = |id: i64, wrapped: bool| {
        let payload = json!({ "id": id });
        let key = if wrapped {
            json!({"schema": {"type": "struct", "fields": [{"field": "id", "type": "int32"}]}, "payload": payload})
        } else {
            payload
        };
        serde_json::to_vec(&key).unwrap()
    };
    let event = |op: &str, after: serde_json::Value, wrapped: bool| {
        let payload =
            json!({"before": null, "after": after, "op": op, "source": {"ts_ms": 1, "lsn": 10}});
        let event = if wrapped {
            json!({"schema": {"type": "struct"}, "payload": payload})
        } else {
            payload
        };
        serde_json::to_vec(&event).unwrap()
    };
    let json_records: Vec<RawRecord> = vec![
        (
            Some(key(1, true)),
            Some(event("r", json!({"id": 1, "name": "ann"}), true)),
        ),
        (
            Some(key(2, false)),
            Some(event("c", json!({"id": 2, "name": "bob"}), false)),
        ),
        (
            Some(key(3, true)),
            Some(event("c", json!({"id": 3, "name": "cy"}), true)),
        ),
        (
            Some(key(2, false)),
            Some(event("u", json!({"id": 2, "name": "bobby"}), false)),
        ),
        (
            Some(key(3, true)),
            Some(event("d", serde_json::Value::Null, true)),
        ),
        (Some(key(3, true)), None),
        (
            Some(key(4, false)),
            Some(event("t", serde_json::Value::Null, false)),
        ),
    ];
    produce_all(&broker.raw_producer(), &json_topic, &json_records).await;

    // Avro converter.
    let key_schema = r#"{"type": "record", "name": "Key", "namespace": "db.public.users", "fields": [{"name": "id", "type": "int"}]}"#;
    let key_id = registry.register(&format!("{avro_topic}-key"), key_schema);
    let value_id = registry.register(&format!("{avro_topic}-value"), DEBEZIUM_ENVELOPE);
    let (ks, vs) = (
        Schema::parse_str(key_schema).unwrap(),
        Schema::parse_str(DEBEZIUM_ENVELOPE).unwrap(),
    );
    let akey = |id: i32| framed(key_id, &ks, record(&[("id", Value::Int(id))]));
    let row = |id: i32, name: &str| {
        Value::Union(
            1,
            Box::new(record(&[
                ("id", Value::Int(id)),
                (
                    "name",
                    Value::Union(1, Box::new(Value::String(name.into()))),
                ),
            ])),
        )
    };
    let null = || Value::Union(0, Box::new(Value::Null));
    let aevent = |op: &str, before: Value, after: Value| {
        framed(
            value_id,
            &vs,
            record(&[
                ("before", before),
                ("after", after),
                (
                    "source",
                    record(&[
                        ("ts_ms", Value::Long(1)),
                        ("lsn", Value::Union(1, Box::new(Value::Long(10)))),
                    ]),
                ),
                ("op", Value::String(op.into())),
                ("ts_ms", null()),
            ]),
        )
    };
    let avro_records: Vec<RawRecord> = vec![
        (Some(akey(1)), Some(aevent("r", null(), row(1, "ann")))),
        (Some(akey(2)), Some(aevent("c", null(), row(2, "bob")))),
        (
            Some(akey(2)),
            Some(aevent("u", row(2, "bob"), row(2, "bobby"))),
        ),
        (Some(akey(1)), Some(aevent("d", row(1, "ann"), null()))),
        (Some(akey(1)), None),
    ];
    produce_all(&broker.raw_producer(), &avro_topic, &avro_records).await;

    let engine = engine(&broker, &registry.url());
    engine
        .sql(&format!(
            "CREATE TABLE users_json (id TEXT PRIMARY KEY, name TEXT) \
             WITH (topic = '{json_topic}', key_format = 'json', envelope = 'debezium')"
        ))
        .await
        .expect("json debezium");
    engine
        .sql(&format!(
            "CREATE TABLE users_avro WITH (topic = '{avro_topic}', format = 'avro', \
             key_format = 'avro', envelope = 'debezium')"
        ))
        .await
        .expect("avro debezium, columns from the registry");
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    eventually_text(
        &engine,
        "SELECT id, name FROM users_json ORDER BY id",
        "
+----+-------+
| id | name  |
+----+-------+
| 1  | ann   |
| 2  | bobby |
+----+-------+",
    )
    .await;
    eventually_text(
        &engine,
        "SELECT id, name FROM users_avro ORDER BY id",
        "
+----+-------+
| id | name  |
+----+-------+
| 2  | bobby |
+----+-------+",
    )
    .await;
    let stats = text(
        &engine,
        "SELECT name, bad_records, tombstones FROM ktable_tables WHERE name LIKE 'users_%' ORDER BY name",
    )
    .await;
    assert!(
        stats.contains("| users_avro | 0           | 2          |"),
        "{stats}"
    );
    assert!(
        stats.contains("| users_json | 1           | 2          |"),
        "{stats}"
    );
}

#[tokio::test]
async fn integer_keys_are_read_in_their_format() {
    let broker = Broker::start();
    let topic = broker.topic("int-keys", 1, &[]).await;
    let records: Vec<RawRecord> = vec![
        (
            Some(42i32.to_be_bytes().to_vec()),
            Some(br#"{"v": 1}"#.to_vec()),
        ),
        (
            Some((-1i32).to_be_bytes().to_vec()),
            Some(br#"{"v": 2}"#.to_vec()),
        ),
        (Some(b"bad".to_vec()), Some(br#"{"v": 3}"#.to_vec())),
        (Some(42i32.to_be_bytes().to_vec()), None),
        (
            Some(7i32.to_be_bytes().to_vec()),
            Some(br#"{"v": 4}"#.to_vec()),
        ),
    ];
    produce_all(&broker.raw_producer(), &topic, &records).await;
    let engine = Engine::new(EngineConfig::new(broker.brokers()));
    engine
        .sql(&format!(
            "CREATE TABLE t (id TEXT PRIMARY KEY, v INT) WITH (topic = '{topic}', key_format = 'int')"
        ))
        .await
        .expect("create");
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    eventually_text(
        &engine,
        "SELECT id, v FROM t ORDER BY v",
        "
+----+---+
| id | v |
+----+---+
| -1 | 2 |
| 7  | 4 |
+----+---+",
    )
    .await;
    assert!(text(&engine, "SELECT v FROM t WHERE id IN ('7', '42')")
        .await
        .contains("| 4 |"));
    assert!(text(
        &engine,
        "SELECT bad_records FROM ktable_tables WHERE name = 't'"
    )
    .await
    .contains("| 1 "));

    // The same topic under an INT primary key: lookups, IN and scans agree.
    engine
        .sql(&format!(
            "CREATE TABLE ti (id INT PRIMARY KEY, v INT) WITH (topic = '{topic}', key_format = 'int')"
        ))
        .await
        .expect("create with an INT key");
    engine
        .sql(&format!(
            "CREATE TABLE tb (id BIGINT PRIMARY KEY, v INT) WITH (topic = '{topic}', key_format = 'int')"
        ))
        .await
        .expect("create with a BIGINT key");
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    for table in ["ti", "tb"] {
        eventually_text(
            &engine,
            &format!("SELECT id, v FROM {table} ORDER BY id"),
            "
+----+---+
| id | v |
+----+---+
| -1 | 2 |
| 7  | 4 |
+----+---+",
        )
        .await;
        for (lookup, scan) in [
            ("id = 7", "id + 0 = 7"),
            ("id = -1", "id + 0 = -1"),
            ("id = 42", "id + 0 = 42"),
            ("id IN (7, 42, -1, 7)", "id + 0 IN (7, 42, -1)"),
        ] {
            assert_eq!(
                text(
                    &engine,
                    &format!("SELECT id, v FROM {table} WHERE {lookup} ORDER BY id")
                )
                .await,
                text(
                    &engine,
                    &format!("SELECT id, v FROM {table} WHERE {scan} ORDER BY id")
                )
                .await,
                "{table}: {lookup}"
            );
        }
        let plan = text(
            &engine,
            &format!("EXPLAIN SELECT v FROM {table} WHERE id = 7"),
        )
        .await;
        assert!(
            !plan.contains("FilterExec"),
            "the key filter is served by the index: {plan}"
        );
    }
}

/// Values serialized by Confluent's Python `AvroSerializer` (which registers `schema`
/// under `<topic>-value` as producers do); None when `confluent-kafka` is not installed
/// and `KTABLE_REQUIRE_SERIALIZERS=1` does not demand it.
fn reference_serialized(
    registry: &Registry,
    topic: &str,
    schema: &str,
    values: &[serde_json::Value],
) -> Option<Vec<Vec<u8>>> {
    serialized_by_confluent("avro", registry, topic, schema, values)
}

/// [`reference_serialized`] with the serializer of `kind`: "avro" or "json" (Confluent's
/// `JSONSerializer`, JSON Schema).
fn serialized_by_confluent(
    kind: &str,
    registry: &Registry,
    topic: &str,
    schema: &str,
    values: &[serde_json::Value],
) -> Option<Vec<Vec<u8>>> {
    serialized_by_confluent_with(
        json!({"kind": kind, "registry": registry.url(), "topic": topic, "schema": schema, "values": values}),
    )
}

/// Values (or keys, with `"field": "key"`) serialized by Confluent's Python
/// `ProtobufSerializer` as message `message` (a full name) of the `.proto` text
/// `schema`, which imports `imports` (`{"name.proto": text}`).
fn protobuf_by_confluent(
    registry: &Registry,
    topic: &str,
    field: &str,
    (schema, imports, message): (&str, &serde_json::Value, &str),
    values: &[serde_json::Value],
) -> Option<Vec<Vec<u8>>> {
    serialized_by_confluent_with(json!({
        "kind": "protobuf", "registry": registry.url(), "topic": topic, "field": field,
        "schema": schema, "imports": imports, "message": message, "values": values
    }))
}

/// Runs the reference serializer on `request` (see `reference_serializer.py`).
fn serialized_by_confluent_with(request: serde_json::Value) -> Option<Vec<Vec<u8>>> {
    use std::io::Write;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/reference_serializer.py"
    );
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write request");
    let output = child.wait_with_output().expect("serializer output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No module named 'confluent_kafka'")
        || stderr.contains("No module named 'google'")
        || stderr.contains("No module named 'grpc_tools'")
    {
        assert!(
            std::env::var("KTABLE_REQUIRE_SERIALIZERS").as_deref() != Ok("1"),
            "KTABLE_REQUIRE_SERIALIZERS=1 but confluent-kafka is not installed: {stderr}"
        );
        eprintln!(
            "SKIPPED: pip install -r tests/clients/requirements.txt to test with the reference serializers"
        );
        return None;
    }
    assert!(output.status.success(), "serializer failed: {stderr}");
    let hex = String::from_utf8(output.stdout).expect("hex");
    Some(
        hex.lines()
            .map(|line| {
                (0..line.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&line[i..i + 2], 16).expect("hex byte"))
                    .collect()
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_written_by_confluents_serializer_are_read() {
    let broker = Broker::start();
    let registry = Registry::real_or_fixture();
    let topic = broker.topic("avro-reference", 1, &[]).await;
    let Some(old) = reference_serialized(
        &registry,
        &topic,
        USER_V1,
        &[
            json!({"name": "ann", "score": 1}),
            json!({"name": "cy", "score": 3}),
        ],
    ) else {
        return;
    };
    let new = reference_serialized(
        &registry,
        &topic,
        USER_V2,
        &[json!({"name": "bob", "score": 1u64 << 40, "email": "bob@example.com"})],
    )
    .expect("serialized");
    assert_eq!(
        old[0][0], 0,
        "Confluent's framing starts with the magic byte"
    );
    assert_ne!(old[0][1..5], new[0][1..5], "two schema ids");
    let records = vec![
        keyed("a", old[0].clone()),
        keyed("c", old[1].clone()),
        keyed("b", new[0].clone()),
        tombstone("c"),
    ];
    produce_all(&broker.raw_producer(), &topic, &records).await;
    let engine = engine(&broker, &registry.url());
    engine
        .sql(&format!(
            "CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, score BIGINT, email TEXT) \
             WITH (topic = '{topic}', format = 'avro')"
        ))
        .await
        .expect("create");
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    eventually_text(
        &engine,
        "SELECT id, name, score, email FROM users ORDER BY id",
        "
+----+------+---------------+-----------------+
| id | name | score         | email           |
+----+------+---------------+-----------------+
| a  | ann  | 1             | none            |
| b  | bob  | 1099511627776 | bob@example.com |
+----+------+---------------+-----------------+",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_schema_records_from_confluents_serializer_are_read_and_unframed_ones_skipped() {
    let broker = Broker::start();
    let registry = Registry::real_or_fixture();
    let topic = broker.topic("json-sr", 1, &[]).await;
    let schema = r#"{"type": "object", "properties": {
        "name": {"type": "string"}, "score": {"type": "integer"}}, "required": ["name"]}"#;
    let Some(values) = serialized_by_confluent(
        "json",
        &registry,
        &topic,
        schema,
        &[
            json!({"name": "ann", "score": 1}),
            json!({"name": "bob", "score": 2}),
            json!({"name": "cy"}),
        ],
    ) else {
        return;
    };
    assert_eq!(
        values[0][0], 0,
        "Confluent's framing starts with the magic byte"
    );
    let records = vec![
        keyed("a", values[0].clone()),
        keyed("b", values[1].clone()),
        keyed("c", values[2].clone()),
        // Plain JSON, without the framing: a bad record for json_sr.
        json_record("d", json!({"name": "dan", "score": 4})),
        tombstone("b"),
    ];
    produce_all(&broker.raw_producer(), &topic, &records).await;
    let engine = engine(&broker, &registry.url());
    engine
        .sql(&format!(
            "CREATE TABLE people (id TEXT PRIMARY KEY, name TEXT, score INT) \
             WITH (topic = '{topic}', format = 'json_sr')"
        ))
        .await
        .expect("create");
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    eventually_text(
        &engine,
        "SELECT id, name, score FROM people ORDER BY id",
        "
+----+------+-------+
| id | name | score |
+----+------+-------+
| a  | ann  | 1     |
| c  | cy   |       |
+----+------+-------+",
    )
    .await;
    eventually_text(
        &engine,
        "SELECT bad_records, tombstones FROM ktable_tables WHERE name = 'people'",
        "
+-------------+------------+
| bad_records | tombstones |
+-------------+------------+
| 1           | 1          |
+-------------+------------+",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_avro_upserts_and_deletes_match_a_model() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("KTABLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("KTABLE_SEED={seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let broker = Broker::start();
    let registry = Registry::real_or_fixture();
    let topic = broker.topic("avro-random", 3, &[]).await;
    let subject = format!("{topic}-value");
    let v1 = registry.register(&subject, USER_V1);
    let v2 = registry.register(&subject, USER_V2);
    let (s1, s2) = (
        Schema::parse_str(USER_V1).unwrap(),
        Schema::parse_str(USER_V2).unwrap(),
    );
    // key -> (name, score, email)
    let mut model: std::collections::BTreeMap<String, (String, i64, String)> = Default::default();
    let mut records = Vec::new();
    let mut bad = 0;
    for n in 0..2_000 {
        let key = format!("k{}", rng.random_range(0..60));
        match rng.random_range(0..10) {
            0 => {
                records.push(tombstone(&key));
                model.remove(&key);
            }
            1 => {
                // Not Avro of its schema: skipped, the key keeps its row.
                records.push(keyed(&key, vec![0, 0, 0, 0, v1 as u8, 0xff]));
                bad += 1;
            }
            2..=5 => {
                let score = rng.random_range(-1000..1000);
                let name = format!("n{n}");
                records.push(keyed(
                    &key,
                    framed(
                        v1,
                        &s1,
                        record(&[
                            ("name", Value::String(name.clone())),
                            ("score", Value::Int(score)),
                        ]),
                    ),
                ));
                model.insert(key, (name, score as i64, "none".into()));
            }
            _ => {
                let score = rng.random_range(-(1i64 << 40)..(1i64 << 40));
                let (name, email) = (format!("n{n}"), format!("e{n}"));
                records.push(keyed(
                    &key,
                    framed(
                        v2,
                        &s2,
                        record(&[
                            ("name", Value::String(name.clone())),
                            ("score", Value::Long(score)),
                            ("email", Value::String(email.clone())),
                        ]),
                    ),
                ));
                model.insert(key, (name, score, email));
            }
        }
    }
    // One producer, keys hashed to partitions: each key's records stay in order.
    produce_all(&broker.raw_producer(), &topic, &records).await;
    let engine = engine(&broker, &registry.url());
    engine
        .sql(&format!(
            "CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, score BIGINT, email TEXT) \
             WITH (topic = '{topic}', format = 'avro')"
        ))
        .await
        .expect("create");
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    users_match_the_model(&engine, &model, bad, seed).await;
}

/// Checks the `users` table (id, name, score, email) of a randomized format test
/// against its model (key → name, score, email text, empty for NULL): the whole
/// table, then a lookup of each of the 60 keys against a scan, and the bad records
/// counted.
async fn users_match_the_model(
    engine: &Engine,
    model: &std::collections::BTreeMap<String, (String, i64, String)>,
    bad: usize,
    seed: u64,
) {
    let squeeze_line = |line: &str| line.split_whitespace().collect::<Vec<_>>().join(" ");
    let expected: Vec<String> = model
        .iter()
        .map(|(k, (name, score, email))| {
            squeeze_line(&format!("| {k} | {name} | {score} | {email} |"))
        })
        .collect();
    let squeeze = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("| k"))
            .map(squeeze_line)
            .collect()
    };
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    loop {
        let got = squeeze(
            &text(
                engine,
                "SELECT id, name, score, email FROM users ORDER BY id",
            )
            .await,
        );
        if got == expected {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "seed {seed}: table differs from the model\n{got:?}\n{expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Lookups and IN give what the scan gives, for present and missing keys.
    for k in 0..60 {
        let key = format!("k{k}");
        let lookup = squeeze(
            &text(
                engine,
                &format!("SELECT id, name, score, email FROM users WHERE id = '{key}'"),
            )
            .await,
        );
        let scan = squeeze(
            &text(
                engine,
                &format!("SELECT id, name, score, email FROM users WHERE id || '' = '{key}'"),
            )
            .await,
        );
        assert_eq!(lookup, scan, "seed {seed}: {key}");
    }
    let stats = text(
        engine,
        "SELECT bad_records FROM ktable_tables WHERE name = 'users'",
    )
    .await;
    assert!(
        stats.contains(&format!("| {bad} ")),
        "seed {seed}: {bad} bad records in {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_error_null_and_fail_apply_to_avro_records() {
    let broker = Broker::start();
    let registry = Registry::real_or_fixture();
    let topic = broker.topic("avro-on-error", 1, &[]).await;
    let v2 = registry.register(&format!("{topic}-value"), USER_V2);
    let s2 = Schema::parse_str(USER_V2).unwrap();
    let user = |score: i64| {
        framed(
            v2,
            &s2,
            record(&[
                ("name", Value::String("x".into())),
                ("score", Value::Long(score)),
                ("email", Value::String("e".into())),
            ]),
        )
    };
    let records = vec![
        keyed("a", user(1)),
        keyed("b", user(1 << 40)), // does not fit INT
        keyed("c", vec![0, 1, 2]), // not in the wire format
        keyed("d", user(4)),
    ];
    produce_all(&broker.raw_producer(), &topic, &records).await;
    let engine = engine(&broker, &registry.url());
    for policy in ["skip", "null", "fail"] {
        engine
            .sql(&format!(
                "CREATE TABLE t_{policy} (id TEXT PRIMARY KEY, score INT) \
                 WITH (topic = '{topic}', format = 'avro', on_error = '{policy}')"
            ))
            .await
            .expect("create");
    }
    let rows = |policy: &str| format!("SELECT id, score FROM t_{policy} ORDER BY id");
    eventually_text(
        &engine,
        &rows("skip"),
        "
+----+-------+
| id | score |
+----+-------+
| a  | 1     |
| d  | 4     |
+----+-------+",
    )
    .await;
    eventually_text(
        &engine,
        &rows("null"),
        "
+----+-------+
| id | score |
+----+-------+
| a  | 1     |
| b  |       |
| d  | 4     |
+----+-------+",
    )
    .await;
    eventually_text(
        &engine,
        &rows("fail"),
        "
+----+-------+
| id | score |
+----+-------+
| a  | 1     |
+----+-------+",
    )
    .await;
    eventually_text(
        &engine,
        "SELECT name, running, bad_records FROM ktable_tables ORDER BY name",
        "
+--------+---------+-------------+
| name   | running | bad_records |
+--------+---------+-------------+
| t_fail | false   | 1           |
| t_null | true    | 1           |
| t_skip | true    | 2           |
+--------+---------+-------------+",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_keys_from_struct_keys_answer_lookups_like_scans() {
    let broker = Broker::start();
    let topic = broker.topic("composite", 2, &[]).await;
    let key = |tenant: &str, id: i32| {
        serde_json::to_vec(
            &json!({"schema": {"type": "struct"}, "payload": {"tenant": tenant, "id": id}}),
        )
        .unwrap()
    };
    let event = |op: &str, tenant: &str, id: i32, name: &str| {
        let after = if op == "d" {
            serde_json::Value::Null
        } else {
            json!({"tenant": tenant, "id": id, "name": name})
        };
        serde_json::to_vec(&json!({"before": null, "after": after, "op": op})).unwrap()
    };
    let mut records: Vec<RawRecord> = Vec::new();
    for tenant in ["a", "b", "c"] {
        for id in 1..=3 {
            records.push((
                Some(key(tenant, id)),
                Some(event("c", tenant, id, &format!("{tenant}{id}"))),
            ));
        }
    }
    records.push((Some(key("a", 2)), Some(event("d", "a", 2, ""))));
    records.push((Some(key("a", 2)), None));
    records.push((Some(key("b", 3)), Some(event("u", "b", 3, "b3-new"))));
    records.push((Some(key("c", 1)), None));
    produce_all(&broker.raw_producer(), &topic, &records).await;

    let engine = Engine::new(EngineConfig::new(broker.brokers()));
    engine
        .sql(&format!(
            "CREATE TABLE accounts (tenant TEXT, id INT, name TEXT, PRIMARY KEY (tenant, id)) \
             WITH (topic = '{topic}', key_format = 'json', envelope = 'debezium')"
        ))
        .await
        .expect("create");
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    eventually_text(
        &engine,
        "SELECT count(*) AS n FROM accounts",
        "
+---+
| n |
+---+
| 7 |
+---+",
    )
    .await;
    for (lookup, scan) in [
        (
            "tenant = 'a' AND id = 1",
            "tenant || '' = 'a' AND id + 0 = 1",
        ),
        (
            "tenant = 'a' AND id = 2",
            "tenant || '' = 'a' AND id + 0 = 2",
        ),
        (
            "tenant = 'c' AND id = 1",
            "tenant || '' = 'c' AND id + 0 = 1",
        ),
        (
            "tenant IN ('a', 'b') AND id IN (2, 3)",
            "tenant || '' IN ('a', 'b') AND id + 0 IN (2, 3)",
        ),
        ("tenant = 'b'", "tenant || '' = 'b'"),
        ("id = 3", "id + 0 = 3"),
        (
            "tenant = 'b' AND id = 3 AND name = 'x'",
            "tenant || '' = 'b' AND id + 0 = 3 AND name = 'x'",
        ),
    ] {
        let sql = |filter: &str| {
            format!("SELECT tenant, id, name FROM accounts WHERE {filter} ORDER BY tenant, id")
        };
        let (looked_up, scanned) = (
            text(&engine, &sql(lookup)).await,
            text(&engine, &sql(scan)).await,
        );
        assert_eq!(looked_up, scanned, "{lookup}");
    }
    assert!(text(
        &engine,
        "SELECT name FROM accounts WHERE tenant = 'b' AND id = 3"
    )
    .await
    .contains("b3-new"));
}

const COMMON_PROTO: &str = r#"syntax = "proto3";
package shop;
message Address { string city = 1; }
"#;

/// Imports `common.proto` (a schema reference) and Google's well-known files.
const USER_PROTO_V1: &str = r#"syntax = "proto3";
package shop;
import "common.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
enum Status { UNKNOWN = 0; ACTIVE = 1; BANNED = 2; }
message User {
  string name = 1;
  int32 score = 2;
  Status status = 3;
  google.protobuf.Int32Value age = 4;
  optional string nick = 5;
  Address address = 6;
  repeated string tags = 7;
  google.protobuf.Timestamp at = 8;
}
"#;

/// Widens `score` to int64, removes `nick`, adds `email`.
const USER_PROTO_V2: &str = r#"syntax = "proto3";
package shop;
import "common.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
enum Status { UNKNOWN = 0; ACTIVE = 1; BANNED = 2; }
message User {
  string name = 1;
  int64 score = 2;
  Status status = 3;
  google.protobuf.Int32Value age = 4;
  reserved 5;
  Address address = 6;
  repeated string tags = 7;
  google.protobuf.Timestamp at = 8;
  string email = 9;
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_records_from_confluents_serializer_evolve_and_bad_ones_are_skipped() {
    let broker = Broker::start();
    let registry = Registry::start(0);
    let topic = broker.topic("proto-users", 2, &[]).await;
    let imports = json!({ "common.proto": COMMON_PROTO });
    let Some(old) = protobuf_by_confluent(
        &registry,
        &topic,
        "value",
        (USER_PROTO_V1, &imports, "shop.User"),
        &[
            json!({"name": "ann", "score": 1}),
            json!({"name": "cy", "score": 3}),
            json!({"name": "dee", "score": 4, "status": "ACTIVE", "age": 30, "nick": "d",
                   "address": {"city": "Lyon"}, "tags": ["x", "y"],
                   "at": "2023-11-14T22:13:20.123Z"}),
        ],
    ) else {
        return;
    };
    let new = protobuf_by_confluent(
        &registry,
        &topic,
        "value",
        (USER_PROTO_V2, &imports, "shop.User"),
        &[
            json!({"name": "bob", "score": 1u64 << 40, "email": "bob@example.com"}),
            json!({"name": "ann", "score": 2, "status": "BANNED", "email": "ann@example.com"}),
        ],
    )
    .expect("serialized");
    assert_ne!(old[0][1..5], new[0][1..5], "two schema ids");
    assert_eq!(old[0][5], 0, "the first message's index is the byte 0");

    let mut garbage = old[0].clone();
    garbage.extend_from_slice(&[0xff, 0xff, 0xff]);
    // Cut inside the name's bytes.
    let truncated = old[2][..9].to_vec();
    let mut unknown = old[0].clone();
    unknown[1..5].copy_from_slice(&999u32.to_be_bytes());
    // Message indexes [5]: the file has one message.
    let mut no_such_message = old[0][..5].to_vec();
    no_such_message.extend_from_slice(&[2, 10]);
    no_such_message.extend_from_slice(&old[0][6..]);
    let records = vec![
        keyed("a", old[0].clone()),
        keyed("c", old[1].clone()),
        keyed("d", old[2].clone()),
        keyed("b", new[0].clone()),
        tombstone("c"),
        keyed("a", new[1].clone()),
        keyed("x1", garbage),
        keyed("x2", truncated),
        keyed("x3", unknown),
        keyed("x4", no_such_message),
        keyed("x5", br#"{"name": "json"}"#.to_vec()),
    ];
    produce_all(&broker.raw_producer(), &topic, &records).await;

    let engine = engine(&broker, &registry.url());
    engine
        .sql(&format!(
            "CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, score BIGINT, status TEXT, \
             age INT, nick TEXT, address TEXT, tags JSON, at TIMESTAMP, email TEXT) \
             WITH (topic = '{topic}', format = 'protobuf')"
        ))
        .await
        .expect("create");
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    // Absent scalars read as their defaults (status UNKNOWN, tags []); absent wrappers,
    // optionals and messages as NULL; a column the writer's schema lacks is NULL.
    let columns = "id, name, score, status, age, nick, address, tags, at, email";
    eventually_text(
        &engine,
        &format!("SELECT {columns} FROM users ORDER BY id"),
        r#"
+----+------+---------------+---------+-----+------+-----------------+-----------+-------------------------+-----------------+
| id | name | score         | status  | age | nick | address         | tags      | at                      | email           |
+----+------+---------------+---------+-----+------+-----------------+-----------+-------------------------+-----------------+
| a  | ann  | 2             | BANNED  |     |      |                 | []        |                         | ann@example.com |
| b  | bob  | 1099511627776 | UNKNOWN |     |      |                 | []        |                         | bob@example.com |
| d  | dee  | 4             | ACTIVE  | 30  | d    | {"city":"Lyon"} | ["x","y"] | 2023-11-14T22:13:20.123 |                 |
+----+------+---------------+---------+-----+------+-----------------+-----------+-------------------------+-----------------+"#,
    )
    .await;
    let stats = text(
        &engine,
        "SELECT bad_records, tombstones FROM ktable_tables WHERE name = 'users'",
    )
    .await;
    assert!(stats.contains("| 5           | 1          |"), "{stats}");
    // Point lookups give the rows a scan gives, for present, deleted, bad and missing keys.
    let rows = |text: String| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| id "))
            .map(str::to_string)
            .collect()
    };
    for key in ["a", "b", "c", "d", "x1", "zz"] {
        let looked_up = rows(
            text(
                &engine,
                &format!("SELECT {columns} FROM users WHERE id = '{key}'"),
            )
            .await,
        );
        let scanned = rows(
            text(
                &engine,
                &format!("SELECT {columns} FROM users WHERE id || '' = '{key}'"),
            )
            .await,
        );
        assert_eq!(looked_up, scanned, "{key}");
        assert_eq!(looked_up.len(), usize::from(["a", "b", "d"].contains(&key)));
    }
    // The unknown id was asked for once.
    assert_eq!(registry.requests("/schemas/ids/999"), 1);
    // The schemas reference common.proto, which the serializer registered as its own
    // subject: it was fetched to compile each of the two ids, once.
    assert_eq!(registry.requests("/subjects/common.proto/versions/1"), 2);
}

const ORDER_PROTO: &str = r#"syntax = "proto3";
package shop;
import "common.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
message Line { string sku = 1; int32 qty = 2; }
message Order {
  int64 id = 1;
  double price = 2;
  google.protobuf.Int32Value qty = 3;
  google.protobuf.Timestamp at = 4;
  repeated Line lines = 5;
  uint64 big = 6;
  Address ship_to = 7;
}
"#;

const KEY_PROTO: &str = r#"syntax = "proto3";
package shop;
message OrderKey { int64 id = 1; }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_columns_and_keys_come_from_proto_text_in_the_registry() {
    let broker = Broker::start();
    let registry = Registry::real_or_fixture();
    let topic = broker.topic("proto-orders", 1, &[]).await;
    let imports = json!({ "common.proto": COMMON_PROTO });
    // Confluent's serializer writes the records (under a scratch subject)...
    let scratch = format!("{topic}-scratch");
    let Some(values) = protobuf_by_confluent(
        &registry,
        &scratch,
        "value",
        (ORDER_PROTO, &imports, "shop.Order"),
        &[
            json!({"id": 42, "price": 19.99, "qty": 3, "at": "2023-11-14T22:13:20.123456Z",
                   "lines": [{"sku": "s1", "qty": 1}], "big": "18446744073709551615",
                   "ship_to": {"city": "Lyon"}}),
            json!({"id": 7, "price": 1.5}),
            json!({"id": 8, "price": 0.5, "big": "1"}),
        ],
    ) else {
        return;
    };
    let keys = protobuf_by_confluent(
        &registry,
        &topic,
        "key",
        (KEY_PROTO, &json!({}), "shop.OrderKey"),
        &[json!({"id": 42}), json!({"id": 7}), json!({"id": 8})],
    )
    .expect("keys");
    // Order is the file's second message: message indexes [1].
    assert_eq!(values[0][5..7], [2, 2]);
    // ...and the registry serves the schema as .proto text, as Confluent's registry
    // does, importing common.proto through a reference.
    let common = registry.register_protobuf("common.proto", COMMON_PROTO, json!([]));
    let value_id = registry.register_protobuf(
        &format!("{topic}-value"),
        ORDER_PROTO,
        json!([{"name": "common.proto", "subject": "common.proto", "version": 1}]),
    );
    assert_ne!(common, value_id);
    let under_text_schema = |bytes: &Vec<u8>| {
        let mut bytes = bytes.clone();
        bytes[1..5].copy_from_slice(&value_id.to_be_bytes());
        bytes
    };
    let records: Vec<RawRecord> = vec![
        (Some(keys[0].clone()), Some(under_text_schema(&values[0]))),
        (Some(keys[1].clone()), Some(under_text_schema(&values[1]))),
        (Some(keys[1].clone()), None),
        (Some(keys[2].clone()), Some(under_text_schema(&values[2]))),
        // Not a Protobuf key: a bad record.
        (Some(b"42".to_vec()), Some(under_text_schema(&values[1]))),
    ];
    produce_all(&broker.raw_producer(), &topic, &records).await;

    let engine = engine(&broker, &registry.url());
    engine
        .sql(&format!(
            "CREATE TABLE orders WITH (topic = '{topic}', format = 'protobuf', \
             key_format = 'protobuf', message = 'Order')"
        ))
        .await
        .expect("create without columns");
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    let described = text(&engine, "DESCRIBE orders").await;
    for expected in [
        "| id          | Int64",
        "| price       | Float64",
        "| qty         | Int32",
        "Timestamp(µs, \"UTC\")",
        "| lines       | Utf8",
        "Decimal128(20, 0)",
        "| ship_to     | Utf8",
    ] {
        assert!(described.contains(expected), "{expected} in {described}");
    }
    eventually_text(
        &engine,
        "SELECT id, price, qty, at, lines, big, ship_to FROM orders ORDER BY id",
        r#"
+----+-------+-----+-----------------------------+------------------------+----------------------+-----------------+
| id | price | qty | at                          | lines                  | big                  | ship_to         |
+----+-------+-----+-----------------------------+------------------------+----------------------+-----------------+
| 8  | 0.5   |     |                             | []                     | 1                    |                 |
| 42 | 19.99 | 3   | 2023-11-14T22:13:20.123456Z | [{"sku":"s1","qty":1}] | 18446744073709551615 | {"city":"Lyon"} |
+----+-------+-----+-----------------------------+------------------------+----------------------+-----------------+"#,
    )
    .await;
    assert!(text(&engine, "SELECT price FROM orders WHERE id = 42")
        .await
        .contains("19.99"));
    assert_eq!(
        text(
            &engine,
            "SELECT id, price FROM orders WHERE id IN (7, 8, 42) ORDER BY id"
        )
        .await,
        text(
            &engine,
            "SELECT id, price FROM orders WHERE id + 0 IN (7, 8, 42) ORDER BY id"
        )
        .await,
    );
    assert!(text(
        &engine,
        "SELECT bad_records, tombstones FROM ktable_tables WHERE name = 'orders'"
    )
    .await
    .contains("| 1           | 1          |"));
}

/// The randomized model test of the Avro one above, for Protobuf: records encoded
/// with prost under two registered `.proto` versions (`score` widened from int32 to
/// int64, `email` added), tombstones and broken records, across 3 partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_protobuf_upserts_and_deletes_match_a_model() {
    use prost::Message as _;
    use prost_reflect::{DescriptorPool, DynamicMessage, Value as Field};
    use rand::{Rng, SeedableRng};
    const V1: &str = "syntax = \"proto3\";\npackage shop;\n\
                      message User { string name = 1; int32 score = 2; }\n";
    const V2: &str = "syntax = \"proto3\";\npackage shop;\n\
                      message User { string name = 1; int64 score = 2; string email = 3; }\n";
    let seed: u64 = std::env::var("KTABLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("KTABLE_SEED={seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let broker = Broker::start();
    let registry = Registry::real_or_fixture();
    let topic = broker.topic("proto-random", 3, &[]).await;
    let subject = format!("{topic}-value");
    let ids = [
        registry.register_protobuf(&subject, V1, json!([])),
        registry.register_protobuf(&subject, V2, json!([])),
    ];
    let dir = std::env::temp_dir().join(format!("ktable-proto-random-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let users = [V1, V2].map(|text| {
        std::fs::write(dir.join("user.proto"), text).expect("write .proto");
        let files = protox::compile(["user.proto"], [&dir]).expect("compile");
        DescriptorPool::from_file_descriptor_set(files)
            .expect("descriptors")
            .get_message_by_name("shop.User")
            .expect("shop.User")
    });
    let _ = std::fs::remove_dir_all(&dir);
    // Confluent framing: magic byte, schema id, message indexes (0: the first message).
    let framed = |version: usize, message: &DynamicMessage| {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&ids[version].to_be_bytes());
        bytes.push(0);
        bytes.extend_from_slice(&message.encode_to_vec());
        bytes
    };
    let mut model: std::collections::BTreeMap<String, (String, i64, String)> = Default::default();
    let mut records = Vec::new();
    let mut bad = 0;
    for n in 0..2_000 {
        let key = format!("k{}", rng.random_range(0..60));
        let user = |version: usize| DynamicMessage::new(users[version].clone());
        match rng.random_range(0..10) {
            0 => {
                records.push(tombstone(&key));
                model.remove(&key);
            }
            1 => {
                // Framed, but not a User: skipped, the key keeps its row.
                let mut bytes = framed(0, &user(0));
                bytes.extend_from_slice(&[0x0a, 0xff]);
                records.push(keyed(&key, bytes));
                bad += 1;
            }
            2..=5 => {
                let score = rng.random_range(-1000..1000);
                let name = format!("n{n}");
                let mut message = user(0);
                message.set_field_by_name("name", Field::String(name.clone()));
                message.set_field_by_name("score", Field::I32(score));
                records.push(keyed(&key, framed(0, &message)));
                // v1 never had an email: NULL.
                model.insert(key, (name, score as i64, String::new()));
            }
            _ => {
                let score = rng.random_range(-(1i64 << 40)..(1i64 << 40));
                let (name, email) = (format!("n{n}"), format!("e{n}"));
                let mut message = user(1);
                message.set_field_by_name("name", Field::String(name.clone()));
                message.set_field_by_name("score", Field::I64(score));
                message.set_field_by_name("email", Field::String(email.clone()));
                records.push(keyed(&key, framed(1, &message)));
                model.insert(key, (name, score, email));
            }
        }
    }
    produce_all(&broker.raw_producer(), &topic, &records).await;
    let engine = engine(&broker, &registry.url());
    engine
        .sql(&format!(
            "CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, score BIGINT, email TEXT) \
             WITH (topic = '{topic}', format = 'protobuf')"
        ))
        .await
        .expect("create");
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    users_match_the_model(&engine, &model, bad, seed).await;
}

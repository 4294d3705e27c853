//! Restore throughput of a `KTable` against a bare rdkafka consumer reading the same topic
//! in the same run.
//!
//! `cargo bench --bench restore` runs on an in-process MockCluster with a topic that fits
//! its per-partition limit; with `KAFKA_BROKERS` set it runs on that broker (by default
//! 1,000,000 records, 100,000 keys, ~200-byte JSON values, 4 partitions). Override with
//! `BENCH_RECORDS`, `BENCH_KEYS`, `BENCH_RUNS`. For profiling one path: `BENCH_TOPIC`
//! reads a topic an earlier run left (produced with the same `BENCH_RECORDS` and
//! `BENCH_KEYS`) instead of producing one, and `BENCH_ONLY=bare,ktable,sql` picks the
//! restores to run.
//!
//! The bare consumer assigns every partition from the beginning and reads up to the high
//! watermarks seen at start, touching each payload, a batch at a time from a
//! `RecordQueue` with the fetch settings of ktable's sources (the fastest way ktable
//! knows to read the records, so the ratios measure decoding and applying). The `KTable` does the same and also
//! decodes keys and JSON values into a struct and applies them to its map; the SQL table
//! decodes the JSON values into Arrow and applies them to its columnar store.
//!
//! `BENCH_FORMAT=avro` writes the same users as Avro in Confluent's wire format (schema
//! registered in `tests/fixtures/schema_registry.py`, started by the bench) and restores
//! the SQL table with `format = 'avro'`, against the bare consumer reading those records
//! (the typed `KTable` path is JSON only, so it is skipped). `BENCH_FORMAT=protobuf`
//! does the same with a Protobuf message of the same fields; `BENCH_FORMAT=debezium-avro`
//! writes each user as a Debezium change event (`after`, `source`, `op`) in Avro with a
//! struct key `{"id": ...}` in Avro, as Debezium's Avro converter does, and restores the
//! table with `envelope = 'debezium'` and `key_format = 'avro'`.

#[path = "support/mod.rs"]
mod support;

#[path = "../tests/fixtures/registry.rs"]
mod registry;

use ktable::kafka::{ConsumerConfig, JsonSerializer, KafkaContext, RecordQueue, StringSerializer};
use ktable::sql::{Engine, EngineConfig};
use ktable::KTable;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{env_usize, median, Broker};

/// The value schema of `BENCH_FORMAT=avro`: the fields of the JSON users.
const USER_AVRO: &str = r#"{"type": "record", "name": "User", "fields": [
    {"name": "id", "type": "string"}, {"name": "name", "type": "string"},
    {"name": "email", "type": "string"}, {"name": "age", "type": "int"},
    {"name": "score", "type": "double"}, {"name": "city", "type": "string"},
    {"name": "bio", "type": "string"}]}"#;

/// The Debezium key and event schemas of `BENCH_FORMAT=debezium-avro`: Debezium's
/// PostgreSQL connector's shape (a `Value` row record, `source` block, `op`, `ts_ms`).
const DEBEZIUM_KEY_AVRO: &str = r#"{"type": "record", "name": "Key", "namespace": "pg.public.users",
    "fields": [{"name": "id", "type": "string"}]}"#;

fn debezium_envelope_avro() -> String {
    let row = USER_AVRO.replacen(r#""name": "User""#, r#""name": "Value""#, 1);
    format!(
        r#"{{"type": "record", "name": "Envelope", "namespace": "pg.public.users", "fields": [
        {{"name": "before", "type": ["null", {row}], "default": null}},
        {{"name": "after", "type": ["null", "Value"], "default": null}},
        {{"name": "source", "type": {{"type": "record", "name": "Source",
          "namespace": "io.debezium.connector.postgresql", "fields": [
            {{"name": "version", "type": "string"}}, {{"name": "connector", "type": "string"}},
            {{"name": "name", "type": "string"}}, {{"name": "ts_ms", "type": "long"}},
            {{"name": "db", "type": "string"}}, {{"name": "schema", "type": "string"}},
            {{"name": "table", "type": "string"}},
            {{"name": "txId", "type": ["null", "long"], "default": null}},
            {{"name": "lsn", "type": ["null", "long"], "default": null}}]}}}},
        {{"name": "op", "type": "string"}},
        {{"name": "ts_ms", "type": ["null", "long"], "default": null}}]}}"#
    )
}

/// The Protobuf message of `BENCH_FORMAT=protobuf`.
const USER_PROTO: &str = "syntax = \"proto3\"; package bench; message User { string id = 1; \
    string name = 2; string email = 3; int32 age = 4; double score = 5; string city = 6; \
    string bio = 7; }";

/// The fields of `USER_PROTO`, for prost to encode.
#[derive(Clone, PartialEq, prost::Message)]
struct UserProto {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(string, tag = "3")]
    email: String,
    #[prost(int32, tag = "4")]
    age: i32,
    #[prost(double, tag = "5")]
    score: f64,
    #[prost(string, tag = "6")]
    city: String,
    #[prost(string, tag = "7")]
    bio: String,
}

/// How `BENCH_FORMAT` writes the users.
#[derive(Clone, Copy, PartialEq)]
enum Format {
    Json,
    Avro,
    Protobuf,
    DebeziumAvro,
}

impl Format {
    fn from_env() -> Self {
        match std::env::var("BENCH_FORMAT").as_deref() {
            Ok("json") | Err(_) => Self::Json,
            Ok("avro") => Self::Avro,
            Ok("protobuf") => Self::Protobuf,
            Ok("debezium-avro") => Self::DebeziumAvro,
            Ok(other) => panic!("BENCH_FORMAT={other}: json, avro, protobuf or debezium-avro"),
        }
    }

    /// The `WITH` options of the SQL table.
    fn options(self) -> &'static str {
        match self {
            Self::Json => "format = 'json'",
            Self::Avro => "format = 'avro'",
            Self::Protobuf => "format = 'protobuf'",
            Self::DebeziumAvro => "format = 'avro', key_format = 'avro', envelope = 'debezium'",
        }
    }
}

/// What the users are written with: the registry's ids and the parsed Avro schemas.
struct Writer {
    format: Format,
    value_id: u32,
    key_id: u32,
    value_schema: Option<apache_avro::Schema>,
    key_schema: Option<apache_avro::Schema>,
}

impl Writer {
    /// Registers the format's schemas for `topic` (always in the same order, so that
    /// the ids match the records of an earlier run's topic).
    fn register(format: Format, registry: Option<&registry::Registry>, topic: &str) -> Self {
        let parse = |text: &str| Some(apache_avro::Schema::parse_str(text).expect("Avro schema"));
        let mut writer = Writer {
            format,
            value_id: 0,
            key_id: 0,
            value_schema: None,
            key_schema: None,
        };
        let Some(registry) = registry else {
            return writer;
        };
        match format {
            Format::Json => {}
            Format::Avro => {
                writer.value_id = registry.register(&format!("{topic}-value"), USER_AVRO);
                writer.value_schema = parse(USER_AVRO);
            }
            Format::Protobuf => {
                writer.value_id = registry.register_protobuf(
                    &format!("{topic}-value"),
                    USER_PROTO,
                    serde_json::json!([]),
                );
            }
            Format::DebeziumAvro => {
                let envelope = debezium_envelope_avro();
                writer.key_id = registry.register(&format!("{topic}-key"), DEBEZIUM_KEY_AVRO);
                writer.value_id = registry.register(&format!("{topic}-value"), &envelope);
                writer.key_schema = parse(DEBEZIUM_KEY_AVRO);
                writer.value_schema = parse(&envelope);
            }
        }
        writer
    }

    /// The key and value of user `id` at `version`.
    fn record(&self, id: u64, version: u64, keys: u64) -> (Vec<u8>, Vec<u8>) {
        use apache_avro::types::Value;
        let key = format!("user-{id}");
        let framed =
            |schema_id: u32, body: Vec<u8>| [&[0u8][..], &schema_id.to_be_bytes(), &body].concat();
        match (self.format, &self.value_schema, &self.key_schema) {
            (Format::Avro, Some(schema), _) => (
                key.into_bytes(),
                framed(self.value_id, avro_datum(schema, user_avro(id, version))),
            ),
            (Format::Protobuf, _, _) => {
                let user = user_proto(id, version);
                // Message indexes [0] (the first message): one zero byte.
                let body = [&[0u8][..], &prost::Message::encode_to_vec(&user)].concat();
                (key.into_bytes(), framed(self.value_id, body))
            }
            (Format::DebeziumAvro, Some(envelope), Some(key_schema)) => {
                let key_value = Value::Record(vec![("id".into(), Value::String(key))]);
                let source = Value::Record(vec![
                    ("version".into(), Value::String("3.3.1.Final".into())),
                    ("connector".into(), Value::String("postgresql".into())),
                    ("name".into(), Value::String("pg".into())),
                    (
                        "ts_ms".into(),
                        Value::Long(1_700_000_000_000 + version as i64),
                    ),
                    ("db".into(), Value::String("shop".into())),
                    ("schema".into(), Value::String("public".into())),
                    ("table".into(), Value::String("users".into())),
                    (
                        "txId".into(),
                        Value::Union(1, Box::new(Value::Long(version as i64))),
                    ),
                    (
                        "lsn".into(),
                        Value::Union(1, Box::new(Value::Long(version as i64 * 64))),
                    ),
                ]);
                let op = if version < keys { "c" } else { "u" };
                let event = Value::Record(vec![
                    ("before".into(), Value::Union(0, Box::new(Value::Null))),
                    (
                        "after".into(),
                        Value::Union(1, Box::new(user_avro(id, version))),
                    ),
                    ("source".into(), source),
                    ("op".into(), Value::String(op.into())),
                    (
                        "ts_ms".into(),
                        Value::Union(1, Box::new(Value::Long(1_700_000_000_000))),
                    ),
                ]);
                (
                    framed(self.key_id, avro_datum(key_schema, key_value)),
                    framed(self.value_id, avro_datum(envelope, event)),
                )
            }
            _ => (key.into_bytes(), support::user_json(id, version, 200)),
        }
    }
}

fn avro_datum(schema: &apache_avro::Schema, value: apache_avro::types::Value) -> Vec<u8> {
    apache_avro::to_avro_datum(schema, value).expect("avro datum")
}

/// The user of `support::user_json` as a Protobuf message.
fn user_proto(id: u64, version: u64) -> UserProto {
    let json: serde_json::Value =
        serde_json::from_slice(&support::user_json(id, version, 200)).expect("user json");
    let text = |field: &str| json[field].as_str().unwrap_or("").to_string();
    UserProto {
        id: text("id"),
        name: text("name"),
        email: text("email"),
        age: json["age"].as_i64().unwrap_or(0) as i32,
        score: json["score"].as_f64().unwrap_or(0.0),
        city: text("city"),
        bio: text("bio"),
    }
}

/// The user of `support::user_json` as an Avro record of `USER_AVRO`.
fn user_avro(id: u64, version: u64) -> apache_avro::types::Value {
    use apache_avro::types::Value;
    let json: serde_json::Value =
        serde_json::from_slice(&support::user_json(id, version, 200)).expect("user json");
    let text = |field: &str| Value::String(json[field].as_str().unwrap_or("").to_string());
    let fields = vec![
        ("id".to_string(), text("id")),
        ("name".to_string(), text("name")),
        ("email".to_string(), text("email")),
        (
            "age".to_string(),
            Value::Int(json["age"].as_i64().unwrap_or(0) as i32),
        ),
        (
            "score".to_string(),
            Value::Double(json["score"].as_f64().unwrap_or(0.0)),
        ),
        ("city".to_string(), text("city")),
        ("bio".to_string(), text("bio")),
    ];
    Value::Record(fields)
}

const PARTITIONS: i32 = 4;

#[derive(Clone, serde::Deserialize)]
#[allow(dead_code)] // fields are decoded, which is what is measured
struct User {
    id: String,
    name: String,
    email: String,
    age: u32,
    score: f64,
    city: String,
    bio: String,
}

/// Reads the topic from the beginning up to the high watermark every partition had at
/// start, as a table restore does; returns seconds. It reads as ktable's sources do, a
/// batch of fetched records at a time from a [`RecordQueue`] (rdkafka's `recv`, one
/// record per call, costs about as much per record as decoding a small JSON value), with
/// the same fetch settings, so that the ratios measure decoding and applying alone.
async fn bare_consumer(brokers: &str, topic: &str, run: usize) -> f64 {
    let consumer: Arc<StreamConsumer<KafkaContext>> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("bare-{run}"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            // As ktable's own consumers (see `ConsumerConfig`): with librdkafka's default
            // of 1 s, a consumer whose prefetch queue fills waits a second before its
            // next fetch, which made this consumer 3x slower on a 10M-record topic.
            .set("fetch.queue.backoff.ms", "10")
            .create_with_context(KafkaContext)
            .expect("consumer"),
    );
    let started = Instant::now();
    let mut assignment = TopicPartitionList::new();
    let mut targets = Vec::new();
    for partition in 0..PARTITIONS {
        let (_, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .expect("watermarks");
        targets.push(high);
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("assign");
    }
    let records = RecordQueue::new(&consumer).expect("record queue");
    records.forward(topic, 0..PARTITIONS).expect("forward");
    consumer.assign(&assignment).expect("assign");
    let mut remaining = targets.iter().filter(|&&high| high > 0).count();
    let mut bytes = 0usize;
    while remaining > 0 {
        for record in records.next_batch(1024).await {
            // Errors are end-of-partition notices here.
            let Ok(record) = record else { continue };
            bytes += record.value().map_or(0, <[u8]>::len);
            if record.offset() + 1 == targets[record.partition() as usize] {
                remaining -= 1;
            }
        }
    }
    std::hint::black_box(bytes);
    started.elapsed().as_secs_f64()
}

/// Restores a SQL table (JSON decoded into Arrow, columnar store) until ready; returns
/// seconds and the row count.
async fn sql_restore(
    brokers: &str,
    topic: &str,
    run: usize,
    format: Format,
    registry: Option<&str>,
) -> (f64, usize) {
    let mut config = EngineConfig::new(brokers).group_id(format!("sql-{run}"));
    if let Some(url) = registry {
        config = config.schema_registry(url);
    }
    let engine = Engine::new(config);
    let started = Instant::now();
    engine
        .sql(&format!(
            "CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, email TEXT, age INT, score DOUBLE, \
             city TEXT, bio TEXT) WITH (topic = '{topic}', {})",
            format.options()
        ))
        .await
        .expect("create");
    engine
        .wait_until_ready(Duration::from_secs(600))
        .await
        .expect("ready");
    let seconds = started.elapsed().as_secs_f64();
    let sources = engine.sources();
    assert_eq!(sources[0].stats.bad_records, 0);
    engine.stop();
    (seconds, sources[0].stats.rows)
}

/// Restores a table until ready; returns seconds and the key count.
async fn table_restore(brokers: &str, topic: &str, run: usize) -> (f64, usize) {
    let table: KTable<String, User> = KTable::new(
        ConsumerConfig::new(brokers, format!("table-{run}")),
        topic,
        StringSerializer,
        JsonSerializer,
    )
    .await
    .expect("table");
    let started = Instant::now();
    table.start().await.expect("start");
    table
        .wait_until_ready(Duration::from_secs(600))
        .await
        .expect("ready");
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(table.stats().bad_records, 0);
    (seconds, table.len())
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let broker = Broker::from_env();
    let real = matches!(broker, Broker::Real(_));
    // The MockCluster keeps at most 5 MiB per partition: 16,000 records of ~200 bytes
    // per partition fit.
    let records = env_usize("BENCH_RECORDS", if real { 1_000_000 } else { 64_000 });
    let keys = env_usize("BENCH_KEYS", if real { 100_000 } else { 16_000 }) as u64;
    let runs = env_usize("BENCH_RUNS", 5);
    let brokers = broker.brokers();
    let format = Format::from_env();
    let default_paths = if format == Format::Json {
        "bare,ktable,sql"
    } else {
        "bare,sql"
    };
    let only = std::env::var("BENCH_ONLY").unwrap_or_else(|_| default_paths.into());
    let runs_path = |name: &str| only.split(',').any(|p| p.trim() == name);
    let registry = (format != Format::Json).then(|| registry::Registry::start(0));
    let given_topic = std::env::var("BENCH_TOPIC").ok();
    let topic = given_topic
        .clone()
        .unwrap_or_else(|| format!("bench-restore-{}", std::process::id()));
    // The fixture starts empty: the schemas are registered (first, so with the ids an
    // earlier run's records carry) whether the topic is produced now or given.
    let writer = Writer::register(format, registry.as_ref(), &topic);
    if given_topic.is_none() {
        broker.create_topic(&topic, PARTITIONS).await;
        let produced = Instant::now();
        support::produce(
            &brokers,
            &topic,
            (0..records as u64).map(|i| writer.record(i % keys, i, keys)),
        )
        .await;
        eprintln!(
            "produced {records} records in {:.1}s into {topic}",
            produced.elapsed().as_secs_f64()
        );
    }

    let (mut bare, mut table, mut sql) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        if runs_path("bare") {
            bare.push(bare_consumer(&brokers, &topic, run).await);
        }
        if runs_path("ktable") {
            let (seconds, len) = table_restore(&brokers, &topic, run).await;
            assert_eq!(len as u64, keys.min(records as u64));
            table.push(seconds);
        }
        if runs_path("sql") {
            let registry = registry.as_ref().map(registry::Registry::url);
            let (seconds, rows) =
                sql_restore(&brokers, &topic, run, format, registry.as_deref()).await;
            assert_eq!(rows as u64, keys.min(records as u64));
            sql.push(seconds);
        }
        let last = |times: &[f64]| times.last().map_or("-".into(), |s| format!("{s:.3}s"));
        eprintln!(
            "run {run}: bare {}, KTable {}, SQL table {}",
            last(&bare),
            last(&table),
            last(&sql)
        );
    }
    let (bare, table, sql) = (median(&mut bare), median(&mut table), median(&mut sql));
    println!(
        "restore benchmark on {} — {}",
        broker.name(),
        support::machine()
    );
    let values = match format {
        Format::Json => "~200-byte JSON values",
        Format::Avro => "Avro values (the ~200-byte JSON users' fields)",
        Format::Protobuf => "Protobuf values (the ~200-byte JSON users' fields)",
        Format::DebeziumAvro => "Debezium change events in Avro (the users as `after`), Avro keys",
    };
    println!("  {records} records, {keys} keys, {values}, {PARTITIONS} partitions, median of {runs} runs");
    // A path left out by BENCH_ONLY (or the KTable's, JSON only) has no line.
    for (name, seconds) in [
        ("bare consumer ", bare),
        ("KTable restore", table),
        ("SQL table     ", sql),
    ] {
        if seconds.is_finite() {
            println!(
                "  {name}: {:>10.0} records/s ({seconds:.3}s)",
                records as f64 / seconds
            );
        }
    }
    for (name, seconds) in [("KTable", table), ("SQL table", sql)] {
        if seconds.is_finite() && bare.is_finite() {
            println!(
                "  ratio ({name} / bare consumer throughput): {:.2}",
                bare / seconds
            );
        }
    }
}

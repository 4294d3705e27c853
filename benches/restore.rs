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
//! watermarks seen at start, touching each payload. The `KTable` does the same and also
//! decodes keys and JSON values into a struct and applies them to its map; the SQL table
//! decodes the JSON values into Arrow and applies them to its columnar store.
//!
//! `BENCH_FORMAT=avro` writes the same users as Avro in Confluent's wire format (schema
//! registered in `tests/fixtures/schema_registry.py`, started by the bench) and restores
//! the SQL table with `format = 'avro'`, against the bare consumer reading those records
//! (the typed `KTable` path is JSON only, so it is skipped).

#[path = "support/mod.rs"]
mod support;

#[path = "../tests/fixtures/registry.rs"]
mod registry;

use ktable::kafka::{ConsumerConfig, JsonSerializer, StringSerializer};
use ktable::sql::{Engine, EngineConfig};
use ktable::KTable;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::time::{Duration, Instant};
use support::{env_usize, median, Broker};

/// The value schema of `BENCH_FORMAT=avro`: the fields of the JSON users.
const USER_AVRO: &str = r#"{"type": "record", "name": "User", "fields": [
    {"name": "id", "type": "string"}, {"name": "name", "type": "string"},
    {"name": "email", "type": "string"}, {"name": "age", "type": "int"},
    {"name": "score", "type": "double"}, {"name": "city", "type": "string"},
    {"name": "bio", "type": "string"}]}"#;

/// The user of `support::user_json` as an Avro datum in Confluent's framing.
fn user_avro(schema: &apache_avro::Schema, schema_id: u32, id: u64, version: u64) -> Vec<u8> {
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
    let mut framed = vec![0];
    framed.extend_from_slice(&schema_id.to_be_bytes());
    framed.extend(apache_avro::to_avro_datum(schema, Value::Record(fields)).expect("avro datum"));
    framed
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
/// start, as a table restore does; returns seconds.
async fn bare_consumer(brokers: &str, topic: &str, run: usize) -> f64 {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("bare-{run}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
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
    consumer.assign(&assignment).expect("assign");
    let mut remaining = targets.iter().filter(|&&high| high > 0).count();
    let mut bytes = 0usize;
    while remaining > 0 {
        let message = consumer.recv().await.expect("bare consumer");
        bytes += message.payload().map_or(0, <[u8]>::len);
        if message.offset() + 1 == targets[message.partition() as usize] {
            remaining -= 1;
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
    registry: Option<&str>,
) -> (f64, usize) {
    let mut config = EngineConfig::new(brokers).group_id(format!("sql-{run}"));
    let format = match registry {
        Some(url) => {
            config = config.schema_registry(url);
            "avro"
        }
        None => "json",
    };
    let engine = Engine::new(config);
    let started = Instant::now();
    engine
        .sql(&format!(
            "CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, email TEXT, age INT, score DOUBLE, \
             city TEXT, bio TEXT) WITH (topic = '{topic}', format = '{format}')"
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
    let avro = match std::env::var("BENCH_FORMAT").as_deref() {
        Ok("avro") => true,
        Ok("json") | Err(_) => false,
        Ok(other) => panic!("BENCH_FORMAT={other}: json or avro"),
    };
    let default_paths = if avro { "bare,sql" } else { "bare,ktable,sql" };
    let only = std::env::var("BENCH_ONLY").unwrap_or_else(|_| default_paths.into());
    let runs_path = |name: &str| only.split(',').any(|p| p.trim() == name);
    let registry = avro.then(|| registry::Registry::start(0));
    let given_topic = std::env::var("BENCH_TOPIC").ok();
    let topic = given_topic
        .clone()
        .unwrap_or_else(|| format!("bench-restore-{}", std::process::id()));
    // The fixture starts empty: the schema is registered (first, so with id 1, the id
    // an earlier run's records carry) whether the topic is produced now or given.
    let avro_schema = registry.as_ref().map(|registry| {
        let schema = apache_avro::Schema::parse_str(USER_AVRO).expect("the Avro schema");
        (
            registry.register(&format!("{topic}-value"), USER_AVRO),
            schema,
        )
    });
    if given_topic.is_none() {
        broker.create_topic(&topic, PARTITIONS).await;
        let produced = Instant::now();
        support::produce(
            &brokers,
            &topic,
            (0..records as u64).map(|i| {
                let value = match &avro_schema {
                    Some((id, schema)) => user_avro(schema, *id, i % keys, i),
                    None => support::user_json(i % keys, i, 200),
                };
                (format!("user-{}", i % keys), value)
            }),
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
            let (seconds, rows) = sql_restore(&brokers, &topic, run, registry.as_deref()).await;
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
    let values = if avro {
        "Avro values (the ~200-byte JSON users' fields)"
    } else {
        "~200-byte JSON values"
    };
    println!("  {records} records, {keys} keys, {values}, {PARTITIONS} partitions, median of {runs} runs");
    println!(
        "  bare consumer : {:>10.0} records/s ({bare:.3}s)",
        records as f64 / bare
    );
    println!(
        "  KTable restore: {:>10.0} records/s ({table:.3}s)",
        records as f64 / table
    );
    println!(
        "  SQL table     : {:>10.0} records/s ({sql:.3}s)",
        records as f64 / sql
    );
    println!(
        "  ratio (KTable / bare consumer throughput): {:.2}",
        bare / table
    );
    println!(
        "  ratio (SQL table / bare consumer throughput): {:.2}",
        bare / sql
    );
}

//! The SQL engine over Kafka sources: DDL, types, lookups, scans, joins, system table.

use crate::broker::{json_record, produce_all, tombstone, Broker, RawRecord};
use crate::READY_TIMEOUT;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use ktable::sql::{Engine, EngineConfig, SqlError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

fn engine(broker: &Broker) -> Engine {
    Engine::new(EngineConfig::new(broker.brokers()).request_timeout(Duration::from_secs(5)))
}

async fn query(engine: &Engine, sql: &str) -> Vec<RecordBatch> {
    engine
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The result as text lines (header, rows) for readable comparisons.
async fn table_text(engine: &Engine, sql: &str) -> String {
    pretty_format_batches(&query(engine, sql).await)
        .expect("format")
        .to_string()
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

#[tokio::test]
async fn ddl_round_trip_show_describe_and_drop() {
    let broker = Broker::start();
    let users = broker.topic("sql-users", 2, &[]).await;
    let orders = broker.topic("sql-orders", 1, &[]).await;
    let engine = engine(&broker);
    engine
        .sql(&format!(
            "CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, age INT) WITH (topic = '{users}', format = 'json')"
        ))
        .await
        .expect("create table");
    engine
        .sql(&format!(
            "CREATE STREAM orders (order_id TEXT, amount DOUBLE) WITH (topic = '{orders}')"
        ))
        .await
        .expect("create stream");

    let shown = table_text(&engine, "SHOW TABLES").await;
    assert!(
        shown.contains("users") && shown.contains("orders") && shown.contains("ktable_tables"),
        "{shown}"
    );
    let described = table_text(&engine, "DESCRIBE users").await;
    assert!(
        described.contains("id") && described.contains("Utf8") && described.contains("Int32"),
        "{described}"
    );
    let columns = table_text(
        &engine,
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'users' ORDER BY ordinal_position",
    )
    .await;
    assert!(
        columns.find("id").unwrap() < columns.find("age").unwrap(),
        "{columns}"
    );

    // Errors: a name taken, an unknown topic, the wrong DROP.
    let again = engine
        .sql(&format!(
            "CREATE TABLE users (id TEXT PRIMARY KEY) WITH (topic = '{users}')"
        ))
        .await;
    assert!(matches!(again, Err(SqlError::AlreadyExists(name)) if name == "users"));
    engine
        .sql(&format!(
            "CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY) WITH (topic = '{users}')"
        ))
        .await
        .expect("IF NOT EXISTS is quiet");
    let missing = engine
        .sql("CREATE TABLE ghosts (id TEXT PRIMARY KEY) WITH (topic = 'no-such-topic-anywhere')")
        .await;
    assert!(
        matches!(&missing, Err(e) if e.to_string().contains("no-such-topic-anywhere")),
        "{missing:?}"
    );
    assert!(!table_text(&engine, "SHOW TABLES").await.contains("ghosts"));
    let wrong = engine.sql("DROP STREAM users").await;
    assert!(
        matches!(&wrong, Err(e) if e.to_string().contains("DROP TABLE")),
        "{wrong:?}"
    );

    engine.sql("DROP STREAM orders").await.expect("drop stream");
    engine.sql("DROP TABLE users").await.expect("drop table");
    engine
        .sql("DROP TABLE IF EXISTS users")
        .await
        .expect("IF EXISTS is quiet");
    assert!(matches!(
        engine.sql("DROP TABLE users").await,
        Err(SqlError::NotFound { .. })
    ));
    let shown = table_text(&engine, "SHOW TABLES").await;
    assert!(
        !shown.contains("users") && !shown.contains("orders"),
        "{shown}"
    );
    assert_eq!(
        rows(&query(&engine, "SELECT * FROM ktable_tables").await),
        0
    );
}

#[tokio::test]
async fn every_column_type_decodes_with_nulls_and_malformed_values() {
    let broker = Broker::start();
    let topic = broker.topic("sql-types", 1, &[]).await;
    produce_all(
        &broker.raw_producer(),
        &topic,
        &[
            json_record(
                "full",
                json!({
                    "t": "text", "b": true, "s": -7, "i": 123456, "big": 9007199254740993i64,
                    "r": 1.5, "d": 2.25, "dec": "12.34", "day": "2026-11-26",
                    "ts_iso": "2026-11-26T10:00:00Z", "ts_ms": 1764151200000i64,
                    "doc": {"nested": [1, {"x": null}]}
                }),
            ),
            json_record("nulls", json!({"t": null, "b": null, "doc": null})),
            json_record("bad-int", json!({"i": "not a number"})),
            (Some(b"not-json".to_vec()), Some(b"{broken".to_vec())),
            (Some(b"array".to_vec()), Some(b"[1, 2]".to_vec())),
        ],
    )
    .await;
    let engine = engine(&broker);
    engine
        .sql(&format!(
            "CREATE TABLE typed (id TEXT PRIMARY KEY, t TEXT, b BOOLEAN, s SMALLINT, i INT, big BIGINT, \
             r REAL, d DOUBLE, dec DECIMAL(10, 2), day DATE, ts_iso TIMESTAMP, ts_ms TIMESTAMP, doc JSON, \
             _partition INT, _offset BIGINT) WITH (topic = '{topic}')"
        ))
        .await
        .expect("create");
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");

    let full = table_text(
        &engine,
        "SELECT t, b, s, i, big, r, d, dec, day, ts_iso, ts_ms, doc, _partition, _offset FROM typed WHERE id = 'full'",
    )
    .await;
    for expected in [
        "text",
        "true",
        "-7",
        "123456",
        "9007199254740993",
        "1.5",
        "2.25",
        "12.34",
        "2026-11-26",
        "2026-11-26T10:00:00",
        r#"{"nested":[1,{"x":null}]}"#,
    ] {
        assert!(full.contains(expected), "{expected} missing in\n{full}");
    }
    let nulls = query(&engine, "SELECT t, b, i, doc FROM typed WHERE id = 'nulls'").await;
    assert_eq!(rows(&nulls), 1);
    for column in nulls[0].columns() {
        assert!(column.is_null(0), "{column:?}");
    }
    // The default policy skips what does not fit and counts it.
    let keys = table_text(&engine, "SELECT id FROM typed ORDER BY id").await;
    assert!(
        keys.contains("full") && keys.contains("nulls") && !keys.contains("bad-int"),
        "{keys}"
    );
    let bad = query(
        &engine,
        "SELECT bad_records, upserts FROM ktable_tables WHERE name = 'typed'",
    )
    .await;
    let counts = bad[0]
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0);
    assert_eq!(counts, 3, "a type mismatch, broken JSON and a non-object");
}

#[tokio::test]
async fn on_error_null_keeps_the_record_with_null_fields() {
    let broker = Broker::start();
    let topic = broker.topic("sql-null-policy", 1, &[]).await;
    produce_all(
        &broker.raw_producer(),
        &topic,
        &[
            json_record("a", json!({"n": "x", "name": "kept"})),
            (Some(b"b".to_vec()), Some(b"{oops".to_vec())),
        ],
    )
    .await;
    let engine = engine(&broker);
    engine
        .sql(&format!(
            "CREATE TABLE p (id TEXT PRIMARY KEY, n INT, name TEXT) WITH (topic = '{topic}', on_error = 'null')"
        ))
        .await
        .expect("create");
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    let text = table_text(&engine, "SELECT id, n, name FROM p").await;
    assert!(text.contains("| a  |   | kept |"), "{text}");
    assert!(
        !text.contains("| b "),
        "broken JSON is still skipped: {text}"
    );
}

#[tokio::test]
async fn on_error_fail_stops_the_source_and_keeps_what_came_before() {
    let broker = Broker::start();
    let topic = broker.topic("sql-fail-policy", 1, &[]).await;
    produce_all(
        &broker.raw_producer(),
        &topic,
        &[
            json_record("a", json!({"n": 1})),
            json_record("b", json!({"n": "bad"})),
            json_record("c", json!({"n": 3})),
        ],
    )
    .await;
    let engine = engine(&broker);
    engine
        .sql(&format!("CREATE TABLE f (id TEXT PRIMARY KEY, n INT) WITH (topic = '{topic}', on_error = 'fail')"))
        .await
        .expect("create");
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    loop {
        let status = table_text(
            &engine,
            "SELECT running, last_error FROM ktable_tables WHERE name = 'f'",
        )
        .await;
        if status.contains("false") {
            assert!(status.contains("does not fit"), "{status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the source did not stop: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = table_text(&engine, "SELECT id FROM f ORDER BY id").await;
    assert!(
        text.contains("| a  |") && !text.contains("| b ") && !text.contains("| c "),
        "{text}"
    );
}

/// A random upsert/delete sequence; the model is the last value per key.
fn random_changes(
    seed: u64,
    n: usize,
    keys: u32,
) -> (Vec<RawRecord>, BTreeMap<String, (i64, String)>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut model = BTreeMap::new();
    let mut records = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("k{:04}", rng.random_range(0..keys));
        if rng.random_range(0..10) < 2 {
            model.remove(&key);
            records.push(tombstone(&key));
        } else {
            let score = rng.random_range(-500..500i64);
            let group = ["red", "green", "blue"][rng.random_range(0..3)].to_string();
            model.insert(key.clone(), (score, group.clone()));
            records.push(json_record(
                &key,
                json!({"score": score, "grp": group, "seq": i}),
            ));
        }
    }
    (records, model)
}

#[tokio::test]
async fn lookups_scans_and_aggregates_equal_the_model() {
    let broker = Broker::start();
    let topic = broker.topic("sql-model", 3, &[]).await;
    let (records, model) = random_changes(42, 6_000, 700);
    produce_all(&broker.raw_producer(), &topic, &records).await;
    let engine = engine(&broker);
    engine
        .sql(&format!("CREATE TABLE m (id TEXT PRIMARY KEY, score BIGINT, grp TEXT, seq BIGINT) WITH (topic = '{topic}')"))
        .await
        .expect("create");
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");

    // Scan.
    let batches = query(&engine, "SELECT id, score, grp FROM m").await;
    let mut seen = BTreeMap::new();
    for batch in &batches {
        let ids = batch.column(0).as_string::<i32>();
        let scores = batch
            .column(1)
            .as_primitive::<arrow::datatypes::Int64Type>();
        let groups = batch.column(2).as_string::<i32>();
        for i in 0..batch.num_rows() {
            seen.insert(
                ids.value(i).to_string(),
                (scores.value(i), groups.value(i).to_string()),
            );
        }
    }
    assert_eq!(rows(&batches), model.len(), "one row per live key");
    assert_eq!(seen, model);

    // Aggregates per group.
    let mut expected: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    for (score, group) in model.values() {
        let e = expected.entry(group.clone()).or_insert((0, 0, i64::MIN));
        e.0 += 1;
        e.1 += score;
        e.2 = e.2.max(*score);
    }
    let batches = query(
        &engine,
        "SELECT grp, count(*), sum(score), max(score) FROM m GROUP BY grp ORDER BY grp",
    )
    .await;
    let mut got = BTreeMap::new();
    for batch in &batches {
        for i in 0..batch.num_rows() {
            got.insert(
                batch.column(0).as_string::<i32>().value(i).to_string(),
                (
                    batch
                        .column(1)
                        .as_primitive::<arrow::datatypes::Int64Type>()
                        .value(i),
                    batch
                        .column(2)
                        .as_primitive::<arrow::datatypes::Int64Type>()
                        .value(i),
                    batch
                        .column(3)
                        .as_primitive::<arrow::datatypes::Int64Type>()
                        .value(i),
                ),
            );
        }
    }
    assert_eq!(got, expected);

    // Point lookups, IN lists, deleted keys, and a key filter combined with another.
    let (live_key, (live_score, _)) = model.iter().next().expect("a live key");
    let deleted_key = (0..700)
        .map(|k| format!("k{k:04}"))
        .find(|k| !model.contains_key(k))
        .expect("a deleted key");
    let one = query(
        &engine,
        &format!("SELECT score FROM m WHERE id = '{live_key}'"),
    )
    .await;
    assert_eq!(rows(&one), 1);
    assert_eq!(
        one[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0),
        *live_score
    );
    assert_eq!(
        rows(
            &query(
                &engine,
                &format!("SELECT * FROM m WHERE id = '{deleted_key}'")
            )
            .await
        ),
        0
    );
    let some = query(
        &engine,
        &format!("SELECT id FROM m WHERE id IN ('{live_key}', '{deleted_key}', 'nope')"),
    )
    .await;
    assert_eq!(rows(&some), 1);
    let none = query(
        &engine,
        &format!("SELECT id FROM m WHERE id = '{live_key}' AND score <> {live_score}"),
    )
    .await;
    assert_eq!(rows(&none), 0);
    let explain = table_text(
        &engine,
        &format!("EXPLAIN SELECT * FROM m WHERE id = '{live_key}'"),
    )
    .await;
    assert!(
        !explain.contains("FilterExec"),
        "the key filter is served by the index:\n{explain}"
    );
}

#[tokio::test]
async fn stream_joins_table_and_aggregates() {
    let broker = Broker::start();
    let users = broker.topic("sql-join-users", 2, &[]).await;
    let orders = broker.topic("sql-join-orders", 2, &[]).await;
    let producer = broker.raw_producer();
    produce_all(
        &producer,
        &users,
        &[
            json_record("u1", json!({"name": "Ada", "age": 36})),
            json_record("u2", json!({"name": "Kid", "age": 9})),
            json_record("u3", json!({"name": "Gone", "age": 50})),
            tombstone("u3"),
        ],
    )
    .await;
    produce_all(
        &producer,
        &orders,
        &[
            json_record(
                "o1",
                json!({"order_id": "o1", "user_id": "u1", "amount": 10.0}),
            ),
            json_record(
                "o2",
                json!({"order_id": "o2", "user_id": "u1", "amount": 5.5}),
            ),
            json_record(
                "o3",
                json!({"order_id": "o3", "user_id": "u2", "amount": 1.0}),
            ),
            json_record(
                "o4",
                json!({"order_id": "o4", "user_id": "u3", "amount": 99.0}),
            ),
            (
                None,
                Some(br#"{"order_id": "o5", "user_id": "u1", "amount": 2.0}"#.to_vec()),
            ),
        ],
    )
    .await;
    let engine = engine(&broker);
    let ctx = SessionContext::new();
    engine
        .run_script(
            &ctx,
            &format!(
                "CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, age INT) WITH (topic = '{users}');\n\
                 CREATE STREAM orders (order_id TEXT, user_id TEXT, amount DOUBLE, _key TEXT) WITH (topic = '{orders}');"
            ),
            "inline",
        )
        .await
        .expect("script");
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    let sql = |s: &str| {
        let ctx = ctx.clone();
        let s = s.to_string();
        async move {
            pretty_format_batches(&ctx.sql(&s).await.unwrap().collect().await.unwrap())
                .unwrap()
                .to_string()
        }
    };
    let joined = sql(
        "SELECT o.order_id, u.name, o.amount FROM orders o JOIN users u ON o.user_id = u.id \
         WHERE u.age >= 18 ORDER BY o.order_id",
    )
    .await;
    assert_eq!(
        joined
            .lines()
            .filter(|l| l.starts_with("| o") && !l.starts_with("| order_id"))
            .count(),
        3,
        "o1, o2, o5 (u3 deleted, u2 under 18):\n{joined}"
    );
    let totals = sql("SELECT u.name, count(*) AS n, sum(o.amount) AS total FROM orders o JOIN users u ON o.user_id = u.id GROUP BY u.name ORDER BY u.name").await;
    assert!(
        totals.contains("| Ada  | 3 | 17.5  |") && totals.contains("| Kid  | 1 | 1.0   |"),
        "{totals}"
    );
    let keyless = sql("SELECT count(*) FROM orders WHERE _key IS NULL").await;
    assert!(keyless.contains("| 1 "), "{keyless}");
}

#[tokio::test]
async fn system_table_reports_progress_during_and_after_restore() {
    let broker = Broker::start();
    let topic = broker.topic("sql-system", 2, &[]).await;
    let records: Vec<RawRecord> = (0..3_000)
        .map(|i| json_record(&format!("k{}", i % 1000), json!({"v": i})))
        .collect();
    produce_all(&broker.raw_producer(), &topic, &records).await;
    let engine = engine(&broker);
    engine
        .sql(&format!(
            "CREATE TABLE s (id TEXT PRIMARY KEY, v INT) WITH (topic = '{topic}')"
        ))
        .await
        .expect("create");
    let progress = "SELECT kind, topic, ready, offsets_done, offsets_total, rows, upserts FROM ktable_tables WHERE name = 's'";
    // Right after creation: whatever has been read, the totals are those at start and
    // readiness agrees with the offsets.
    let during = query(&engine, progress).await;
    let int = |batches: &[RecordBatch], column: usize| {
        batches[0]
            .column(column)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0)
    };
    assert_eq!(int(&during, 4), 3_000);
    let ready = during[0].column(2).as_boolean().value(0);
    assert_eq!(
        ready,
        int(&during, 3) == 3_000,
        "ready exactly when every offset is done"
    );

    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    let after = table_text(&engine, progress).await;
    assert!(
        after.contains("| table | ")
            && after.contains(&topic)
            && after.contains("| true  | 3000         | 3000          | 1000 | 3000    |"),
        "{after}"
    );
}

#[tokio::test]
async fn a_bad_statement_in_a_sql_file_names_the_file_and_line() {
    let broker = Broker::start();
    let topic = broker.topic("sql-file", 1, &[]).await;
    let dir = std::env::temp_dir().join(format!("ktable-sql-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("01-good.sql"),
        format!("-- a table\nCREATE TABLE good (id TEXT PRIMARY KEY) WITH (topic = '{topic}');\n"),
    )
    .expect("write");
    std::fs::write(
        dir.join("02-bad.sql"),
        format!("CREATE STREAM fine (v INT) WITH (topic = '{topic}');\n\nCREATE TABLE broken (id DOUBLE PRECISION PRIMARY KEY)\n  WITH (topic = '{topic}');\n"),
    )
    .expect("write");
    let engine = engine(&broker);
    let error = engine
        .run_path(engine.context(), &dir)
        .await
        .expect_err("the bad statement stops the run");
    let message = error.to_string();
    assert!(
        message.contains("02-bad.sql:3:") && message.contains("must be TEXT"),
        "{message}"
    );
    // What came before it ran, in file order.
    let names: Vec<String> = engine.sources().into_iter().map(|s| s.name).collect();
    assert_eq!(names, vec!["fine", "good"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn metadata_columns_show_key_partition_offset_timestamp_and_headers() {
    use ktable::kafka::{BytesSerializer, KafkaProducer, ProducerConfig, Record};
    let broker = Broker::start();
    let topic = broker.topic("sql-metadata", 1, &[]).await;
    let producer = KafkaProducer::new(
        ProducerConfig::new(broker.brokers()),
        BytesSerializer,
        BytesSerializer,
    )
    .expect("producer");
    let (key, value) = (b"m1".to_vec(), br#"{"v": 5}"#.to_vec());
    producer
        .send(
            &topic,
            Some(&b"m0".to_vec()),
            Some(&br#"{"v": 4}"#.to_vec()),
        )
        .await
        .expect("send");
    producer
        .send_record(
            Record::new(&topic)
                .key(&key)
                .value(&value)
                .timestamp(1_764_151_200_000)
                .header("trace", Some(b"abc"))
                .header("empty", None),
        )
        .await
        .expect("send");
    let engine = engine(&broker);
    engine
        .sql(&format!(
            "CREATE STREAM s (v INT, _key TEXT, _partition INT, _offset BIGINT, _timestamp TIMESTAMP, _headers TEXT) \
             WITH (topic = '{topic}')"
        ))
        .await
        .expect("create");
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    let text = table_text(
        &engine,
        "SELECT v, _key, _partition, _offset, _timestamp, _headers FROM s ORDER BY _offset",
    )
    .await;
    // Column widths depend on the other rows: compare with spaces collapsed.
    let collapsed = text
        .split(' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        collapsed
            .contains(r#"| 5 | m1 | 0 | 1 | 2025-11-26T10:00:00 | {"empty":null,"trace":"abc"} |"#),
        "{text}"
    );
    assert!(
        collapsed.contains("| 4 | m0 | 0 | 0 | 20"),
        "the broker's timestamp: {text}"
    );
    assert!(
        collapsed.contains(" | |\n| 5"),
        "no headers is NULL: {text}"
    );
}

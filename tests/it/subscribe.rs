//! Change feeds: `Engine::subscribe`, `KTable::subscribe`, and `SUBSCRIBE` over the
//! wire (DECLARE/FETCH, COPY, streamed rows) against a model of random upserts and
//! tombstones; resume, cancel, disconnect, close, time limit, a stalled subscriber
//! and a read-only user.

use crate::broker::{json_record, produce_all, tombstone, Broker, RawProducer, RawRecord};
use crate::server::{connect_as, start_configured, start_with, TestServer};
use crate::{eventually, json_table, READY_TIMEOUT};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type};
use futures::StreamExt;
use ktable::changefeed::Offsets;
use ktable::server::{QueryLimits, ServerConfig, UserConfig};
use ktable::sql::{Engine, EngineConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_postgres::SimpleQueryMessage;

/// Random upserts (values 0..1000) and tombstones over 40 keys, applied to `model`.
fn random_changes(
    rng: &mut ChaCha8Rng,
    n: usize,
    model: &mut BTreeMap<String, i32>,
) -> Vec<RawRecord> {
    (0..n)
        .map(|_| {
            let key = format!("k{}", rng.random_range(0..40));
            if rng.random_bool(0.25) {
                model.remove(&key);
                tombstone(&key)
            } else {
                let v = rng.random_range(0..1000);
                model.insert(key.clone(), v);
                json_record(&key, json!({ "v": v }))
            }
        })
        .collect()
}

/// A subscriber's view of a table: the rows it was told of, and the last offset of
/// each partition it received.
#[derive(Default)]
struct View {
    rows: BTreeMap<String, i32>,
    seen: Offsets,
    snapshot_rows: usize,
}

impl View {
    /// Applies a batch of subscription rows; panics on an offset received twice.
    fn apply(&mut self, batch: &RecordBatch) {
        let partitions = batch
            .column_by_name("ktable_partition")
            .unwrap()
            .as_primitive::<Int32Type>();
        let offsets = batch
            .column_by_name("ktable_offset")
            .unwrap()
            .as_primitive::<Int64Type>();
        let ops = batch
            .column_by_name("ktable_op")
            .unwrap()
            .as_string::<i32>();
        let ids = batch.column_by_name("id").unwrap().as_string::<i32>();
        let values = batch
            .column_by_name("v")
            .unwrap()
            .as_primitive::<Int32Type>();
        for row in 0..batch.num_rows() {
            if !partitions.is_null(row) {
                let (partition, offset) = (partitions.value(row), offsets.value(row));
                let last = self.seen.insert(partition, offset);
                if ops.value(row) != "progress" {
                    assert!(
                        last.is_none_or(|last| offset > last),
                        "offset {offset} of partition {partition} after {last:?}: repeated"
                    );
                }
            }
            match ops.value(row) {
                "snapshot" | "upsert" => {
                    if ops.value(row) == "snapshot" {
                        self.snapshot_rows += 1;
                    }
                    self.rows
                        .insert(ids.value(row).to_string(), values.value(row));
                }
                "delete" => {
                    assert!(values.is_null(row), "a delete carries NULL values");
                    self.rows.remove(ids.value(row));
                }
                "progress" => {}
                other => panic!("unexpected op {other}"),
            }
        }
    }

    /// Reads `changes` until the view holds `expected`.
    async fn follow(
        &mut self,
        changes: &mut datafusion::execution::SendableRecordBatchStream,
        expected: &BTreeMap<String, i32>,
    ) {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        while &self.rows != expected {
            let batch = tokio::time::timeout_at(deadline, changes.next())
                .await
                .unwrap_or_else(|_| {
                    panic!("the view never matched: {:?} vs {expected:?}", self.rows)
                })
                .expect("the subscription ended")
                .expect("a batch");
            self.apply(&batch);
        }
    }
}

async fn model_engine(broker: &Broker, topic: &str) -> Engine {
    let engine = Engine::new(EngineConfig::new(broker.brokers()));
    engine
        .register(
            engine.context(),
            &format!("CREATE TABLE t (id TEXT PRIMARY KEY, v INT) WITH (topic = '{topic}')"),
        )
        .await
        .expect("table");
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    engine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_changes_match_a_model_and_a_resume_misses_nothing() {
    let broker = Broker::start();
    let topic = broker.topic("sub-model", 3, &[]).await;
    let producer = broker.raw_producer();
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut model = BTreeMap::new();
    produce_all(
        &producer,
        &topic,
        &random_changes(&mut rng, 200, &mut model),
    )
    .await;
    let engine = model_engine(&broker, &topic).await;
    eventually("the table holds the model", || {
        engine.table("t").is_some_and(|t| t.len() == model.len())
    })
    .await;

    let mut all = engine
        .subscribe("SUBSCRIBE t WITH (PROGRESS = true)")
        .await
        .expect("subscribe");
    let mut even = engine
        .subscribe("SUBSCRIBE (SELECT id, v FROM t WHERE v % 2 = 0)")
        .await
        .expect("subscribe with a filter");
    let mut all_view = View::default();
    let mut even_view = View::default();
    all_view.follow(&mut all, &model).await;
    assert_eq!(all_view.snapshot_rows, model.len(), "the snapshot first");
    let evens = |m: &BTreeMap<String, i32>| -> BTreeMap<String, i32> {
        m.iter()
            .filter(|(_, v)| *v % 2 == 0)
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    even_view.follow(&mut even, &evens(&model)).await;

    produce_all(
        &producer,
        &topic,
        &random_changes(&mut rng, 300, &mut model),
    )
    .await;
    all_view.follow(&mut all, &model).await;
    even_view.follow(&mut even, &evens(&model)).await;

    // Resume after the offsets seen, with changes made while away.
    drop(all);
    let resume_from = all_view.seen.clone();
    produce_all(
        &producer,
        &topic,
        &random_changes(&mut rng, 150, &mut model),
    )
    .await;
    let as_of: Vec<String> = resume_from
        .iter()
        .map(|(p, o)| format!("{p}:{o}"))
        .collect();
    let mut resumed = engine
        .subscribe(&format!("SUBSCRIBE t AS OF OFFSETS ({})", as_of.join(", ")))
        .await
        .expect("resume");
    let snapshot_rows = all_view.snapshot_rows;
    all_view.follow(&mut resumed, &model).await;
    assert_eq!(
        all_view.snapshot_rows, snapshot_rows,
        "no snapshot on resume"
    );

    // From before the log began: refused, with SQLSTATE 55000.
    let too_old = engine
        .subscribe("SUBSCRIBE t AS OF OFFSETS (0:-1, 1:-1, 2:-1)")
        .await
        .err()
        .expect("a resume from before the log is refused");
    assert_eq!(too_old.sqlstate(), "55000", "{too_old}");
    let counts = engine
        .sql("SELECT active, ended FROM ktable_subscriptions WHERE name = 't'")
        .await
        .expect("counts")
        .collect()
        .await
        .expect("rows");
    let active = counts[0].column(0).as_primitive::<Int64Type>().value(0);
    let ended = counts[0].column(1).as_primitive::<Int64Type>().value(0);
    assert_eq!(
        (active, ended),
        (2, 1),
        "even and resumed active, all ended"
    );

    // Dropping the table ends its subscriptions.
    engine.sql("DROP TABLE t").await.expect("drop");
    tokio::time::timeout(READY_TIMEOUT, async {
        while let Some(batch) = resumed.next().await {
            batch.expect("what was applied before the drop");
        }
    })
    .await
    .expect("the subscription ends with its table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_ktable_subscription_follows_its_table() {
    let broker = Broker::start();
    let topic = broker.topic("sub-typed", 2, &[]).await;
    let producer = broker.raw_producer();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut model = BTreeMap::new();
    produce_all(
        &producer,
        &topic,
        &random_changes(&mut rng, 100, &mut model),
    )
    .await;
    let table = json_table(&broker.brokers(), &topic, "sub-typed").await;
    table.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    let (snapshot, _, changes) = table.subscribe_with_snapshot();
    let mut view: BTreeMap<String, i32> = snapshot
        .into_iter()
        .map(|(k, v)| (k, v["v"].as_i64().unwrap_or(-1) as i32))
        .collect();
    assert_eq!(view, model);
    produce_all(
        &producer,
        &topic,
        &random_changes(&mut rng, 200, &mut model),
    )
    .await;
    let mut changes = Box::pin(changes);
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    while view != model {
        let change = tokio::time::timeout_at(deadline, changes.next())
            .await
            .expect("changes in time")
            .expect("not ended")
            .expect("not behind");
        match change.value {
            Some(value) => view.insert(change.key, value["v"].as_i64().unwrap_or(-1) as i32),
            None => view.remove(&change.key),
        };
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_engine_ends_its_subscriptions_after_what_was_applied() {
    let broker = Broker::start();
    let topic = broker.topic("sub-stop", 2, &[]).await;
    let events = broker.topic("sub-stop-events", 1, &[]).await;
    let producer = broker.raw_producer();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut model = BTreeMap::new();
    let engine = model_engine(&broker, &topic).await;
    engine
        .sql(&format!(
            "CREATE STREAM e (v INT) WITH (topic = '{events}')"
        ))
        .await
        .expect("stream");
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    let mut table_changes = engine.subscribe("SUBSCRIBE t").await.expect("subscribe");
    let mut stream_changes = engine.subscribe("SUBSCRIBE e").await.expect("subscribe");
    produce_all(
        &producer,
        &topic,
        &random_changes(&mut rng, 100, &mut model),
    )
    .await;
    produce_all(&producer, &events, &[json_record("a", json!({"v": 1}))]).await;
    let mut view = View::default();
    view.follow(&mut table_changes, &model).await;
    let first = tokio::time::timeout(READY_TIMEOUT, stream_changes.next())
        .await
        .expect("the stream's record in time")
        .expect("not ended")
        .expect("a batch");
    assert_eq!(first.num_rows(), 1);

    engine.stop();
    for (name, changes) in [
        ("table", &mut table_changes),
        ("stream", &mut stream_changes),
    ] {
        tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(batch) = changes.next().await {
                batch.expect("no error, only the end");
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the {name} subscription ended when the engine stopped"));
    }
}

fn rows_of(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

async fn produce_users(server: &TestServer, broker: &Broker, records: &[RawRecord]) {
    let producer: RawProducer = broker.raw_producer();
    produce_all(&producer, &server.users_topic, records).await;
}

/// The two changes the wire tests expect after the snapshot: an upsert of `u4` and a
/// delete of `u1`.
async fn add_u4_and_delete_u1(server: &TestServer, broker: &Broker) {
    produce_users(
        server,
        broker,
        &[
            json_record("u4", json!({"name": "New", "age": 20})),
            tombstone("u1"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declare_fetch_and_copy_over_tokio_postgres() {
    let broker = Broker::start();
    let server = start_with(&broker, ServerConfig::default()).await;
    let client = connect_as(&server, "ktable", "").await.expect("connect");

    client
        .batch_execute("BEGIN; DECLARE c CURSOR FOR SUBSCRIBE (SELECT id, name FROM users)")
        .await
        .expect("declare");
    // Extended protocol: the snapshot.
    let rows = client
        .query("FETCH ALL c WITH (timeout = '1s')", &[])
        .await
        .expect("fetch");
    let snapshot: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get::<_, String>("ktable_op"), r.get("id"), r.get("name")))
        .collect();
    let mut sorted = snapshot.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![
            ("snapshot".into(), "u1".into(), "Ada".into()),
            ("snapshot".into(), "u2".into(), "Kid".into())
        ]
    );
    // Nothing new: 0s returns at once.
    let started = std::time::Instant::now();
    let none = client
        .query("FETCH ALL c WITH (timeout = '0s')", &[])
        .await
        .expect("fetch nothing");
    assert!(none.is_empty() && started.elapsed() < Duration::from_secs(1));

    add_u4_and_delete_u1(&server, &broker).await;
    // Simple protocol: FETCH waits for the changes.
    let mut changes = Vec::new();
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    while changes.len() < 2 && std::time::Instant::now() < deadline {
        let fetched = client
            .simple_query("FETCH 10 c WITH (timeout = '5s')")
            .await
            .expect("fetch changes");
        changes.extend(rows_of(&fetched));
    }
    let mut ops: Vec<(String, String, Option<String>)> = changes
        .iter()
        .map(|r| (r[2].clone().unwrap(), r[3].clone().unwrap(), r[4].clone()))
        .collect();
    ops.sort();
    assert_eq!(
        ops,
        vec![
            ("delete".into(), "u1".into(), None),
            ("upsert".into(), "u4".into(), Some("New".into()))
        ]
    );
    assert!(
        changes.iter().all(|r| r[0].is_some() && r[1].is_some()),
        "positions set"
    );
    client.batch_execute("CLOSE c").await.expect("close");
    // Progress rows: the cut, then again after each idle second.
    client
        .batch_execute(
            "DECLARE p CURSOR FOR SUBSCRIBE users WITH (SNAPSHOT = false, PROGRESS = true)",
        )
        .await
        .expect("declare with progress");
    let cut = client
        .query("FETCH ALL p WITH (timeout = '0s')", &[])
        .await
        .expect("the cut");
    assert!(!cut.is_empty(), "progress rows at the cut");
    let started = std::time::Instant::now();
    let idle = client
        .query("FETCH ALL p WITH (timeout = '5s')", &[])
        .await
        .expect("idle progress");
    assert!(!idle.is_empty() && started.elapsed() >= Duration::from_millis(900));
    for row in cut.iter().chain(&idle) {
        assert_eq!(row.get::<_, String>("ktable_op"), "progress");
        assert!(row.get::<_, Option<String>>("id").is_none());
    }
    client.batch_execute("COMMIT").await.expect("commit");
    let gone = client.simple_query("FETCH ALL c").await;
    assert!(gone.is_err(), "the cursor is closed");

    // COPY (SUBSCRIBE ...) TO STDOUT: the snapshot, then each change as it happens.
    let copy = client
        .copy_out("COPY (SUBSCRIBE (SELECT id, name FROM users)) TO STDOUT")
        .await
        .expect("copy out");
    let mut copy = Box::pin(copy);
    let mut lines = Vec::new();
    while lines.len() < 2 {
        lines.push(next_copy_line(&mut copy, "snapshot lines").await);
    }
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "\\N\t\\N\tsnapshot\tu2\tKid\n",
            "\\N\t\\N\tsnapshot\tu4\tNew\n"
        ]
    );
    produce_users(
        &server,
        &broker,
        &[json_record("u5", json!({"name": "Five"}))],
    )
    .await;
    let line = next_copy_line(&mut copy, "a change, flushed as it happened").await;
    assert!(line.ends_with("\tupsert\tu5\tFive\n"), "{line:?}");
}

/// The next line of a `COPY (SUBSCRIBE ...)`, failing with `what` if none comes in time.
async fn next_copy_line<S>(copy: &mut std::pin::Pin<Box<S>>, what: &str) -> String
where
    S: futures::Stream<Item = Result<bytes::Bytes, tokio_postgres::Error>>,
{
    let chunk = tokio::time::timeout(READY_TIMEOUT, copy.next())
        .await
        .expect(what)
        .expect("not ended")
        .expect("copy data");
    String::from_utf8(chunk.to_vec()).expect("utf-8")
}

/// The next `n` lines of a `COPY (SUBSCRIBE ...)`, without their position columns
/// (which change between runs), sorted.
async fn copy_changes<S>(copy: &mut std::pin::Pin<Box<S>>, n: usize) -> Vec<String>
where
    S: futures::Stream<Item = Result<bytes::Bytes, tokio_postgres::Error>>,
{
    let mut lines = Vec::new();
    while lines.len() < n {
        let line = next_copy_line(copy, "a change").await;
        let fields: Vec<&str> = line.trim_end_matches('\n').split('\t').collect();
        assert!(
            fields[0] != "\\N" && fields[1] != "\\N",
            "positions set: {line:?}"
        );
        lines.push(fields[2..].join("\t"));
    }
    lines.sort();
    lines
}

/// Subscribers of the same query share the rows made of each change batch and their
/// encoding; subscribers of other queries (another filter, another select list) must
/// still get their own rows, never a neighbour's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_of_one_query_share_and_other_queries_get_their_own_rows() {
    let broker = Broker::start();
    let server = start_with(&broker, ServerConfig::default()).await;
    let queries = [
        "SELECT id, name FROM users",
        "SELECT id, name FROM users",
        "SELECT id, name FROM users WHERE age >= 30",
        "SELECT id, lower(name) FROM users",
        "SELECT id, name, age FROM users",
    ];
    let mut copies = Vec::new();
    for query in queries {
        let client = connect_as(&server, "ktable", "").await.expect("connect");
        let copy = client
            .copy_out(&format!(
                "COPY (SUBSCRIBE ({query}) WITH (SNAPSHOT = false)) TO STDOUT"
            ))
            .await
            .expect("copy out");
        copies.push((client, Box::pin(copy)));
    }
    produce_users(
        &server,
        &broker,
        &[
            json_record("u10", json!({"name": "Old", "age": 40})),
            json_record("u11", json!({"name": "Young", "age": 20})),
            tombstone("u1"),
        ],
    )
    .await;
    let expected: [&[&str]; 5] = [
        &["delete\tu1\t\\N", "upsert\tu10\tOld", "upsert\tu11\tYoung"],
        &["delete\tu1\t\\N", "upsert\tu10\tOld", "upsert\tu11\tYoung"],
        // An upsert the filter turns away is a delete of its key.
        &["delete\tu1\t\\N", "delete\tu11\t\\N", "upsert\tu10\tOld"],
        &["delete\tu1\t\\N", "upsert\tu10\told", "upsert\tu11\tyoung"],
        &[
            "delete\tu1\t\\N\t\\N",
            "upsert\tu10\tOld\t40",
            "upsert\tu11\tYoung\t20",
        ],
    ];
    for ((query, (_client, copy)), expected) in queries.iter().zip(&mut copies).zip(expected) {
        assert_eq!(copy_changes(copy, 3).await, expected, "{query}");
    }
}

/// A driver reading a bare SUBSCRIBE a few rows at a time (an Execute with a row
/// limit: pgjdbc's fetch size, tokio-postgres' `query_portal`) gets that many rows
/// per Execute, the snapshot first and then changes as they come; closing the portal
/// ends the subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_reads_a_subscription_a_few_rows_at_a_time() {
    let broker = Broker::start();
    let server = start_with(&broker, ServerConfig::default()).await;
    let watcher = connect_as(&server, "ktable", "").await.expect("watcher");
    let mut client = connect_as(&server, "ktable", "").await.expect("connect");
    let transaction = client.transaction().await.expect("begin");
    let portal = transaction
        .bind("SUBSCRIBE (SELECT id, name FROM users)", &[])
        .await
        .expect("bind");
    let op_and_id =
        |row: &tokio_postgres::Row| -> (String, String) { (row.get("ktable_op"), row.get("id")) };
    let mut snapshot = Vec::new();
    for _ in 0..2 {
        let rows = tokio::time::timeout(READY_TIMEOUT, transaction.query_portal(&portal, 1))
            .await
            .expect("an Execute for 1 row returns")
            .expect("execute");
        assert_eq!(rows.len(), 1, "one row per Execute");
        snapshot.extend(rows.iter().map(op_and_id));
    }
    snapshot.sort();
    let expected = |rows: &[(&str, &str)]| -> Vec<(String, String)> {
        rows.iter()
            .map(|(op, id)| (op.to_string(), id.to_string()))
            .collect()
    };
    assert_eq!(
        snapshot,
        expected(&[("snapshot", "u1"), ("snapshot", "u2")])
    );
    assert_eq!(subscriptions(&watcher).await.0, 1);

    add_u4_and_delete_u1(&server, &broker).await;
    let changes = tokio::time::timeout(READY_TIMEOUT, transaction.query_portal(&portal, 2))
        .await
        .expect("the changes arrive")
        .expect("execute");
    let mut changes: Vec<(String, String)> = changes.iter().map(op_and_id).collect();
    changes.sort();
    assert_eq!(changes, expected(&[("delete", "u1"), ("upsert", "u4")]));

    drop(portal);
    transaction.commit().await.expect("commit");
    active_becomes(&watcher, 0).await;
}

async fn subscriptions(client: &tokio_postgres::Client) -> (i64, i64, i64) {
    let row = client
        .query_one(
            "SELECT active, ended, fell_behind FROM ktable_subscriptions WHERE name = 'users'",
            &[],
        )
        .await
        .expect("ktable_subscriptions");
    (row.get(0), row.get(1), row.get(2))
}

async fn active_becomes(client: &tokio_postgres::Client, active: i64) {
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    loop {
        let now = subscriptions(client).await.0;
        if now == active {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{now} subscriptions active, expected {active}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_close_disconnect_and_the_time_limit_end_subscriptions() {
    let broker = Broker::start();
    let config = ServerConfig {
        limits: QueryLimits {
            timeout: Some(Duration::from_secs(3)),
            max_rows: None,
        },
        ..ServerConfig::default()
    };
    let server = start_with(&broker, config).await;
    let watcher = connect_as(&server, "ktable", "").await.expect("watcher");

    // A bare SUBSCRIBE, streamed, then cancelled.
    let client = connect_as(&server, "ktable", "").await.expect("connect");
    let token = client.cancel_token();
    let rows = client
        .query_raw("SUBSCRIBE users", Vec::<String>::new())
        .await
        .expect("subscribe");
    let mut rows = Box::pin(rows);
    let first = tokio::time::timeout(READY_TIMEOUT, rows.next())
        .await
        .expect("a snapshot row, flushed")
        .expect("a row")
        .expect("no error");
    assert_eq!(first.get::<_, String>("ktable_op"), "snapshot");
    active_becomes(&watcher, 1).await;
    token
        .cancel_query(tokio_postgres::NoTls)
        .await
        .expect("cancel");
    let ended = loop {
        match tokio::time::timeout(READY_TIMEOUT, rows.next())
            .await
            .expect("ended")
        {
            Some(Ok(_)) => continue,
            Some(Err(error)) => break error,
            None => panic!("a subscription ends with an error"),
        }
    };
    assert_eq!(ended.code().map(|c| c.code()), Some("57014"), "{ended}");
    drop(rows);
    active_becomes(&watcher, 0).await;

    // CLOSE.
    client
        .batch_execute("BEGIN; DECLARE c CURSOR FOR SUBSCRIBE users")
        .await
        .expect("declare");
    active_becomes(&watcher, 1).await;
    client
        .batch_execute("CLOSE c; COMMIT")
        .await
        .expect("close");
    active_becomes(&watcher, 0).await;

    // COMMIT closes a cursor, unless it was declared WITH HOLD; CLOSE ALL closes that.
    client
        .batch_execute("BEGIN; DECLARE e CURSOR FOR SUBSCRIBE users; COMMIT")
        .await
        .expect("declare and commit");
    active_becomes(&watcher, 0).await;
    client
        .batch_execute("BEGIN; DECLARE h CURSOR WITH HOLD FOR SUBSCRIBE users; COMMIT")
        .await
        .expect("declare with hold");
    active_becomes(&watcher, 1).await;
    client.batch_execute("CLOSE ALL").await.expect("close all");
    active_becomes(&watcher, 0).await;

    // Disconnect.
    let leaving = connect_as(&server, "ktable", "").await.expect("connect");
    leaving
        .batch_execute("BEGIN; DECLARE d CURSOR FOR SUBSCRIBE users")
        .await
        .expect("declare");
    active_becomes(&watcher, 1).await;
    drop(leaving);
    active_becomes(&watcher, 0).await;

    // The statement time limit.
    let limited = client
        .simple_query("SUBSCRIBE users WITH (SNAPSHOT = false)")
        .await
        .expect_err("a subscription past the time limit ends");
    assert_eq!(limited.code().map(|c| c.code()), Some("57014"), "{limited}");
    active_becomes(&watcher, 0).await;
    assert_eq!(subscriptions(&watcher).await.1, 6, "six ended");

    // A session holds at most 64 subscription cursors (server::subscribe).
    client.batch_execute("BEGIN").await.expect("begin");
    for i in 0..64 {
        client
            .batch_execute(&format!(
                "DECLARE c{i} CURSOR FOR SUBSCRIBE users WITH (SNAPSHOT = false)"
            ))
            .await
            .expect("declare up to the cap");
    }
    active_becomes(&watcher, 64).await;
    let refused = client
        .batch_execute("DECLARE one_more CURSOR FOR SUBSCRIBE users")
        .await
        .expect_err("the 65th cursor is refused");
    assert_eq!(refused.code().map(|c| c.code()), Some("53400"), "{refused}");
    client.batch_execute("ROLLBACK").await.expect("rollback");
    active_becomes(&watcher, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_is_ended_while_another_keeps_up() {
    let broker = Broker::start();
    let server =
        start_configured(&broker, ServerConfig::default(), |c| c.subscribe_buffer(40)).await;
    let stalled = connect_as(&server, "ktable", "").await.expect("connect");
    stalled
        .batch_execute("BEGIN; DECLARE s CURSOR FOR SUBSCRIBE users WITH (SNAPSHOT = false)")
        .await
        .expect("declare");
    let mut live = server
        .engine
        .subscribe("SUBSCRIBE users WITH (SNAPSHOT = false)")
        .await
        .expect("subscribe");
    let keeping_up = tokio::spawn(async move {
        let mut ids = std::collections::BTreeSet::new();
        while ids.len() < 120 {
            let Some(batch) = live.next().await else {
                break;
            };
            let batch = batch.expect("the live subscriber keeps up");
            let column = batch.column_by_name("id").expect("id").as_string::<i32>();
            ids.extend((0..batch.num_rows()).map(|i| column.value(i).to_string()));
        }
        // Still subscribed when the stalled one is checked.
        (ids.len(), live)
    });
    for chunk in 0..24 {
        let records: Vec<RawRecord> = (0..5)
            .map(|i| json_record(&format!("n{}", chunk * 5 + i), json!({"name": "x"})))
            .collect();
        produce_users(&server, &broker, &records).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (seen, _live) = tokio::time::timeout(READY_TIMEOUT, keeping_up)
        .await
        .expect("the live subscriber saw everything")
        .expect("task");
    assert_eq!(seen, 120);
    let error = stalled
        .simple_query("FETCH ALL s")
        .await
        .expect_err("the stalled subscriber was ended");
    assert_eq!(error.code().map(|c| c.code()), Some("53400"), "{error}");
    let message = error
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    assert!(message.contains("AS OF OFFSETS ("), "{message}");
    let watcher = connect_as(&server, "ktable", "").await.expect("watcher");
    let (active, _, fell_behind) = subscriptions(&watcher).await;
    assert_eq!((active, fell_behind), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_user_may_subscribe_to_a_table_and_a_stream() {
    let broker = Broker::start();
    let config = ServerConfig {
        users: vec![UserConfig {
            name: "reader".into(),
            password: "r34d".into(),
            read_only: true,
        }],
        ..ServerConfig::default()
    };
    let server = start_with(&broker, config).await;
    let reader = connect_as(&server, "reader", "r34d").await.expect("reader");
    reader
        .batch_execute(
            "BEGIN; DECLARE c CURSOR FOR SUBSCRIBE (SELECT id FROM users WHERE age > 10)",
        )
        .await
        .expect("a read-only user declares a subscription");
    let rows = reader
        .query("FETCH ALL c WITH (timeout = '1s')", &[])
        .await
        .expect("fetch");
    let ids: Vec<String> = rows.iter().map(|r| r.get("id")).collect();
    assert_eq!(ids, vec!["u1".to_string()]);

    // A stream: no snapshot by default, then each new record that passes the filter.
    reader
        .batch_execute(
            "DECLARE o CURSOR FOR SUBSCRIBE (SELECT order_id, amount FROM orders WHERE amount > 5)",
        )
        .await
        .expect("declare over a stream");
    let none = reader
        .query("FETCH ALL o WITH (timeout = '0s')", &[])
        .await
        .expect("fetch");
    assert!(
        none.is_empty(),
        "a stream subscription starts without its window"
    );
    let orders = server
        .engine
        .sources()
        .into_iter()
        .find(|s| s.name == "orders")
        .expect("orders")
        .stats
        .topic;
    let producer = broker.raw_producer();
    produce_all(
        &producer,
        &orders,
        &[
            json_record(
                "o3",
                json!({"order_id": "o3", "user_id": "u1", "amount": 1.0}),
            ),
            json_record(
                "o4",
                json!({"order_id": "o4", "user_id": "u1", "amount": 12.5}),
            ),
        ],
    )
    .await;
    let mut inserted = Vec::new();
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    while inserted.is_empty() && std::time::Instant::now() < deadline {
        for row in reader
            .query("FETCH ALL o WITH (timeout = '5s')", &[])
            .await
            .expect("fetch")
        {
            inserted.push((
                row.get::<_, String>("ktable_op"),
                row.get::<_, String>("order_id"),
                row.get::<_, f64>("amount"),
            ));
        }
    }
    assert_eq!(
        inserted,
        vec![("insert".to_string(), "o4".to_string(), 12.5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integer_and_composite_keys_are_subscribed_to() {
    let broker = Broker::start();
    let topic = broker.topic("sub-int", 1, &[]).await;
    let members = broker.topic("sub-composite", 1, &[]).await;
    let producer = broker.raw_producer();
    produce_all(
        &producer,
        &topic,
        &[
            json_record("1", json!({"v": 10})),
            json_record("2", json!({"v": 20})),
        ],
    )
    .await;
    let member = |tenant: &str, id: i32| json!({"tenant": tenant, "id": id}).to_string();
    produce_all(
        &producer,
        &members,
        &[
            json_record(&member("a", 1), json!({"tenant": "a", "id": 1, "v": 1})),
            json_record(&member("b", 1), json!({"tenant": "b", "id": 1, "v": 2})),
        ],
    )
    .await;
    let engine = Engine::new(EngineConfig::new(broker.brokers()));
    for ddl in [
        format!("CREATE TABLE n (id INT PRIMARY KEY, v INT) WITH (topic = '{topic}')"),
        format!(
            "CREATE TABLE m (tenant TEXT, id INT, v INT, PRIMARY KEY (tenant, id)) \
             WITH (topic = '{members}', key_format = 'json')"
        ),
    ] {
        engine
            .register(engine.context(), &ddl)
            .await
            .expect("table");
    }
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    // A filter that turns an upsert away sends it as a delete of its (integer) key.
    let mut changes = engine
        .subscribe("SUBSCRIBE (SELECT id, v FROM n WHERE v < 100)")
        .await
        .expect("subscribe");
    produce_all(
        &producer,
        &topic,
        &[
            json_record("3", json!({"v": 30})),
            json_record("1", json!({"v": 500})),
            tombstone("2"),
        ],
    )
    .await;
    let mut seen: Vec<(String, i32, Option<i32>)> = Vec::new();
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    while seen.iter().filter(|(op, ..)| op != "snapshot").count() < 3 {
        let batch = tokio::time::timeout_at(deadline, changes.next())
            .await
            .expect("changes in time")
            .expect("the subscription goes on")
            .expect("a batch");
        let ops = batch.column(2).as_string::<i32>();
        let ids = batch.column(3).as_primitive::<Int32Type>();
        let values = batch.column(4).as_primitive::<Int32Type>();
        for row in 0..batch.num_rows() {
            if ops.value(row) == "progress" {
                continue;
            }
            let value = (!values.is_null(row)).then(|| values.value(row));
            seen.push((ops.value(row).to_string(), ids.value(row), value));
        }
    }
    let live: Vec<_> = seen
        .iter()
        .filter(|(op, ..)| op != "snapshot")
        .cloned()
        .collect();
    assert_eq!(
        live,
        vec![
            ("upsert".to_string(), 3, Some(30)),
            ("delete".to_string(), 1, None),
            ("delete".to_string(), 2, None),
        ]
    );
    let snapshot: BTreeMap<i32, Option<i32>> = seen
        .iter()
        .filter(|(op, ..)| op == "snapshot")
        .map(|(_, id, v)| (*id, *v))
        .collect();
    assert_eq!(snapshot, BTreeMap::from([(1, Some(10)), (2, Some(20))]));

    // A composite key: its parts come back in their own columns, in any order the
    // select list puts them, for upserts and deletes alike.
    let mut changes = engine
        .subscribe("SUBSCRIBE (SELECT v, id, tenant FROM m WHERE v < 100) WITH (SNAPSHOT = false)")
        .await
        .expect("subscribe to a composite-key table");
    produce_all(
        &producer,
        &members,
        &[
            json_record(&member("a", 2), json!({"tenant": "a", "id": 2, "v": 3})),
            tombstone(&member("b", 1)),
            json_record(&member("a", 1), json!({"tenant": "a", "id": 1, "v": 700})),
        ],
    )
    .await;
    let mut seen: Vec<(String, Option<i32>, i32, String)> = Vec::new();
    while seen.len() < 3 {
        let batch = tokio::time::timeout_at(deadline, changes.next())
            .await
            .expect("changes in time")
            .expect("the subscription goes on")
            .expect("a batch");
        let ops = batch.column(2).as_string::<i32>();
        let values = batch.column(3).as_primitive::<Int32Type>();
        let ids = batch.column(4).as_primitive::<Int32Type>();
        let tenants = batch.column(5).as_string::<i32>();
        for row in 0..batch.num_rows() {
            if ops.value(row) == "progress" {
                continue;
            }
            let value = (!values.is_null(row)).then(|| values.value(row));
            seen.push((
                ops.value(row).to_string(),
                value,
                ids.value(row),
                tenants.value(row).to_string(),
            ));
        }
    }
    assert_eq!(
        seen,
        vec![
            ("upsert".to_string(), Some(3), 2, "a".to_string()),
            ("delete".to_string(), None, 1, "b".to_string()),
            ("delete".to_string(), None, 1, "a".to_string()),
        ]
    );

    let refused = engine
        .subscribe("SUBSCRIBE (SELECT tenant, v FROM m)")
        .await
        .err()
        .expect("refused without every key column");
    assert_eq!(refused.sqlstate(), "0A000", "{refused}");
}

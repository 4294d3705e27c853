//! Checkpoints: a table restarted from its checkpoint holds exactly what a full restore
//! gives, and every reason not to use a checkpoint makes a full restore that says why
//! in `ktable_tables`.
//!
//! The model check and the declaration, damage and truncation cases run on either
//! broker; the cases that need the real broker's admin calls (partitions added, topic
//! deleted and created again, records deleted, `delete.retention.ms`) are skipped
//! without one, or fail under `KTABLE_REQUIRE_KAFKA=1`.

use crate::broker::{json_record, produce_all, tombstone, Broker, RawRecord};
use crate::READY_TIMEOUT;
use arrow::array::{Array, AsArray, RecordBatch};
use ktable::kafka::{ConsumerConfig, JsonSerializer, StringSerializer};
use ktable::source::RestoreOrigin;
use ktable::sql::{Engine, EngineConfig};
use ktable::KTable;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const COLUMNS: &str = "id TEXT PRIMARY KEY, v BIGINT";

/// A fresh, empty state folder for one test.
fn state_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ktable-it-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// An engine with the state folder, the table `t` over `topic` declared, restored.
async fn start(brokers: &str, state: &Path, topic: &str, columns: &str) -> Engine {
    let engine = Engine::new(
        EngineConfig::new(brokers)
            .request_timeout(Duration::from_secs(5))
            .state_dir(state)
            // Only explicit checkpoints in these tests.
            .checkpoint_interval(Duration::from_secs(3600)),
    );
    engine
        .sql(&format!(
            "CREATE TABLE t ({columns}) WITH (topic = '{topic}', format = 'json')"
        ))
        .await
        .expect("create table");
    engine
        .wait_until_ready(READY_TIMEOUT)
        .await
        .expect("table ready");
    engine
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

/// The table's rows as key → value.
async fn contents(engine: &Engine) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for batch in query(engine, "SELECT id, v FROM t").await {
        let ids = batch.column(0).as_string::<i32>();
        let vs = batch
            .column(1)
            .as_primitive::<arrow::datatypes::Int64Type>();
        for i in 0..batch.num_rows() {
            out.insert(ids.value(i).to_string(), vs.value(i));
        }
    }
    out
}

/// `restored_from`, `restore_reason` and `offsets_total` of `t` in `ktable_tables`.
async fn origin(engine: &Engine) -> (String, Option<String>, i64) {
    let batches = query(
        engine,
        "SELECT restored_from, restore_reason, offsets_total FROM ktable_tables WHERE name = 't'",
    )
    .await;
    let batch = &batches[0];
    let reason = batch.column(1).as_string::<i32>();
    (
        batch.column(0).as_string::<i32>().value(0).to_string(),
        (!reason.is_null(0)).then(|| reason.value(0).to_string()),
        batch
            .column(2)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0),
    )
}

/// `n` random upserts and tombstones over `keys` keys, applied to `model` too.
fn random_changes(
    rng: &mut ChaCha8Rng,
    n: usize,
    keys: u32,
    model: &mut BTreeMap<String, i64>,
) -> Vec<RawRecord> {
    (0..n)
        .map(|_| {
            let key = format!("k{}", rng.random_range(0..keys));
            if rng.random_bool(0.2) {
                model.remove(&key);
                tombstone(&key)
            } else {
                let v: i64 = rng.random_range(0..1_000_000);
                model.insert(key.clone(), v);
                json_record(&key, json!({ "v": v }))
            }
        })
        .collect()
}

async fn stop(engine: Engine) {
    engine.stop();
    drop(engine);
    // Let the consumers leave before the next engine's join the same group.
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_restart_from_a_checkpoint_equals_a_full_restore() {
    let broker = Broker::start();
    let brokers = broker.brokers();
    let topic = broker.topic("ckpt-model", 3, &[]).await;
    let producer = broker.raw_producer();
    let state = state_dir("model");
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut model = BTreeMap::new();
    for round in 0..3 {
        produce_all(
            &producer,
            &topic,
            &random_changes(&mut rng, 3_000, 400, &mut model),
        )
        .await;
        let engine = start(&brokers, &state, &topic, COLUMNS).await;
        assert_eq!(contents(&engine).await, model, "round {round}");
        let (from, reason, offsets) = origin(&engine).await;
        if round == 0 {
            assert_eq!(
                (from.as_str(), reason.as_deref()),
                ("full", Some("no checkpoint"))
            );
            assert_eq!(offsets, 3_000);
        } else {
            assert_eq!((from.as_str(), reason), ("checkpoint", None));
            assert_eq!(
                offsets, 3_000,
                "only the records after the checkpoint are read"
            );
        }
        // Changes after the restore, then the checkpoint, then more after it.
        produce_all(
            &producer,
            &topic,
            &random_changes(&mut rng, 500, 400, &mut model),
        )
        .await;
        crate::eventually("the live changes", || {
            let stats = &engine.sources()[0].stats;
            stats.upserts + stats.tombstones >= 3_500
        })
        .await;
        let model_at_checkpoint = model.clone();
        assert_eq!(engine.checkpoint().await.expect("checkpoint"), 1);
        assert_eq!(contents(&engine).await, model_at_checkpoint);
        assert_eq!(
            engine.checkpoint().await.expect("checkpoint"),
            0,
            "nothing new"
        );
        stop(engine).await;
    }

    // The same topic restored in full, without the state folder, agrees.
    let full = Engine::new(EngineConfig::new(&brokers).request_timeout(Duration::from_secs(5)));
    full.sql(&format!(
        "CREATE TABLE t ({COLUMNS}) WITH (topic = '{topic}', format = 'json')"
    ))
    .await
    .expect("create table");
    full.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    assert_eq!(contents(&full).await, model);
    let _ = std::fs::remove_dir_all(&state);
}

/// A typed table of `topic` with checkpoints under `state`, started and restored.
async fn typed_table(
    brokers: &str,
    state: &Path,
    topic: &str,
) -> KTable<String, serde_json::Value> {
    let table: KTable<String, serde_json::Value> = KTable::new(
        ConsumerConfig::new(brokers, "ckpt-typed").request_timeout(Duration::from_secs(5)),
        topic,
        StringSerializer,
        JsonSerializer,
    )
    .await
    .expect("table")
    .with_checkpoints(state, StringSerializer, JsonSerializer)
    .checkpoint_interval(Duration::from_secs(3600));
    table.start().await.expect("start");
    table.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    table
}

fn typed_contents(table: &KTable<String, serde_json::Value>) -> BTreeMap<String, i64> {
    table
        .snapshot()
        .into_iter()
        .map(|(k, v)| (k, v["v"].as_i64().expect("v")))
        .collect()
}

#[tokio::test]
async fn a_typed_ktable_restarts_from_its_checkpoint_to_the_same_state() {
    let broker = Broker::start();
    let brokers = broker.brokers();
    let topic = broker.topic("ckpt-typed", 3, &[]).await;
    let producer = broker.raw_producer();
    let state = state_dir("typed");
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut model = BTreeMap::new();
    for round in 0..3 {
        produce_all(
            &producer,
            &topic,
            &random_changes(&mut rng, 2_000, 300, &mut model),
        )
        .await;
        let table = typed_table(&brokers, &state, &topic).await;
        assert_eq!(typed_contents(&table), model, "round {round}");
        let stats = table.stats();
        if round == 0 {
            assert!(
                matches!(&stats.restored_from, RestoreOrigin::FullInstead(r) if r == "no checkpoint"),
                "{:?}",
                stats.restored_from
            );
            assert!(table.last_checkpoint().is_none());
        } else {
            assert!(
                matches!(stats.restored_from, RestoreOrigin::Checkpoint(_)),
                "{:?}",
                stats.restored_from
            );
            assert_eq!(
                stats.offsets_total, 2_000,
                "only the records after the checkpoint are read"
            );
            assert!(table.last_checkpoint().is_some());
        }
        produce_all(
            &producer,
            &topic,
            &random_changes(&mut rng, 400, 300, &mut model),
        )
        .await;
        crate::eventually("the live changes", || typed_contents(&table) == model).await;
        // A subscriber cannot resume from before what the checkpoint loaded.
        if round > 0 {
            assert!(table.subscribe_after(Default::default()).is_err());
        }
        table.stop();
        table.stopped().await;
        assert!(table.checkpoint().await.expect("checkpoint"), "written");
        assert!(
            !table.checkpoint().await.expect("checkpoint"),
            "nothing new"
        );
    }

    // A value type the checkpoint's entries do not decode into: a full restore.
    let table: KTable<String, u64> = KTable::new(
        ConsumerConfig::new(&brokers, "ckpt-typed").request_timeout(Duration::from_secs(5)),
        &topic,
        StringSerializer,
        JsonSerializer,
    )
    .await
    .expect("table")
    .with_checkpoints(&state, StringSerializer, JsonSerializer);
    table.start().await.expect("start");
    table.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    assert!(
        matches!(&table.stats().restored_from, RestoreOrigin::FullInstead(r) if r.contains("schema changed")),
        "{:?}",
        table.stats().restored_from
    );
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test]
async fn a_changed_declaration_or_a_damaged_checkpoint_restores_in_full() {
    let broker = Broker::start();
    let brokers = broker.brokers();
    let topic = broker.topic("ckpt-schema", 2, &[]).await;
    let producer = broker.raw_producer();
    let state = state_dir("schema");
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut model = BTreeMap::new();
    produce_all(
        &producer,
        &topic,
        &random_changes(&mut rng, 1_000, 100, &mut model),
    )
    .await;
    let engine = start(&brokers, &state, &topic, COLUMNS).await;
    engine.checkpoint().await.expect("checkpoint");
    stop(engine).await;

    // Another column: the checkpoint's rows do not have it.
    let wider = format!("{COLUMNS}, w TEXT");
    let engine = start(&brokers, &state, &topic, &wider).await;
    let (from, reason, _) = origin(&engine).await;
    assert_eq!(from, "full");
    assert_eq!(
        reason.as_deref(),
        Some("schema changed since the checkpoint")
    );
    assert_eq!(contents(&engine).await, model);
    stop(engine).await;

    // Files an interrupted checkpoint leaves do not hide the committed one.
    let engine = start(&brokers, &state, &topic, COLUMNS).await;
    assert_eq!(
        origin(&engine).await.0,
        "checkpoint",
        "the wider table wrote none"
    );
    produce_all(
        &producer,
        &topic,
        &random_changes(&mut rng, 10, 100, &mut model),
    )
    .await;
    crate::eventually("the change", || {
        let stats = &engine.sources()[0].stats;
        stats.upserts + stats.tombstones >= 10
    })
    .await;
    assert_eq!(engine.checkpoint().await.expect("checkpoint"), 1);
    stop(engine).await;
    let folder = state.join("tables").join("t");
    std::fs::write(folder.join("manifest.json.tmp"), b"{\"format_vers").expect("leftover");
    std::fs::write(
        folder.join("snapshot-00000000000000000099.arrow.tmp"),
        b"ARROW1",
    )
    .expect("leftover");
    let engine = start(&brokers, &state, &topic, COLUMNS).await;
    assert_eq!(origin(&engine).await.0, "checkpoint");
    assert_eq!(contents(&engine).await, model);
    stop(engine).await;

    // A snapshot damaged on disk is refused, not loaded.
    let snapshot = std::fs::read_dir(&folder)
        .expect("folder")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "arrow"))
        .expect("a snapshot");
    let bytes = std::fs::read(&snapshot).expect("snapshot");
    std::fs::write(&snapshot, &bytes[..bytes.len() - 100]).expect("truncate");
    let engine = start(&brokers, &state, &topic, COLUMNS).await;
    let (from, reason, _) = origin(&engine).await;
    assert_eq!(from, "full");
    assert!(
        reason
            .as_deref()
            .unwrap_or("")
            .starts_with("checkpoint unreadable"),
        "{reason:?}"
    );
    assert_eq!(contents(&engine).await, model);
    let _ = std::fs::remove_dir_all(&state);
}

/// A log shorter than the checkpoint (here: the same topic name on a new cluster,
/// which has no topic ids to tell it apart) must not be resumed past its end.
#[tokio::test]
async fn offsets_above_the_high_watermark_restore_in_full() {
    let state = state_dir("truncated");
    let topic = "ckpt-truncated";
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let first = Broker::Mock(MockCluster::new(1).expect("mock cluster"));
    if let Broker::Mock(cluster) = &first {
        cluster.create_topic(topic, 1, 1).expect("topic");
    }
    let mut model = BTreeMap::new();
    produce_all(
        &first.raw_producer(),
        topic,
        &random_changes(&mut rng, 500, 50, &mut model),
    )
    .await;
    let engine = start(&first.brokers(), &state, topic, COLUMNS).await;
    engine.checkpoint().await.expect("checkpoint");
    stop(engine).await;

    let second = Broker::Mock(MockCluster::new(1).expect("mock cluster"));
    if let Broker::Mock(cluster) = &second {
        cluster.create_topic(topic, 1, 1).expect("topic");
    }
    let mut model = BTreeMap::new();
    produce_all(
        &second.raw_producer(),
        topic,
        &random_changes(&mut rng, 100, 50, &mut model),
    )
    .await;
    let engine = start(&second.brokers(), &state, topic, COLUMNS).await;
    let (from, reason, _) = origin(&engine).await;
    assert_eq!(from, "full");
    let reason = reason.unwrap_or_default();
    assert!(reason.contains("above the high watermark 100"), "{reason}");
    assert_eq!(contents(&engine).await, model);
    let _ = std::fs::remove_dir_all(&state);
}

fn admin(brokers: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client")
}

/// Checkpoints `topic` (after `records`), applies `change` to the topic, produces
/// `after` more records, restarts: the restart must restore in full for `expected`.
async fn fallback_case(
    broker: &Broker,
    topic: &str,
    state: &Path,
    rng: &mut ChaCha8Rng,
    change: impl std::future::Future<Output = ()>,
    expected: &str,
) {
    let brokers = broker.brokers();
    let producer = broker.raw_producer();
    let mut model = BTreeMap::new();
    produce_all(&producer, topic, &random_changes(rng, 300, 50, &mut model)).await;
    let engine = start(&brokers, state, topic, COLUMNS).await;
    assert_eq!(engine.checkpoint().await.expect("checkpoint"), 1);
    stop(engine).await;
    change.await;
    produce_all(
        &producer,
        topic,
        &random_changes(rng, 600, 50, &mut BTreeMap::new()),
    )
    .await;
    let engine = start(&brokers, state, topic, COLUMNS).await;
    let (from, reason, _) = origin(&engine).await;
    assert_eq!(from, "full", "{expected}");
    let reason = reason.unwrap_or_default();
    assert!(
        reason.contains(expected),
        "expected '{expected}', got '{reason}'"
    );
    stop(engine).await;
}

#[tokio::test]
async fn each_change_of_the_topic_restores_in_full_with_its_reason() {
    let Some(broker) =
        Broker::real_or_skip("each_change_of_the_topic_restores_in_full_with_its_reason")
    else {
        return;
    };
    let brokers = broker.brokers();
    let admin = admin(&brokers);
    let options = AdminOptions::new();
    let mut rng = ChaCha8Rng::seed_from_u64(14);

    // Partitions added.
    let topic = broker.topic("ckpt-partitions", 2, &[]).await;
    let state = state_dir("partitions");
    let grow = async {
        let result = admin
            .create_partitions(&[NewPartitions::new(&topic, 3)], &options)
            .await
            .expect("create partitions");
        result.into_iter().for_each(|r| {
            r.expect("partitions added");
        });
    };
    fallback_case(
        &broker,
        &topic,
        &state,
        &mut rng,
        grow,
        "partition count changed since the checkpoint (2 then, 3 now)",
    )
    .await;

    // Records written after the checkpoint deleted: its offsets are below the log start.
    let topic = broker.topic("ckpt-deleted", 1, &[]).await;
    let state = state_dir("deleted");
    let delete = async {
        let mut since = BTreeMap::new();
        let records = random_changes(&mut ChaCha8Rng::seed_from_u64(2), 100, 50, &mut since);
        produce_all(&broker.raw_producer(), &topic, &records).await;
        let mut upto = TopicPartitionList::new();
        upto.add_partition_offset(&topic, 0, Offset::End)
            .expect("offset");
        admin
            .delete_records(&upto, &options)
            .await
            .expect("delete records");
    };
    fallback_case(
        &broker,
        &topic,
        &state,
        &mut rng,
        delete,
        "below the log start offset",
    )
    .await;

    // Deleted and created again under the same name, with more records than before:
    // offsets alone would not tell, the topic id does.
    let topic = broker.topic("ckpt-recreated", 1, &[]).await;
    let state = state_dir("recreated");
    let recreate = async {
        admin
            .delete_topics(&[topic.as_str()], &options)
            .await
            .expect("delete topic")
            .into_iter()
            .for_each(|r| {
                r.expect("topic deleted");
            });
        let deadline = std::time::Instant::now() + READY_TIMEOUT;
        loop {
            let created = admin
                .create_topics(
                    &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
                    &options,
                )
                .await
                .expect("create topic");
            if created.iter().all(Result::is_ok) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "topic not recreated: {created:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The first produce to the new topic must find a leader.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut filler = BTreeMap::new();
        produce_all(
            &broker.raw_producer(),
            &topic,
            &random_changes(&mut ChaCha8Rng::seed_from_u64(1), 400, 50, &mut filler),
        )
        .await;
    };
    fallback_case(
        &broker,
        &topic,
        &state,
        &mut rng,
        recreate,
        "topic recreated since the checkpoint",
    )
    .await;

    // Older than delete.retention.ms, with records written since.
    let topic = broker
        .topic(
            "ckpt-retention",
            1,
            &[
                ("cleanup.policy", "compact"),
                ("delete.retention.ms", "1500"),
            ],
        )
        .await;
    let state = state_dir("retention");
    let facts = ktable::kafka::describe_topic(
        &ktable::kafka::ConsumerConfig::new(&brokers, "facts"),
        &topic,
        Duration::from_secs(5),
    )
    .expect("describe topic");
    assert!(facts.topic_id.is_some(), "{facts:?}");
    assert_eq!(
        facts.delete_retention,
        Some(Duration::from_millis(1500)),
        "{facts:?}"
    );
    // The sleep starts when the case awaits it, after the checkpoint.
    let wait = async { tokio::time::sleep(Duration::from_millis(1600)).await };
    fallback_case(
        &broker,
        &topic,
        &state,
        &mut rng,
        wait,
        "older than the topic's delete.retention.ms",
    )
    .await;
}

/// A free loopback port for a server started as a separate process.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `ktable serve` as a child process with the state folder; killed on drop.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(config: &Path) -> Server {
    let log = std::fs::File::create(config.with_extension("log")).expect("log file");
    Server(
        std::process::Command::new(env!("CARGO_BIN_EXE_ktable"))
            .args(["serve", "--config", config.to_str().expect("utf-8 path")])
            .env_remove("KTABLE_BROKERS")
            .env_remove("KTABLE_STATE_DIR")
            .env("RUST_LOG", "info,rdkafka=warn")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("ktable serve starts"),
    )
}

/// Connects to the server at `port` and waits until `t` is ready; returns the client
/// and `(restored_from, restore_reason)`.
async fn ready_client(port: u16) -> (tokio_postgres::Client, String, Option<String>) {
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not get ready"
        );
        let connected = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user=admin password='s3cret' dbname=ktable"),
            tokio_postgres::NoTls,
        )
        .await;
        let Ok((client, connection)) = connected else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(connection);
        loop {
            assert!(
                std::time::Instant::now() < deadline,
                "the table did not get ready"
            );
            let rows = client
                .query(
                    "SELECT ready, restored_from, restore_reason FROM ktable_tables WHERE name = 't'",
                    &[],
                )
                .await
                .expect("ktable_tables");
            if let Some(row) = rows.first() {
                if row.get::<_, bool>(0) {
                    return (client, row.get(1), row.get(2));
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The crash test's config, on a port free now: a port kept across rounds could be
/// taken by another test's listener while no server holds it.
fn crash_config(state: &Path, broker: &Broker, sql: &Path) -> (PathBuf, u16) {
    let port = free_port();
    let config = state.join("ktable.toml");
    std::fs::write(
        &config,
        format!(
            "brokers = \"{}\"\nsql = \"{}\"\nlisten = \"127.0.0.1:{port}\"\n\
             state_dir = \"{}\"\ncheckpoint_interval = \"20ms\"\n\n\
             [[users]]\nname = \"admin\"\npassword = \"s3cret\"\n",
            broker.brokers(),
            sql.display(),
            state.join("state").display(),
        ),
    )
    .expect("config file");
    (config, port)
}

/// The real server killed with SIGKILL at random moments, with checkpoints written
/// every few milliseconds so that kills land during checkpoint writes too: every
/// restart holds exactly the model, and never loads a torn checkpoint.
#[tokio::test]
async fn a_server_killed_at_random_moments_restarts_to_the_same_state() {
    let broker = Broker::start();
    let topic = broker.topic("ckpt-crash", 2, &[]).await;
    let producer = broker.raw_producer();
    let state = state_dir("crash");
    std::fs::create_dir_all(&state).expect("state folder");
    let sql = state.join("tables.sql");
    std::fs::write(
        &sql,
        format!("CREATE TABLE t ({COLUMNS}) WITH (topic = '{topic}', format = 'json');\n"),
    )
    .expect("sql file");
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let mut model = BTreeMap::new();
    produce_all(
        &producer,
        &topic,
        &random_changes(&mut rng, 20_000, 5_000, &mut model),
    )
    .await;
    let mut from_checkpoint = 0;
    let mut interrupted = 0;
    for round in 0..8 {
        let (config, port) = crash_config(&state, &broker, &sql);
        let server = serve(&config);
        let (client, from, reason) = ready_client(port).await;
        if let Some(reason) = &reason {
            assert!(
                !reason.contains("unreadable"),
                "round {round}: a torn checkpoint was found: {reason}"
            );
        }
        from_checkpoint += usize::from(from == "checkpoint");
        let rows = client
            .query("SELECT id, v FROM t", &[])
            .await
            .expect("rows");
        let found: BTreeMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(
            found.len(),
            model.len(),
            "round {round} ({from}, {reason:?})"
        );
        assert!(
            found == model,
            "round {round} ({from}, {reason:?}): state differs from the model"
        );
        // Changes while it runs and checkpoints, then a kill at a random moment.
        let changes = random_changes(&mut rng, 2_000, 5_000, &mut model);
        produce_all(&producer, &topic, &changes).await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
        drop(client);
        drop(server);
        let folder = state.join("state").join("tables").join("t");
        interrupted += std::fs::read_dir(&folder)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
                    .count()
            })
            .unwrap_or(0);
    }
    eprintln!("{interrupted} checkpoint files were left half-written by the kills");
    assert!(
        from_checkpoint >= 4,
        "only {from_checkpoint} of 8 restarts used a checkpoint"
    );
    let _ = std::fs::remove_dir_all(&state);
}

//! Broker faults, injected with the MockCluster whatever broker the suite runs on:
//! a table answers from its last state while the broker is away, is not ready
//! meanwhile, and converges to the model, every record applied once, when it is
//! back; a table declared while the broker is down starts when it comes up;
//! failing fetches delay a restore but do not change what it restores. The real
//! broker stopped and restarted is `broker_restart.rs`.

use crate::broker::{json_record, produce_all, tombstone, RawProducer, RawRecord};
use crate::ops::{endpoint, get};
use crate::{eventually, READY_TIMEOUT};
use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use ktable::kafka::{BytesSerializer, KafkaProducer, ProducerConfig};
use ktable::sql::{Engine, EngineConfig};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

type Cluster = MockCluster<'static, DefaultProducerContext>;

/// A one-broker MockCluster (so that taking the broker down is a full outage) with
/// `topic` of `partitions` partitions.
fn cluster(topic: &str, partitions: i32) -> Cluster {
    let cluster = MockCluster::new(1).expect("start MockCluster");
    cluster
        .create_topic(topic, partitions, 1)
        .expect("create topic");
    cluster
}

fn producer(brokers: &str) -> RawProducer {
    KafkaProducer::new(
        ProducerConfig::new(brokers).property("linger.ms", "5"),
        BytesSerializer,
        BytesSerializer,
    )
    .expect("producer")
}

fn engine(brokers: &str) -> Arc<Engine> {
    // The MockCluster answers a fetch only when fetch.wait.max.ms expires.
    Arc::new(Engine::new(
        EngineConfig::new(brokers).property("fetch.wait.max.ms", "10"),
    ))
}

/// `count` records over 50 keys, every seventh a tombstone, applied to `model`.
fn records(from: usize, count: usize, model: &mut BTreeMap<String, i64>) -> Vec<RawRecord> {
    changes(50, 7, from, count, model)
}

/// Records `from..from + count` over `keys` keys (`k0`, `k1`...), each holding its
/// number as `v`, every `tombstone_every`th a tombstone; applied to `model`.
pub(crate) fn changes(
    keys: usize,
    tombstone_every: usize,
    from: usize,
    count: usize,
    model: &mut BTreeMap<String, i64>,
) -> Vec<RawRecord> {
    (from..from + count)
        .map(|i| {
            let key = format!("k{}", i % keys);
            if i % tombstone_every == 3 {
                model.remove(&key);
                tombstone(&key)
            } else {
                model.insert(key.clone(), i as i64);
                json_record(&key, json!({ "v": i }))
            }
        })
        .collect()
}

/// The table `t` as `id -> v`.
pub(crate) async fn table_state(engine: &Engine) -> BTreeMap<String, i64> {
    let batches = engine
        .sql("SELECT id, v FROM t")
        .await
        .expect("query")
        .collect()
        .await
        .expect("rows");
    let mut state = BTreeMap::new();
    for batch in batches {
        let ids = batch.column(0).as_string_view_opt().map(|a| {
            a.iter()
                .map(|v| v.unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        });
        let ids = ids.unwrap_or_else(|| {
            batch
                .column(0)
                .as_string::<i32>()
                .iter()
                .map(|v| v.unwrap_or_default().to_string())
                .collect()
        });
        let values = batch.column(1).as_primitive::<Int64Type>();
        for (row, id) in ids.into_iter().enumerate() {
            state.insert(id, values.value(row));
        }
    }
    state
}

/// Upserts plus tombstones applied by `t`: each record once means the records sent.
pub(crate) fn applied(engine: &Engine) -> u64 {
    let stats = &engine.sources()[0].stats;
    stats.upserts + stats.tombstones
}

pub(crate) async fn create_table(engine: &Engine, topic: &str) {
    engine
        .sql(&format!(
            "CREATE TABLE t (id TEXT PRIMARY KEY, v BIGINT) WITH (topic = '{topic}')"
        ))
        .await
        .expect("create table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_serves_its_last_state_through_a_broker_outage_and_converges_after() {
    let topic = "faults-outage";
    let cluster = cluster(topic, 2);
    let brokers = cluster.bootstrap_servers();
    let mut model = BTreeMap::new();
    let first = records(0, 300, &mut model);
    produce_all(&producer(&brokers), topic, &first).await;
    let engine = engine(&brokers);
    create_table(&engine, topic).await;
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    let (http, _stop) = endpoint(&engine, None).await;
    assert_eq!(table_state(&engine).await, model);
    let before_outage = model.clone();

    cluster.broker_down(-1).expect("broker down");
    // Records written during the outage wait in the producer (idempotent: no
    // duplicates when it retries) until the broker is back.
    let during = records(300, 200, &mut model);
    let sending = tokio::spawn({
        let brokers = brokers.clone();
        async move { produce_all(&producer(&brokers), topic, &during).await }
    });
    // Meanwhile the table answers, from the state it had, and is not ready: it does
    // not follow its topic.
    let mut not_ready = None;
    for _ in 0..100 {
        assert_eq!(table_state(&engine).await, before_outage);
        let ready = get(http, "/readyz").await;
        if ready.status == 503 {
            not_ready = Some(ready.body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let not_ready = not_ready.expect("/readyz turns 503 during the outage");
    assert!(
        not_ready.starts_with("t: Kafka unreachable, serving the last state: "),
        "{not_ready}"
    );
    let stats = engine.sources()[0].stats.clone();
    assert!(stats.kafka_unreachable && stats.restored && !stats.ready && stats.running);
    assert!(stats.last_error.is_some());
    assert_eq!(table_state(&engine).await, before_outage);

    cluster.broker_up(-1).expect("broker up");
    sending.await.expect("the producer task");
    let after = records(500, 100, &mut model);
    produce_all(&producer(&brokers), topic, &after).await;
    eventually("the table to apply every record", || {
        applied(&engine) >= 600
    })
    .await;
    assert_eq!(table_state(&engine).await, model);
    // Nothing applied twice (a duplicate would count again) and nothing lost.
    assert_eq!(applied(&engine), 600);
    assert_eq!(engine.sources()[0].stats.lag_offsets(), 0);
    // Ready again, and the outage's error is gone.
    engine
        .wait_until_ready(READY_TIMEOUT)
        .await
        .expect("ready again");
    // librdkafka may still report a connection of the outage after records flowed
    // again: readiness then drops for the next reachability probe, so wait for it.
    let ready = ready_soon(http).await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    eventually("the outage's error to clear", || {
        let stats = &engine.sources()[0].stats;
        !stats.kafka_unreachable && stats.last_error.is_none()
    })
    .await;
}

/// `/readyz` once it says ready, or its last answer when it has not within
/// [`READY_TIMEOUT`].
async fn ready_soon(http: std::net::SocketAddr) -> crate::ops::HttpResponse {
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    loop {
        let ready = get(http, "/readyz").await;
        if ready.status == 200 || std::time::Instant::now() > deadline {
            return ready;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_declared_while_the_broker_is_down_starts_when_it_is_up() {
    let topic = "faults-start-down";
    let cluster = cluster(topic, 2);
    let brokers = cluster.bootstrap_servers();
    let mut model = BTreeMap::new();
    produce_all(&producer(&brokers), topic, &records(0, 300, &mut model)).await;
    cluster.broker_down(-1).expect("broker down");

    let engine = Arc::new(Engine::new(
        EngineConfig::new(&brokers)
            .property("fetch.wait.max.ms", "10")
            .request_timeout(Duration::from_secs(2)),
    ));
    // The declaration succeeds: the table exists, empty and not ready, and says why.
    create_table(&engine, topic).await;
    let (http, _stop) = endpoint(&engine, None).await;
    let waiting = get(http, "/readyz").await;
    assert_eq!(waiting.status, 503);
    assert!(
        waiting.body.starts_with("t: waiting for Kafka to start: "),
        "{}",
        waiting.body
    );
    assert!(table_state(&engine).await.is_empty());
    let stats = engine.sources()[0].stats.clone();
    assert!(stats.kafka_unreachable && !stats.running && !stats.ready);
    // A second source declared meanwhile waits with it instead of failing.
    engine
        .sql(&format!(
            "CREATE STREAM s (v BIGINT) WITH (topic = '{topic}')"
        ))
        .await
        .expect("a stream declared while the broker is down");
    // Dropping a waiting source ends its wait: it never starts.
    engine
        .sql("DROP STREAM s")
        .await
        .expect("drop the waiting stream");

    cluster.broker_up(-1).expect("broker up");
    engine
        .wait_until_ready(READY_TIMEOUT)
        .await
        .expect("ready once the broker is up");
    assert_eq!(table_state(&engine).await, model);
    let ready = ready_soon(http).await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    eventually("the outage's error to clear", || {
        engine.sources()[0].stats.last_error.is_none()
    })
    .await;
    let sources = engine.sources();
    assert_eq!(sources.len(), 1, "the dropped stream stays dropped");
    assert!(sources[0].stats.running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_fetches_hold_readiness_and_then_restore_exactly() {
    let topic = "faults-fetch";
    let cluster = cluster(topic, 3);
    let brokers = cluster.bootstrap_servers();
    let mut model = BTreeMap::new();
    let written = records(0, 3_000, &mut model);
    produce_all(&producer(&brokers), topic, &written).await;

    // Every fetch fails until the errors are cleared: retriable errors, and
    // disconnects in the middle of a request.
    let errors: Vec<RDKafkaRespErr> = (0..1_000)
        .map(|i| match i % 3 {
            0 => RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            1 => RDKafkaRespErr::RD_KAFKA_RESP_ERR__TRANSPORT,
            _ => RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        })
        .collect();
    cluster.request_errors(RDKafkaApiKey::Fetch, &errors);
    let engine = engine(&brokers);
    create_table(&engine, topic).await;
    let (http, _stop) = endpoint(&engine, None).await;
    let not_ready = get(http, "/readyz").await;
    assert_eq!(not_ready.status, 503, "{}", not_ready.body);
    assert!(
        not_ready.body.starts_with("t: restoring: 0/3000 offsets"),
        "{}",
        not_ready.body
    );
    // Queries answer meanwhile, from what has been restored: nothing yet.
    assert!(table_state(&engine).await.is_empty());

    cluster.clear_request_errors(RDKafkaApiKey::Fetch);
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    let ready = get(http, "/readyz").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    assert_eq!(table_state(&engine).await, model);
    assert_eq!(applied(&engine), 3_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_few_failed_fetches_and_a_slow_broker_only_delay_a_restore() {
    let topic = "faults-slow";
    let cluster = cluster(topic, 2);
    let brokers = cluster.bootstrap_servers();
    let mut model = BTreeMap::new();
    let written = records(0, 2_000, &mut model);
    produce_all(&producer(&brokers), topic, &written).await;
    cluster
        .broker_round_trip_time(1, Duration::from_millis(50))
        .expect("rtt");
    cluster.request_errors(
        RDKafkaApiKey::Fetch,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__TRANSPORT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__TRANSPORT,
        ],
    );
    let engine = engine(&brokers);
    create_table(&engine, topic).await;
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    assert_eq!(table_state(&engine).await, model);
    assert_eq!(applied(&engine), 2_000);
}

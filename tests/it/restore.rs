//! Restoring a table from a topic's history, then following it live.

use crate::broker::{json_record, produce_all, tombstone, Broker};
use crate::{eventually, json_table, READY_TIMEOUT};
use ktable::kafka::{
    ConsumerConfig, Deserializer, JsonSerializer, SerializationError, StringSerializer,
};
use ktable::{KTable, KTableError};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn multi_partition_restore_keeps_the_last_value_per_key() {
    let broker = Broker::start();
    let topic = broker.topic("restore", 4, &[]).await;
    let producer = broker.raw_producer();
    let mut records = Vec::new();
    for version in 0..5 {
        for key in 0..200 {
            records.push(json_record(
                &format!("k{key}"),
                json!({ "v": version, "key": key }),
            ));
        }
    }
    for key in (0..200).step_by(10) {
        records.push(tombstone(&format!("k{key}")));
    }
    produce_all(&producer, &topic, &records).await;

    let table = json_table(&broker.brokers(), &topic, "restore-group").await;
    table.wait_until_ready(READY_TIMEOUT).await.expect("ready");

    let stats = table.stats();
    assert!(stats.ready);
    assert_eq!(stats.partitions.len(), 4);
    assert_eq!(stats.offsets_done, stats.offsets_total);
    assert_eq!(stats.offsets_total, records.len() as u64);
    assert_eq!(stats.upserts, 1_000);
    assert_eq!(stats.tombstones, 20);
    assert_eq!(table.len(), 180);
    assert_eq!(stats.rows, 180);
    for key in 0..200 {
        let value = table.get(&format!("k{key}"));
        if key % 10 == 0 {
            assert_eq!(value, None, "k{key} was deleted");
        } else {
            assert_eq!(value, Some(json!({ "v": 4, "key": key })));
        }
    }
}

#[tokio::test]
async fn live_upserts_and_tombstones_apply_after_ready() {
    let broker = Broker::start();
    let topic = broker.topic("live", 2, &[]).await;
    let producer = broker.raw_producer();
    produce_all(&producer, &topic, &[json_record("a", json!(1))]).await;

    let table = json_table(&broker.brokers(), &topic, "live-group").await;
    table.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    assert_eq!(table.get(&"a".into()), Some(json!(1)));

    produce_all(
        &producer,
        &topic,
        &[
            json_record("b", json!(2)),
            json_record("a", json!(3)),
            tombstone("b"),
        ],
    )
    .await;
    eventually("the live tombstone", || table.stats().tombstones == 1).await;
    assert_eq!(
        table.snapshot(),
        HashMap::from([("a".to_string(), json!(3))])
    );
    assert!(table.contains_key(&"a".into()));
    assert!(!table.contains_key(&"b".into()));
    assert!(table.stats().last_updated.is_some());
}

#[tokio::test]
async fn restore_ignores_offsets_committed_by_the_group() {
    let broker = Broker::start();
    let topic = broker.topic("committed", 2, &[]).await;
    let producer = broker.raw_producer();
    let records: Vec<_> = (0..50)
        .map(|i| json_record(&format!("k{i}"), json!(i)))
        .collect();
    produce_all(&producer, &topic, &records).await;

    // The group has committed the end of every partition, as if it had read everything.
    let group = format!("{topic}-group");
    let committer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .set("group.id", &group)
        .create()
        .expect("consumer");
    let mut offsets = TopicPartitionList::new();
    for partition in 0..2 {
        let (_, high) = committer
            .fetch_watermarks(&topic, partition, Duration::from_secs(10))
            .expect("watermarks");
        offsets
            .add_partition_offset(&topic, partition, Offset::Offset(high))
            .expect("offset");
    }
    committer
        .commit(&offsets, CommitMode::Sync)
        .expect("commit group offsets");
    let committed = committer
        .committed_offsets(offsets.clone(), Duration::from_secs(10))
        .expect("read committed offsets");
    assert_eq!(committed.to_topic_map(), offsets.to_topic_map());

    let table = json_table(&broker.brokers(), &topic, &group).await;
    table.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    assert_eq!(table.len(), 50);
    assert_eq!(table.group_id(), group);
}

#[tokio::test]
async fn undecodable_records_are_counted_and_skipped() {
    let broker = Broker::start();
    let topic = broker.topic("bad", 1, &[]).await;
    let producer = broker.raw_producer();
    produce_all(
        &producer,
        &topic,
        &[
            json_record("a", json!({"ok": 1})),
            (Some(b"a".to_vec()), Some(b"{not json".to_vec())),
            (Some(vec![0xff, 0xfe]), Some(b"{}".to_vec())),
            (Some(vec![0xc3]), None),
            (None, Some(b"{}".to_vec())),
            json_record("b", json!({"ok": 2})),
        ],
    )
    .await;

    let table = json_table(&broker.brokers(), &topic, "bad-group").await;
    table.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    let stats = table.stats();
    assert_eq!(
        stats.bad_records, 3,
        "bad value, bad key, bad key of a tombstone"
    );
    assert_eq!(stats.null_keys, 1);
    assert_eq!(stats.upserts, 2);
    // The bad value did not replace or delete the good one before it.
    assert_eq!(table.get(&"a".into()), Some(json!({"ok": 1})));
    assert_eq!(table.get(&"b".into()), Some(json!({"ok": 2})));
}

#[tokio::test]
async fn typed_values_decode_into_structs() {
    #[derive(Debug, Clone, PartialEq, serde::Deserialize)]
    struct User {
        name: String,
        age: u32,
    }
    let broker = Broker::start();
    let topic = broker.topic("typed", 1, &[]).await;
    let producer = broker.raw_producer();
    produce_all(
        &producer,
        &topic,
        &[
            json_record("u1", json!({"name": "Ada", "age": 36})),
            json_record("u2", json!({"name": "Kid", "age": 9})),
            json_record("u3", json!({"name": "no age"})),
        ],
    )
    .await;
    let users: KTable<String, User> = KTable::new(
        ConsumerConfig::new(broker.brokers(), "typed-group"),
        topic.as_str(),
        StringSerializer,
        JsonSerializer,
    )
    .await
    .expect("table");
    users.start().await.expect("start");
    users.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    assert_eq!(
        users.stats().bad_records,
        1,
        "a value missing a field is bad"
    );
    let adults = users.filter(|_, u| u.age >= 18);
    assert_eq!(adults.keys().collect::<Vec<_>>(), vec!["u1"]);
    let names = users.map_values(|u| u.name.clone());
    assert_eq!(names.get("u2").map(String::as_str), Some("Kid"));
    let mut keys = users.keys();
    keys.sort();
    assert_eq!(keys, vec!["u1", "u2"]);
    assert!(users.wait_for_keys(2, Duration::from_millis(10)).await);
    assert!(!users.wait_for_keys(3, Duration::from_millis(50)).await);
}

#[tokio::test]
async fn a_missing_topic_fails_start_with_a_typed_error() {
    let broker = Broker::start();
    let table: KTable<String, serde_json::Value> = KTable::new(
        ConsumerConfig::new(broker.brokers(), "missing").request_timeout(Duration::from_secs(2)),
        "no-such-topic-anywhere",
        StringSerializer,
        JsonSerializer,
    )
    .await
    .expect("create");
    match table.start().await {
        Err(KTableError::TopicNotFound(topic)) => assert_eq!(topic, "no-such-topic-anywhere"),
        other => panic!("expected TopicNotFound, got {other:?}"),
    }
    assert!(!table.is_running());
}

/// A value that counts how many of its kind are alive.
struct Counted(Arc<AtomicUsize>);

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.0.fetch_add(1, Ordering::SeqCst);
        Counted(Arc::clone(&self.0))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Decodes any value into a [`Counted`].
struct CountingDeserializer(Arc<AtomicUsize>);

impl Deserializer<Counted> for CountingDeserializer {
    fn deserialize(&self, _bytes: &[u8]) -> Result<Counted, SerializationError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Counted(Arc::clone(&self.0)))
    }
}

/// Values that updates and deletes replace are freed (by the decoding stage, as it
/// decodes later records), not kept: once two more records are applied, the values
/// alive are the table's own.
#[tokio::test]
async fn replaced_and_deleted_values_are_freed() {
    let broker = Broker::start();
    let topic = broker.topic("freed", 2, &[]).await;
    let producer = broker.raw_producer();
    let mut records = Vec::new();
    for version in 0..20 {
        for key in 0..50 {
            records.push(json_record(&format!("k{key}"), json!(version)));
        }
    }
    for key in 0..10 {
        records.push(tombstone(&format!("k{key}")));
    }
    produce_all(&producer, &topic, &records).await;
    let alive = Arc::new(AtomicUsize::new(0));
    let table: KTable<String, Counted> = KTable::new(
        ConsumerConfig::new(broker.brokers(), "freed-group"),
        &topic,
        StringSerializer,
        CountingDeserializer(Arc::clone(&alive)),
    )
    .await
    .expect("table");
    table.start().await.expect("start");
    table.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    assert_eq!(table.len(), 40);
    // Each extra record is applied after everything before it; the second one's
    // decoding frees what the batches before it replaced.
    for extra in ["x1", "x2"] {
        produce_all(&producer, &topic, &[json_record(extra, json!(0))]).await;
        eventually(extra, || table.contains_key(&extra.to_string())).await;
    }
    assert_eq!(table.len(), 42);
    assert_eq!(
        alive.load(Ordering::SeqCst),
        42,
        "values alive beyond the table's"
    );
    drop(table);
}

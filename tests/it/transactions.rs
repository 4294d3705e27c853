//! Read-committed tables never show records of aborted transactions, and become ready
//! even though the log ends with a transaction marker no consumer ever receives.
//!
//! The MockCluster cannot check the first part: its Fetch handler always answers with no
//! aborted transactions (librdkafka 2.12, `rdkafka_mock_handlers.c`), so a read-committed
//! consumer sees aborted records there. That test runs on the real broker only.

use crate::broker::Broker;
use crate::{json_table, READY_TIMEOUT};
use ktable::kafka::{JsonSerializer, KafkaProducer, ProducerConfig, StringSerializer};
use serde_json::{json, Value};
use std::time::Duration;

/// Writes: a committed `a`, an aborted `a` and `ghost`, a committed `b`. The log ends
/// with a commit marker.
async fn produce_transactions(broker: &Broker, topic: &str, abort_middle: bool) {
    let producer: KafkaProducer<String, Value, _, _> = KafkaProducer::new(
        ProducerConfig::new(broker.brokers()).transactional_id(format!("{topic}-tx")),
        StringSerializer,
        JsonSerializer,
    )
    .expect("transactional producer");
    let timeout = Duration::from_secs(30);
    let send = |key: &str, value: Value| {
        let key = key.to_string();
        let producer = &producer;
        async move {
            producer
                .send(topic, Some(&key), Some(&value))
                .await
                .expect("send")
        }
    };

    producer.begin_transaction().expect("begin");
    send("a", json!("committed")).await;
    producer.commit_transaction(timeout).expect("commit");

    if abort_middle {
        producer.begin_transaction().expect("begin");
        send("a", json!("aborted")).await;
        send("ghost", json!("aborted")).await;
        producer.abort_transaction(timeout).expect("abort");
    }

    producer.begin_transaction().expect("begin");
    send("b", json!("committed")).await;
    producer.commit_transaction(timeout).expect("commit");
}

#[tokio::test]
async fn committed_transactions_are_visible_and_their_markers_do_not_block_readiness() {
    let broker = Broker::start();
    let topic = broker.topic("txn-commit", 2, &[]).await;
    produce_transactions(&broker, &topic, false).await;
    let table = json_table(&broker.brokers(), &topic, "txn-group").await;
    table
        .wait_until_ready(READY_TIMEOUT)
        .await
        .expect("ready although the log ends with a commit marker");
    assert_eq!(table.get(&"a".into()), Some(json!("committed")));
    assert_eq!(table.get(&"b".into()), Some(json!("committed")));
    let stats = table.stats();
    assert_eq!(stats.offsets_done, stats.offsets_total);
}

#[tokio::test]
async fn aborted_transactions_are_invisible() {
    let Some(broker) = Broker::real_or_skip("aborted_transactions_are_invisible") else {
        return;
    };
    let topic = broker.topic("txn-abort", 2, &[]).await;
    produce_transactions(&broker, &topic, true).await;

    let table = json_table(&broker.brokers(), &topic, "txn-group").await;
    table
        .wait_until_ready(READY_TIMEOUT)
        .await
        .expect("ready although the log ends with a commit marker");
    assert_eq!(table.get(&"a".into()), Some(json!("committed")));
    assert_eq!(table.get(&"b".into()), Some(json!("committed")));
    assert_eq!(table.get(&"ghost".into()), None);
    let stats = table.stats();
    assert_eq!(stats.upserts, 2);
    assert_eq!(stats.offsets_done, stats.offsets_total);
}

//! Read-committed tables never show records of aborted transactions, and become ready
//! even though the log ends with a transaction marker no consumer ever receives.

use crate::broker::Broker;
use crate::{json_table, READY_TIMEOUT};
use ktable::kafka::{JsonSerializer, KafkaProducer, ProducerConfig, StringSerializer};
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn aborted_transactions_are_invisible() {
    let broker = Broker::start();
    let topic = broker.topic("txn", 2, &[]).await;
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
        let topic = &topic;
        async move { producer.send(topic, Some(&key), Some(&value)).await.expect("send") }
    };

    producer.begin_transaction().expect("begin");
    send("a", json!("committed")).await;
    producer.commit_transaction(timeout).expect("commit");

    producer.begin_transaction().expect("begin");
    send("a", json!("aborted")).await;
    send("ghost", json!("aborted")).await;
    producer.abort_transaction(timeout).expect("abort");

    producer.begin_transaction().expect("begin");
    send("b", json!("committed")).await;
    producer.commit_transaction(timeout).expect("commit");

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

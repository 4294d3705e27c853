//! The typed producer and consumer carry everything Kafka has.

use crate::broker::Broker;
use ktable::kafka::{
    ConsumerConfig, Header, JsonSerializer, KafkaConsumer, KafkaError, KafkaProducer,
    ProducerConfig, Record, StringSerializer,
};
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn records_round_trip_with_headers_tombstones_and_null_keys() {
    let broker = Broker::start();
    let topic = broker.topic("roundtrip", 1, &[]).await;
    let producer: KafkaProducer<String, Value, _, _> = KafkaProducer::new(
        ProducerConfig::new(broker.brokers()),
        StringSerializer,
        JsonSerializer,
    )
    .expect("producer");
    let key = "user-1".to_string();
    let value = json!({"name": "Ada"});
    let first = producer
        .send_record(
            Record::new(&topic)
                .key(&key)
                .value(&value)
                .header("trace", Some(b"abc"))
                .header("empty", None)
                .timestamp(1_700_000_000_000),
        )
        .await
        .expect("send");
    producer
        .send_tombstone(&topic, &key)
        .await
        .expect("tombstone");
    producer
        .send(&topic, None, Some(&json!(7)))
        .await
        .expect("no key");

    let consumer: KafkaConsumer<String, Value, _, _> = KafkaConsumer::new(
        ConsumerConfig::new(broker.brokers(), format!("{topic}-reader")),
        StringSerializer,
        JsonSerializer,
    )
    .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let recv = || async {
        tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("a record within 30 s")
            .expect("decoded record")
    };

    let m = recv().await;
    assert_eq!(
        (m.topic(), m.partition(), m.offset()),
        (topic.as_str(), 0, first.offset)
    );
    assert_eq!(m.key(), Some(&key));
    assert_eq!(m.value(), Some(&value));
    assert_eq!(m.timestamp(), Some(1_700_000_000_000));
    assert_eq!(
        m.headers(),
        &[
            Header {
                key: "trace".into(),
                value: Some(b"abc".to_vec())
            },
            Header {
                key: "empty".into(),
                value: None
            },
        ]
    );
    let m = recv().await;
    assert!(m.is_tombstone());
    assert_eq!(m.key(), Some(&key));
    let m = recv().await;
    assert_eq!(m.into_key_value(), (None, Some(json!(7))));
}

#[tokio::test]
async fn an_undecodable_record_is_a_serialization_error() {
    let broker = Broker::start();
    let topic = broker.topic("undecodable", 1, &[]).await;
    let raw = broker.raw_producer();
    raw.send(&topic, Some(&b"k".to_vec()), Some(&b"not json".to_vec()))
        .await
        .expect("send");
    let consumer: KafkaConsumer<String, Value, _, _> = KafkaConsumer::new(
        ConsumerConfig::new(broker.brokers(), format!("{topic}-reader")),
        StringSerializer,
        JsonSerializer,
    )
    .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let result = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("a record within 30 s");
    match result {
        Err(KafkaError::Serialization(e)) => assert_eq!(e.format, "json"),
        other => panic!("expected a serialization error, got {other:?}"),
    }
}

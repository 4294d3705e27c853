//! On a real broker: a topic restored after the log cleaner compacted it equals the
//! table restored before compaction (offset gaps do not confuse restore progress).

use crate::broker::{json_record, produce_all, tombstone, Broker};
use crate::{json_table, READY_TIMEOUT};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::json;
use std::time::{Duration, Instant};

/// Counts the records a partition still holds by reading it to the end.
async fn retained_records(brokers: &str, topic: &str) -> usize {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "compaction-counter")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .expect("assign");
    consumer.assign(&assignment).expect("assign");
    let mut count = 0;
    loop {
        match consumer.recv().await {
            Ok(_) => count += 1,
            Err(KafkaError::PartitionEOF(_)) => return count,
            Err(e) => panic!("counting records: {e}"),
        }
    }
}

#[tokio::test]
async fn restore_after_log_compaction_equals_restore_before() {
    let Some(broker) = Broker::real_or_skip("restore_after_log_compaction_equals_restore_before")
    else {
        return;
    };
    let topic = broker
        .topic(
            "compacted",
            1,
            &[
                ("cleanup.policy", "compact"),
                ("segment.ms", "100"),
                ("min.cleanable.dirty.ratio", "0.001"),
                ("min.compaction.lag.ms", "0"),
                ("delete.retention.ms", "100"),
            ],
        )
        .await;
    let producer = broker.raw_producer();
    let mut records = Vec::new();
    for version in 0..20 {
        for key in 0..50 {
            records.push(json_record(&format!("k{key}"), json!({ "v": version })));
        }
    }
    for key in 0..10 {
        records.push(tombstone(&format!("k{key}")));
    }
    produce_all(&producer, &topic, &records).await;
    let produced = records.len();

    let before = json_table(&broker.brokers(), &topic, "before-compaction").await;
    before.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    let expected = before.snapshot();
    assert_eq!(expected.len(), 40);

    // Records only roll the segment when they arrive after segment.ms: keep writing a
    // value already there until the cleaner has compacted the closed segments.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut retained = produced + 1;
    while retained > produced / 2 {
        assert!(
            Instant::now() < deadline,
            "the log cleaner did not compact {topic}: {retained} of {produced} records remain"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        produce_all(&producer, &topic, &[json_record("k49", json!({ "v": 19 }))]).await;
        retained = retained_records(&broker.brokers(), &topic).await;
    }
    eprintln!("compacted: {retained} records remain of {produced} produced");

    let after = json_table(&broker.brokers(), &topic, "after-compaction").await;
    after
        .wait_until_ready(READY_TIMEOUT)
        .await
        .expect("ready over offset gaps");
    assert_eq!(after.snapshot(), expected);
    let stats = after.stats();
    assert_eq!(stats.offsets_done, stats.offsets_total);
    assert!(
        (stats.upserts + stats.tombstones) < produced as u64,
        "the table restored from the compacted log, not the full one"
    );
}

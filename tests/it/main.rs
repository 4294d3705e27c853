//! Integration tests: behaviour through the public API against a real Kafka-protocol
//! broker (MockCluster by default, Apache Kafka when `KAFKA_BROKERS` is set).
//! One test binary, because every binary links librdkafka and links are slow.

mod broker;
mod broker_restart;
mod checkpoint;
mod cli;
mod compaction;
mod faults;
mod formats;
mod fuzz_corpus;
mod kafka_layer;
mod lifecycle;
mod memory_limit;
mod ops;
mod producer_ordering;
mod randomized;
mod restore;
mod server;
mod server_connections;
mod server_fast_path;
mod server_frontend;
mod server_security;
mod server_statements;
mod sql;
mod subscribe;
mod topic_deleted;
mod transactions;

use ktable::kafka::JsonSerializer;
use ktable::kafka::{ConsumerConfig, StringSerializer};
use ktable::KTable;
use std::time::Duration;

/// How long a test waits for a table to restore before failing.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A started table of JSON values keyed by strings.
pub async fn json_table(
    brokers: &str,
    topic: &str,
    group: &str,
) -> KTable<String, serde_json::Value> {
    let table = KTable::new(
        ConsumerConfig::new(brokers, group).request_timeout(Duration::from_secs(10)),
        topic,
        StringSerializer,
        JsonSerializer,
    )
    .await
    .expect("create table");
    table.start().await.expect("start table");
    table
}

/// Waits until `condition` holds, polling; panics with `what` after `READY_TIMEOUT`.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

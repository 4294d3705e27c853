//! A topic deleted while its table is served (real broker: the MockCluster cannot
//! delete topics): the table keeps answering from its last state and says why it
//! no longer follows the topic in `last_error`; a table of another topic is not
//! affected.

use crate::broker::{json_record, produce_all, Broker};
use crate::READY_TIMEOUT;
use ktable::sql::{Engine, EngineConfig};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use serde_json::json;
use std::time::{Duration, Instant};

async fn count(engine: &Engine, table: &str) -> i64 {
    let batches = engine
        .sql(&format!("SELECT count(*) FROM {table}"))
        .await
        .expect("query")
        .collect()
        .await
        .expect("rows");
    batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .expect("count is BIGINT")
        .value(0)
}

fn last_error(engine: &Engine, table: &str) -> Option<String> {
    engine
        .sources()
        .into_iter()
        .find(|s| s.name == table)
        .and_then(|s| s.stats.last_error)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_topic_is_reported_and_other_tables_keep_ingesting() {
    let Some(kafka) = Broker::real_or_skip("topic_deleted") else {
        return;
    };
    let doomed = kafka.topic("deleted", 2, &[]).await;
    let kept = kafka.topic("kept", 2, &[]).await;
    let producer = kafka.raw_producer();
    let rows = |prefix: &str| {
        (0..100)
            .map(|i| json_record(&format!("{prefix}{i}"), json!({ "v": i })))
            .collect::<Vec<_>>()
    };
    produce_all(&producer, &doomed, &rows("a")).await;
    produce_all(&producer, &kept, &rows("a")).await;
    let engine = Engine::new(EngineConfig::new(kafka.brokers()));
    for (table, topic) in [("doomed", &doomed), ("kept", &kept)] {
        engine
            .sql(&format!(
                "CREATE TABLE {table} (id TEXT PRIMARY KEY, v BIGINT) WITH (topic = '{topic}')"
            ))
            .await
            .expect("create table");
    }
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", kafka.brokers())
        .create()
        .expect("admin client");
    for result in admin
        .delete_topics(&[doomed.as_str()], &AdminOptions::new())
        .await
        .expect("delete topic")
    {
        result.expect("topic deleted");
    }
    let deadline = Instant::now() + READY_TIMEOUT;
    let error = loop {
        if let Some(error) = last_error(&engine, "doomed") {
            break error;
        }
        assert!(Instant::now() < deadline, "no error for the deleted topic");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("last_error of the deleted topic's table: {error}");
    assert!(
        error.to_lowercase().contains("unknown topic"),
        "the error should name the cause: {error}"
    );
    // Its rows stay queryable; the other table keeps ingesting.
    assert_eq!(count(&engine, "doomed").await, 100);
    produce_all(&producer, &kept, &rows("b")).await;
    let deadline = Instant::now() + READY_TIMEOUT;
    while count(&engine, "kept").await < 200 {
        assert!(
            Instant::now() < deadline,
            "the other table stopped ingesting"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last_error(&engine, "kept"), None);
}

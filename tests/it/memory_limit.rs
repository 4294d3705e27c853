//! `table_memory_limit`: a table that grows past it stops ingesting with the reason in
//! `ktable_tables.last_error`; what it holds stays queryable and the other tables go on.

use crate::broker::{json_record, produce_all, Broker};
use crate::READY_TIMEOUT;
use arrow::array::{Array, AsArray};
use ktable::sql::{Engine, EngineConfig};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_table_past_its_memory_limit_stops_alone() {
    let broker = Broker::start();
    let big = broker.topic("mem-big", 1, &[]).await;
    let small = broker.topic("mem-small", 1, &[]).await;
    let producer = broker.raw_producer();
    let filler = "x".repeat(200);
    let records: Vec<_> = (0..5_000)
        .map(|i| json_record(&format!("k{i}"), json!({ "v": i, "s": filler })))
        .collect();
    produce_all(&producer, &big, &records).await;
    let first: Vec<_> = (0..10)
        .map(|i| json_record(&format!("k{i}"), json!({ "v": i, "s": "a" })))
        .collect();
    produce_all(&producer, &small, &first).await;

    let engine = Engine::new(
        EngineConfig::new(broker.brokers())
            .request_timeout(Duration::from_secs(5))
            .table_memory_limit(256 << 10),
    );
    for (name, topic) in [("big", &big), ("small", &small)] {
        engine
            .sql(&format!(
                "CREATE TABLE {name} (id TEXT PRIMARY KEY, v BIGINT, s TEXT) WITH (topic = '{topic}')"
            ))
            .await
            .expect("create table");
    }
    crate::eventually("the big table to stop", || {
        engine
            .sources()
            .iter()
            .any(|s| s.name == "big" && !s.stats.running)
    })
    .await;
    let stopped = engine
        .sources()
        .into_iter()
        .find(|s| s.name == "big")
        .expect("big");
    let error = stopped.stats.last_error.unwrap_or_default();
    assert!(error.contains("table_memory_limit"), "{error}");
    assert!(
        stopped.stats.rows > 0 && stopped.stats.rows < 5_000,
        "{} rows",
        stopped.stats.rows
    );
    let table = engine.table("big").expect("big");
    // Past the limit by at most one batch (up to MAX_BATCH records of ~230 bytes).
    assert!(
        table.memory_bytes() < (256 << 10) + ktable::source::MAX_BATCH * 768,
        "{} bytes",
        table.memory_bytes()
    );

    // What it holds is still queried; the other table keeps ingesting.
    let counted = engine
        .sql("SELECT count(*) FROM big")
        .await
        .expect("count")
        .collect()
        .await
        .expect("count");
    assert_eq!(
        counted[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0) as usize,
        stopped.stats.rows
    );
    let error_shown = engine
        .sql("SELECT last_error FROM ktable_tables WHERE name = 'big'")
        .await
        .expect("system table")
        .collect()
        .await
        .expect("system table");
    let shown = error_shown[0].column(0).as_string::<i32>();
    assert!(!shown.is_null(0) && shown.value(0).contains("memory limit"));
    let second: Vec<_> = (0..10)
        .map(|i| json_record(&format!("k{i}"), json!({ "v": i + 100, "s": "b" })))
        .collect();
    produce_all(&producer, &small, &second).await;
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    loop {
        let batches = engine
            .sql("SELECT min(v) FROM small")
            .await
            .expect("min")
            .collect()
            .await
            .expect("min");
        let min = batches[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0);
        if min == 100 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the small table stopped too"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(engine
        .sources()
        .iter()
        .any(|s| s.name == "small" && s.stats.running));
}

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
    assert!(error.contains("memory limit"), "{error}");
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

/// `tables_memory_limit` bounds the tables together: with two tables that cannot
/// both fit, ingestion stops near the limit with the reason shown, and what was
/// loaded stays queryable. A table's own `memory_limit` (in `WITH`) stops it alone.
#[tokio::test]
async fn the_tables_together_stay_within_the_servers_budget() {
    let broker = Broker::start();
    let producer = broker.raw_producer();
    let filler = "x".repeat(200);
    let records: Vec<_> = (0..5_000)
        .map(|i| json_record(&format!("k{i}"), json!({ "v": i, "s": filler })))
        .collect();
    let mut topics = Vec::new();
    for name in ["budget-a", "budget-b", "budget-c"] {
        let topic = broker.topic(name, 1, &[]).await;
        produce_all(&producer, &topic, &records).await;
        topics.push(topic);
    }
    // Each table takes well over 1 MiB when whole.
    let limit = 1_536 << 10;
    let engine = Engine::new(
        EngineConfig::new(broker.brokers())
            .request_timeout(Duration::from_secs(5))
            .tables_memory_limit(limit),
    );
    for (name, topic) in ["a", "b"].iter().zip(&topics) {
        engine
            .sql(&format!(
                "CREATE TABLE {name} (id TEXT PRIMARY KEY, v BIGINT, s TEXT) WITH (topic = '{topic}')"
            ))
            .await
            .expect("create table");
    }
    crate::eventually("a table to stop at the budget", || {
        engine.sources().iter().any(|s| !s.stats.running)
    })
    .await;
    // Let whatever was in flight land.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sources = engine.sources();
    let stopped: Vec<_> = sources.iter().filter(|s| !s.stats.running).collect();
    for source in &stopped {
        let error = source.stats.last_error.clone().unwrap_or_default();
        assert!(error.contains("tables_memory_limit"), "{error}");
    }
    let held: usize = ["a", "b"]
        .iter()
        .map(|name| engine.table(name).expect("table").memory_bytes())
        .sum();
    // Past the limit by at most one batch per table (records of ~230 bytes).
    assert!(
        held < limit + 2 * ktable::source::MAX_BATCH * 768,
        "{held} bytes held"
    );
    let rows: usize = sources.iter().map(|s| s.stats.rows).sum();
    assert!(rows < 10_000, "{rows} rows: the budget stopped nothing");
    let counted = engine
        .sql("SELECT count(*) FROM a")
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
        engine.table("a").expect("a").len()
    );

    // A table's own limit, without a server-wide one.
    let engine =
        Engine::new(EngineConfig::new(broker.brokers()).request_timeout(Duration::from_secs(5)));
    engine
        .sql(&format!(
            "CREATE TABLE c (id TEXT PRIMARY KEY, v BIGINT, s TEXT) \
             WITH (topic = '{}', memory_limit = '256 KiB')",
            topics[2]
        ))
        .await
        .expect("create table with a limit");
    crate::eventually("table c to stop at its own limit", || {
        engine
            .sources()
            .iter()
            .any(|s| s.name == "c" && !s.stats.running)
    })
    .await;
    let c_source = engine
        .sources()
        .into_iter()
        .find(|s| s.name == "c")
        .expect("c");
    let error = c_source.stats.last_error.unwrap_or_default();
    assert!(error.contains("its memory limit"), "{error}");
    let c = engine.table("c").expect("c");
    assert!(
        c.memory_bytes() < (256 << 10) + ktable::source::MAX_BATCH * 768,
        "{} bytes",
        c.memory_bytes()
    );
    let refused = engine
        .sql(&format!(
            "CREATE STREAM s (v BIGINT) WITH (topic = '{}', memory_limit = '1 MiB')",
            topics[2]
        ))
        .await
        .expect_err("a stream is bounded by its retention");
    assert!(refused.to_string().contains("retention_bytes"), "{refused}");
}

//! Live change feeds: `Engine::subscribe` (SQL `SUBSCRIBE`, Arrow batches) and
//! `KTable::subscribe` (typed changes), on the same change log.
//!
//! Declares a `users` table, subscribes to the adults among them, and prints the
//! snapshot, then each upsert and delete as it is produced, with its partition and
//! offset (what a client would resume from with `AS OF OFFSETS`). Runs on an
//! in-process Kafka cluster: `cargo run --example subscribe`.

use datafusion::arrow::util::pretty::pretty_format_batches;
use futures::StreamExt;
use ktable::kafka::{
    ConsumerConfig, JsonSerializer, KafkaProducer, ProducerConfig, StringSerializer,
};
use ktable::sql::{Engine, EngineConfig};
use ktable::KTable;
use rdkafka::mocking::MockCluster;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = MockCluster::new(1)?;
    cluster.create_topic("users", 2, 1)?;
    let brokers = cluster.bootstrap_servers();
    let producer: KafkaProducer<String, Value, _, _> = KafkaProducer::new(
        ProducerConfig::new(&brokers),
        StringSerializer,
        JsonSerializer,
    )?;
    for (id, name, age) in [("u1", "Ada", 36), ("u2", "Kid", 9)] {
        let user = json!({"name": name, "age": age});
        producer
            .send("users", Some(&id.to_string()), Some(&user))
            .await?;
    }

    // SQL: the engine's table, a filtered subscription with progress rows.
    let engine = Engine::new(EngineConfig::new(&brokers));
    engine
        .register(
            engine.context(),
            "CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, age INT) WITH (topic = 'users')",
        )
        .await?;
    engine.wait_until_ready(Duration::from_secs(30)).await?;
    let mut adults = engine
        .subscribe("SUBSCRIBE (SELECT id, name FROM users WHERE age >= 18) WITH (PROGRESS = true)")
        .await?;

    // Typed: the same changes as Rust values.
    let typed: KTable<String, Value> = KTable::new(
        ConsumerConfig::new(&brokers, "subscribe-example"),
        "users",
        StringSerializer,
        JsonSerializer,
    )
    .await?;
    typed.start().await?;
    typed.wait_until_ready(Duration::from_secs(30)).await?;
    let mut changes = Box::pin(typed.subscribe());

    // Changes while we listen: a new adult, a birthday, a delete.
    producer
        .send(
            "users",
            Some(&"u3".to_string()),
            Some(&json!({"name": "Grace", "age": 45})),
        )
        .await?;
    producer
        .send(
            "users",
            Some(&"u2".to_string()),
            Some(&json!({"name": "Kid", "age": 18})),
        )
        .await?;
    producer
        .send("users", Some(&"u1".to_string()), None)
        .await?;

    println!("SUBSCRIBE (SELECT id, name FROM users WHERE age >= 18):");
    let mut changed = 0;
    while changed < 3 {
        let Ok(Some(batch)) = tokio::time::timeout(Duration::from_secs(10), adults.next()).await
        else {
            break;
        };
        let batch = batch?;
        let ops = batch
            .column_by_name("ktable_op")
            .map(|c| c.len())
            .unwrap_or(0);
        changed += (0..ops)
            .filter(|&i| {
                let op = datafusion::arrow::array::AsArray::as_string::<i32>(batch.column(2));
                matches!(op.value(i), "upsert" | "delete")
            })
            .count();
        println!("{}", pretty_format_batches(&[batch])?);
    }

    println!("KTable::subscribe:");
    for _ in 0..3 {
        match tokio::time::timeout(Duration::from_secs(10), changes.next()).await {
            Ok(Some(Ok(change))) => println!(
                "  {} -> {:?} (partition {}, offset {})",
                change.key, change.value, change.partition, change.offset
            ),
            _ => break,
        }
    }
    typed.stop();
    engine.stop();
    Ok(())
}

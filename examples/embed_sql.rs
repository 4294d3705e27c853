//! Kafka tables and streams inside your own DataFusion `SessionContext`.
//!
//! Declares a `users` table (a compacted topic: one row per key) and an `orders` stream
//! (an append-only topic), then enriches orders with the users' current state in SQL,
//! and serves key lookups through the engine's prepared statements: recognized once,
//! then read straight from the table's key index with no planning per lookup.
//! Runs on an in-process Kafka cluster, so it needs nothing installed:
//! `cargo run --example embed_sql`.

use datafusion::arrow::util::pretty::print_batches;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::prelude::SessionContext;
use ktable::kafka::{JsonSerializer, KafkaProducer, ProducerConfig, StringSerializer};
use ktable::sql::{Engine, EngineConfig, Output, StatementKind};
use rdkafka::mocking::MockCluster;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = MockCluster::new(1)?;
    cluster.create_topic("users", 2, 1)?;
    cluster.create_topic("orders", 2, 1)?;
    let brokers = cluster.bootstrap_servers();

    let producer: KafkaProducer<String, Value, _, _> = KafkaProducer::new(
        ProducerConfig::new(&brokers),
        StringSerializer,
        JsonSerializer,
    )?;
    for (id, name, age) in [("u1", "Ada", 36), ("u2", "Grace", 45), ("u3", "Kid", 9)] {
        let user = json!({"name": name, "age": age});
        producer
            .send("users", Some(&id.to_string()), Some(&user))
            .await?;
    }
    for (i, user, amount) in [
        (1, "u1", 20.0),
        (2, "u2", 7.5),
        (3, "u1", 12.25),
        (4, "u3", 3.0),
    ] {
        let order = json!({"order_id": format!("o{i}"), "user_id": user, "amount": amount});
        producer
            .send("orders", Some(&format!("o{i}")), Some(&order))
            .await?;
    }

    // Your context; the engine owns the Kafka consumers and registers the relations.
    let ctx = SessionContext::new();
    let engine = Engine::new(EngineConfig::new(&brokers));
    engine
        .register(
            &ctx,
            "CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, age INT) WITH (topic = 'users')",
        )
        .await?;
    engine
        .register(
            &ctx,
            "CREATE STREAM orders (order_id TEXT, user_id TEXT, amount DOUBLE) WITH (topic = 'orders')",
        )
        .await?;
    engine.wait_until_ready(Duration::from_secs(30)).await?;

    ctx.sql(
        "SELECT u.name, count(*) AS orders, sum(o.amount) AS total \
         FROM orders o JOIN users u ON o.user_id = u.id \
         WHERE u.age >= 18 GROUP BY u.name ORDER BY total DESC",
    )
    .await?
    .show()
    .await?;
    ctx.sql("SELECT name, kind, rows, ready, offsets_done, offsets_total FROM ktable_tables")
        .await?
        .show()
        .await?;

    // A prepared lookup: parsed, planned and recognized once; each execution reads
    // the key index. The same fast path serves the PostgreSQL server's clients.
    let by_id = engine
        .prepare(&ctx, "SELECT name, age FROM users WHERE id = $1")
        .await?;
    assert_eq!(by_id.kind(), StatementKind::PointLookup);
    for id in ["u1", "u3", "nobody"] {
        let key = ParamValues::List(vec![ScalarValue::from(id).into()]);
        if let Output::Rows(rows) = engine.execute(&ctx, &by_id, key).await? {
            let rows: Vec<_> = futures::TryStreamExt::try_collect(rows).await?;
            println!("user {id}:");
            print_batches(&rows)?;
        }
    }
    // Or, without a stream, the row itself.
    let grace = engine.lookup(&by_id, Some("u2"))?;
    println!("user u2 has {} row", grace.num_rows());
    engine.stop();
    Ok(())
}

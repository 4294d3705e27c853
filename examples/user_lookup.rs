//! A typed lookup table: materialize a compacted `users` topic as a `KTable<String, User>`
//! and serve lookups from memory while updates keep arriving.
//!
//! Runs on an in-process Kafka cluster (librdkafka's MockCluster), so it needs nothing
//! installed: `cargo run --example user_lookup`. Point `ConsumerConfig::new` at your own
//! brokers to use a real cluster.

use ktable::kafka::{
    ConsumerConfig, JsonSerializer, KafkaProducer, ProducerConfig, StringSerializer,
};
use ktable::KTable;
use rdkafka::mocking::MockCluster;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    name: String,
    email: String,
    age: u32,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A Kafka-protocol broker inside this process, with a 3-partition topic.
    let cluster = MockCluster::new(1)?;
    cluster.create_topic("users", 3, 1)?;
    let brokers = cluster.bootstrap_servers();

    // Some history: three users, one of them updated, one deleted by a tombstone.
    let producer = KafkaProducer::new(
        ProducerConfig::new(&brokers),
        StringSerializer,
        JsonSerializer,
    )?;
    for (id, name, age) in [("u1", "Ada", 36), ("u2", "Grace", 45), ("u3", "Alan", 41)] {
        let user = User {
            name: name.into(),
            email: format!("{id}@example.com"),
            age,
        };
        producer
            .send("users", Some(&id.to_string()), Some(&user))
            .await?;
    }
    let older_ada = User {
        name: "Ada".into(),
        email: "ada@example.com".into(),
        age: 37,
    };
    producer
        .send("users", Some(&"u1".to_string()), Some(&older_ada))
        .await?;
    producer.send_tombstone("users", &"u3".to_string()).await?;

    // The table restores from the earliest offset, then follows the topic live.
    let users: KTable<String, User> = KTable::new(
        ConsumerConfig::new(&brokers, "user-lookup-example"),
        "users",
        StringSerializer,
        JsonSerializer,
    )
    .await?;
    users.start().await?;
    users.wait_until_ready(Duration::from_secs(30)).await?;

    println!("u1 -> {:?}", users.get(&"u1".to_string()));
    println!(
        "u3 -> {:?} (deleted by a tombstone)",
        users.get(&"u3".to_string())
    );
    let over_40 = users.filter(|_, user| user.age > 40);
    println!("over 40: {:?}", over_40.keys().collect::<Vec<_>>());

    // A live update shows up without restarting anything.
    let linus = User {
        name: "Linus".into(),
        email: "linus@example.com".into(),
        age: 28,
    };
    producer
        .send("users", Some(&"u4".to_string()), Some(&linus))
        .await?;
    users.wait_for_keys(3, Duration::from_secs(10)).await;
    let stats = users.stats();
    println!(
        "{} keys, ready: {}, {} upserts, {} tombstones, {} bad records",
        stats.rows, stats.ready, stats.upserts, stats.tombstones, stats.bad_records
    );
    users.stop();
    users.stopped().await;
    Ok(())
}

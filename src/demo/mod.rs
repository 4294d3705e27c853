//! The embedded default: an in-process Kafka cluster with demo topics that keep changing.
//!
//! `ktable serve` without brokers runs on this, so a newcomer sees live tables without
//! installing Kafka. The cluster is librdkafka's MockCluster, a real Kafka-protocol
//! broker inside the process. Two limits shape the generator: the cluster must stay on
//! the thread that created it, and it keeps at most 100,000 records per partition (older
//! ones are trimmed, not compacted), so the generator writes slowly enough that the
//! `users` history of a long session still fits.
//!
//! The `products` table is Avro with its schemas in a registry (`products`), served by
//! a small registry inside the process (`registry`).

pub mod products;
pub mod registry;

use crate::kafka::{
    BytesSerializer, JsonSerializer, KafkaError, KafkaProducer, ProducerConfig, StringSerializer,
};
use products::{ProductEncoder, DEMO_PRODUCTS, PRODUCTS_TOPIC};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use serde_json::{json, Value};
use std::time::Duration;

/// Topic of the demo table: one record per user, compacted semantics.
/// The demo's sources as `sql/demo.sql` declares them, built in: a binary run outside
/// a checkout (installed, or in a container) still has its demo.
pub const DEMO_DDL: &str = include_str!("../../sql/demo.sql");

pub const USERS_TOPIC: &str = "users";
/// Topic of the demo stream: append-only orders referencing users.
pub const ORDERS_TOPIC: &str = "orders";
/// How many distinct users the generator updates.
pub const DEMO_USERS: u32 = 1_000;

const CITIES: [&str; 5] = ["Lisbon", "Oslo", "Nairobi", "Lima", "Osaka"];

/// An in-process Kafka cluster holding the demo topics. Not `Send`: keep it where made.
pub struct DemoCluster {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl DemoCluster {
    /// Starts a one-broker cluster with the `users` (4 partitions), `orders`
    /// (2 partitions) and `products` (2 partitions) topics.
    pub fn start() -> Result<Self, KafkaError> {
        let cluster = MockCluster::new(1)?;
        cluster.create_topic(USERS_TOPIC, 4, 1)?;
        cluster.create_topic(ORDERS_TOPIC, 2, 1)?;
        cluster.create_topic(PRODUCTS_TOPIC, 2, 1)?;
        Ok(Self { cluster })
    }

    /// The bootstrap servers to give clients.
    pub fn brokers(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}

/// A JSON user profile for user number `id`, varying with `version`.
pub fn demo_user(id: u32, version: u64) -> Value {
    json!({
        "id": format!("user-{id}"),
        "name": format!("User {id}"),
        "email": format!("user{id}@example.com"),
        "age": 18 + (id as u64 * 7 + version) % 60,
        "city": CITIES[(id as usize + version as usize) % CITIES.len()],
    })
}

/// Writes every user and product once, then keeps updating users (deleting one now
/// and then) and products, and appending orders, `rate_per_sec` records a second,
/// until a producer fails.
pub async fn run_generator(brokers: String, rate_per_sec: u32) -> Result<(), KafkaError> {
    // ProducerConfig's defaults (idempotent, acks=all) keep each user's updates in the
    // order they were made, so the demo table always shows a user's latest profile.
    let config = ProducerConfig::new(brokers).property("linger.ms", "5");
    let producer: KafkaProducer<String, Value, _, _> =
        KafkaProducer::new(config.clone(), StringSerializer, JsonSerializer)?;
    let avro: KafkaProducer<Vec<u8>, Vec<u8>, _, _> =
        KafkaProducer::new(config, BytesSerializer, BytesSerializer)?;
    let encoder = ProductEncoder::new().map_err(avro_error)?;
    let send_product = |number: u32, version: u64| {
        let encoded = encoder.product(number, version, epoch_millis());
        let avro = &avro;
        async move {
            let (key, value) = encoded.map_err(avro_error)?;
            avro.send(PRODUCTS_TOPIC, Some(&key), Some(&value)).await
        }
    };
    for id in 0..DEMO_USERS {
        let user = demo_user(id, 0);
        producer
            .send(USERS_TOPIC, Some(&format!("user-{id}")), Some(&user))
            .await?;
    }
    for number in 0..DEMO_PRODUCTS {
        send_product(number, 0).await?;
    }
    let pause = Duration::from_secs(1) / rate_per_sec.max(1);
    let mut tick = tokio::time::interval(pause);
    for step in 1u64.. {
        tick.tick().await;
        let id = (step.wrapping_mul(2_654_435_761) % DEMO_USERS as u64) as u32;
        let key = format!("user-{id}");
        match step % 10 {
            0 => {
                producer.send_tombstone(USERS_TOPIC, &key).await?;
            }
            1..=3 => {
                let user = demo_user(id, step);
                producer.send(USERS_TOPIC, Some(&key), Some(&user)).await?;
            }
            4 => {
                send_product(id % DEMO_PRODUCTS, step).await?;
            }
            _ => {
                let order = json!({
                    "order_id": format!("order-{step}"),
                    "user_id": key,
                    "amount": (step % 500) as f64 / 4.0,
                    "ts": epoch_millis(),
                });
                producer
                    .send(ORDERS_TOPIC, Some(&format!("order-{step}")), Some(&order))
                    .await?;
            }
        }
    }
    Ok(())
}

fn avro_error(error: apache_avro::Error) -> KafkaError {
    KafkaError::Serialization(crate::kafka::SerializationError::new(
        "avro",
        error.to_string(),
    ))
}

/// Milliseconds since the epoch; orders carry it as their timestamp.
fn epoch_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

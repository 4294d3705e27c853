//! Shared pieces of the benchmarks: the broker, data generation and statistics.
#![allow(dead_code)] // each bench binary uses a different part of this module

use ktable::kafka::ProducerConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use std::time::Duration;

/// The broker a benchmark runs on: `KAFKA_BROKERS` if set, else an in-process MockCluster.
pub enum Broker {
    Mock(MockCluster<'static, DefaultProducerContext>),
    Real(String),
}

impl Broker {
    pub fn from_env() -> Broker {
        match std::env::var("KAFKA_BROKERS") {
            Ok(brokers) if !brokers.trim().is_empty() => Broker::Real(brokers),
            _ => Broker::Mock(MockCluster::new(1).expect("mock cluster")),
        }
    }

    pub fn brokers(&self) -> String {
        match self {
            Broker::Mock(cluster) => cluster.bootstrap_servers(),
            Broker::Real(brokers) => brokers.clone(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Broker::Mock(_) => "MockCluster (in-process)",
            Broker::Real(_) => "Apache Kafka (KAFKA_BROKERS)",
        }
    }

    pub async fn create_topic(&self, name: &str, partitions: i32) {
        match self {
            Broker::Mock(cluster) => cluster.create_topic(name, partitions, 1).expect("topic"),
            Broker::Real(brokers) => {
                use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
                let admin: AdminClient<_> = ClientConfig::new()
                    .set("bootstrap.servers", brokers)
                    .create()
                    .expect("admin");
                let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
                for result in admin
                    .create_topics(&[topic], &AdminOptions::new())
                    .await
                    .expect("create topic")
                {
                    result.expect("topic created");
                }
            }
        }
    }
}

/// A JSON user profile of about `target_len` bytes.
pub fn user_json(id: u64, version: u64, target_len: usize) -> Vec<u8> {
    let mut value = format!(
        r#"{{"id":"user-{id}","name":"User {id}","email":"user{id}@example.com","age":{},"score":{}.5,"city":"Lisbon","bio":""#,
        18 + (id + version) % 60,
        version
    );
    while value.len() + 2 < target_len {
        value.push('x');
    }
    value.push_str("\"}");
    value.into_bytes()
}

/// Produces `records` as fast as the producer allows and waits for every ack.
pub async fn produce<K: rdkafka::message::ToBytes>(
    brokers: &str,
    topic: &str,
    records: impl Iterator<Item = (K, Vec<u8>)>,
) {
    let producer: FutureProducer = ProducerConfig::new(brokers)
        .property("linger.ms", "20")
        .property("batch.num.messages", "10000")
        .property("queue.buffering.max.messages", "1000000")
        .to_client_config()
        .expect("producer config")
        .create()
        .expect("producer");
    let mut pending = Vec::with_capacity(10_000);
    for (key, value) in records {
        let record = FutureRecord::to(topic).key(&key).payload(&value);
        pending.push(
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("enqueue"),
        );
        if pending.len() == 10_000 {
            for delivery in futures::future::join_all(pending.drain(..)).await {
                delivery
                    .expect("delivery")
                    .map_err(|(e, _)| e)
                    .expect("acked");
            }
        }
    }
    for delivery in futures::future::join_all(pending).await {
        delivery
            .expect("delivery")
            .map_err(|(e, _)| e)
            .expect("acked");
    }
    let _ = rdkafka::producer::Producer::flush(&producer, Duration::from_secs(30));
}

/// The median of `samples` (sorted in place); NaN when there are none (a path the run
/// skipped).
pub fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The `q` quantile (0..=1) of sorted `samples`.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What machine the figures come from, for the report.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} CPUs, {model}")
}

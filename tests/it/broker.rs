//! The Kafka broker a test talks to: the in-process MockCluster by default, or the real
//! Apache Kafka named by `KAFKA_BROKERS` (which `.ci/run` starts).

use ktable::kafka::{BytesSerializer, KafkaProducer, ProducerConfig};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::ClientConfig;
use std::sync::atomic::{AtomicU32, Ordering};

pub type RawProducer = KafkaProducer<Vec<u8>, Vec<u8>, BytesSerializer, BytesSerializer>;

pub enum Broker {
    /// Must stay on the thread that made it (MockCluster is not `Send`).
    Mock(MockCluster<'static, DefaultProducerContext>),
    Real(String),
}

impl Broker {
    /// The real broker when `KAFKA_BROKERS` is set, else a fresh MockCluster.
    pub fn start() -> Broker {
        match real_brokers() {
            Some(brokers) => Broker::Real(brokers),
            None => Broker::Mock(MockCluster::new(3).expect("start MockCluster")),
        }
    }

    /// The real broker, for tests the MockCluster cannot run (log compaction). Without
    /// one the test is skipped with a message, unless `KTABLE_REQUIRE_KAFKA=1` (set by
    /// `.ci/run`) makes a missing broker a failure.
    pub fn real_or_skip(test: &str) -> Option<Broker> {
        if let Some(brokers) = real_brokers() {
            return Some(Broker::Real(brokers));
        }
        assert!(
            std::env::var("KTABLE_REQUIRE_KAFKA").as_deref() != Ok("1"),
            "{test} needs a real Kafka broker: KTABLE_REQUIRE_KAFKA=1 but KAFKA_BROKERS is not set"
        );
        eprintln!("SKIPPED {test}: needs a real Kafka broker (set KAFKA_BROKERS)");
        None
    }

    pub fn brokers(&self) -> String {
        match self {
            Broker::Mock(cluster) => cluster.bootstrap_servers(),
            Broker::Real(brokers) => brokers.clone(),
        }
    }

    /// Creates a topic with a name unique to this run; returns the name.
    pub async fn topic(&self, prefix: &str, partitions: i32, configs: &[(&str, &str)]) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        match self {
            Broker::Mock(cluster) => {
                cluster
                    .create_topic(&name, partitions, 1)
                    .expect("create mock topic");
            }
            Broker::Real(brokers) => {
                let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                    .set("bootstrap.servers", brokers)
                    .create()
                    .expect("admin client");
                let mut topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
                for (key, value) in configs {
                    topic = topic.set(key, value);
                }
                let results = admin
                    .create_topics(&[topic], &AdminOptions::new())
                    .await
                    .expect("create topic");
                for result in results {
                    result.expect("topic created");
                }
            }
        }
        name
    }

    /// A producer of raw bytes, so tests can write undecodable records too.
    pub fn raw_producer(&self) -> RawProducer {
        KafkaProducer::new(
            ProducerConfig::new(self.brokers()).property("linger.ms", "5"),
            BytesSerializer,
            BytesSerializer,
        )
        .expect("producer")
    }
}

fn real_brokers() -> Option<String> {
    std::env::var("KAFKA_BROKERS")
        .ok()
        .filter(|b| !b.trim().is_empty())
}

/// One record as raw bytes: `None` key or value are Kafka nulls.
pub type RawRecord = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Produces `records` in order (per partition, order is kept: one producer, enqueued in
/// sequence, idempotent) and waits for every acknowledgement.
pub async fn produce_all(producer: &RawProducer, topic: &str, records: &[RawRecord]) {
    for chunk in records.chunks(2_000) {
        let sends = chunk
            .iter()
            .map(|(key, value)| producer.send(topic, key.as_ref(), value.as_ref()));
        for delivery in futures::future::join_all(sends).await {
            delivery.expect("record delivered");
        }
    }
}

pub fn json_record(key: &str, value: serde_json::Value) -> RawRecord {
    (
        Some(key.as_bytes().to_vec()),
        Some(serde_json::to_vec(&value).expect("json")),
    )
}

pub fn tombstone(key: &str) -> RawRecord {
    (Some(key.as_bytes().to_vec()), None)
}

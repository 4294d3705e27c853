//! Loads `KEY<TAB>VALUE` lines from standard input into a new compacted Kafka topic,
//! waiting for every acknowledgement: the Kafka side of `scripts/bench-pgwire.sh`.
//!
//! ```sh
//! load_benchmark_topic 127.0.0.1:9092 bench-users 4 < users.tsv
//! ```
//!
//! The topic is created (compacted, replication factor 1) and must not exist yet, so a
//! table restored from it holds exactly the lines given. rdkafka directly rather than
//! the console producer of the Kafka jars: it is several times faster for a million
//! records and fails loudly on any record the broker did not acknowledge.

use ktable::kafka::ProducerConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext};
use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counts acknowledged and failed deliveries, reported by librdkafka's polling thread.
#[derive(Default)]
struct Deliveries {
    acked: AtomicU64,
    failed: AtomicU64,
}

struct Counting(Arc<Deliveries>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.0.acked.fetch_add(1, Ordering::Relaxed),
            Err((error, _)) => {
                // Only the first few: a broker that went away fails every record.
                if self.0.failed.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("load_benchmark_topic: delivery failed: {error}");
                }
                0
            }
        };
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [brokers, topic, partitions] = args.as_slice() else {
        return Err(
            "usage: load_benchmark_topic BROKERS TOPIC PARTITIONS < KEY<TAB>VALUE lines".into(),
        );
    };
    let partitions: i32 = partitions.parse()?;

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact");
    for result in admin
        .create_topics(&[new_topic], &AdminOptions::new())
        .await?
    {
        result.map_err(|(name, code)| format!("cannot create topic {name}: {code}"))?;
    }

    let deliveries = Arc::new(Deliveries::default());
    // Large batches and a short linger: throughput is all that matters for a load.
    // ktable's producer defaults (idempotent, acks=all) keep each key's last line last.
    let producer: ThreadedProducer<Counting> = ProducerConfig::new(brokers.as_str())
        .property("linger.ms", "20")
        .property("batch.num.messages", "10000")
        .property("batch.size", "1000000")
        .property("queue.buffering.max.messages", "500000")
        .to_client_config()?
        .create_with_context(Counting(Arc::clone(&deliveries)))?;

    let started = Instant::now();
    let mut sent = 0u64;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let (key, value) = line
            .split_once('\t')
            .ok_or_else(|| format!("line {} has no tab: {line:?}", sent + 1))?;
        let mut record = BaseRecord::to(topic).key(key).payload(value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                // The local queue is full: wait for acknowledgements to drain it.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
        sent += 1;
    }
    producer.flush(Duration::from_secs(120))?;

    let (acked, failed) = (
        deliveries.acked.load(Ordering::Relaxed),
        deliveries.failed.load(Ordering::Relaxed),
    );
    if acked != sent || failed != 0 {
        return Err(format!("{sent} records sent, {acked} acknowledged, {failed} failed").into());
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "load_benchmark_topic: {acked} records into {topic} ({partitions} partitions) in {seconds:.1} s ({:.0} records/s)",
        acked as f64 / seconds
    );
    Ok(())
}

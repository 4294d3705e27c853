//! A real Apache Kafka stopped and started again, its log kept, while a table
//! restores and while it follows live writes: the table answers from the state it
//! has meanwhile, is not ready while no broker answers, and converges to the model
//! with every record applied once.
//!
//! The test starts a broker of its own (`scripts/kafka-start.sh` on other ports and
//! another state folder), so the broker the rest of the suite shares is never
//! stopped. It runs where the suite runs on a real broker (`KAFKA_BROKERS`, set by
//! `.ci/run`, which also fetched the broker's jars).

use crate::broker::{produce_all, Broker, RawRecord};
use crate::faults::{applied, changes, create_table, table_state};
use crate::READY_TIMEOUT;
use ktable::sql::{Engine, EngineConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const PORT: u16 = 19092;
const CONTROLLER_PORT: u16 = 19093;

/// A broker this test starts, stops and restarts; deleted when dropped.
struct OwnBroker {
    state: PathBuf,
}

impl OwnBroker {
    async fn start() -> Self {
        let broker = Self {
            state: std::env::temp_dir()
                .join(format!("ktable-kafka-restart-{}", std::process::id())),
        };
        broker.run("kafka-start.sh", false).await;
        broker
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{PORT}")
    }

    /// Stops the broker, keeping its log for [`restart`](Self::restart).
    async fn stop(&self) {
        self.run("kafka-stop.sh", true).await;
    }

    async fn restart(&self) {
        self.run("kafka-start.sh", true).await;
    }

    async fn run(&self, script: &str, keep_state: bool) {
        let mut command = self.command(script, keep_state);
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("script task")
            .unwrap_or_else(|e| panic!("run {script}: {e}"));
        assert!(
            output.status.success(),
            "{script} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn command(&self, script: &str, keep_state: bool) -> Command {
        let mut command = Command::new(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("scripts")
                .join(script),
        );
        command
            .env("KAFKA_PORT", PORT.to_string())
            .env("KAFKA_CONTROLLER_PORT", CONTROLLER_PORT.to_string())
            .env("KTABLE_KAFKA_DIR", &self.state)
            .env("KAFKA_KEEP_STATE", if keep_state { "1" } else { "" });
        command
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = self.command("kafka-stop.sh", false).output();
    }
}

/// `count` records over 2,000 keys, every ninth a tombstone, applied to `model`.
fn records(from: usize, count: usize, model: &mut BTreeMap<String, i64>) -> Vec<RawRecord> {
    changes(2_000, 9, from, count, model)
}

/// Waits for `condition` on the engine's only source, up to the ready timeout.
async fn until(
    engine: &Engine,
    what: &str,
    condition: impl Fn(&ktable::source::SourceStats) -> bool,
) {
    let deadline = Instant::now() + READY_TIMEOUT;
    while !condition(&engine.sources()[0].stats) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            engine.sources()[0].stats
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_converges_through_broker_restarts_during_restore_and_live_writes() {
    if Broker::real_or_skip("broker_restart").is_none() {
        return;
    }
    // librdkafka's view of the restarts, shown when the test fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("librdkafka=info,ktable=info")
        .with_test_writer()
        .try_init();
    let broker = OwnBroker::start().await;
    let kafka = Broker::Real(broker.address());
    let topic = kafka
        .topic("restart", 3, &[("cleanup.policy", "compact")])
        .await;
    let producer = kafka.raw_producer();
    let mut model = BTreeMap::new();
    produce_all(&producer, &topic, &records(0, 60_000, &mut model)).await;

    // 1. Stopped during the restore (or just after it, if the restore was faster).
    let engine =
        Engine::new(EngineConfig::new(broker.address()).request_timeout(Duration::from_secs(5)));
    create_table(&engine, &topic).await;
    let restored_before_the_stop = engine.sources()[0].stats.restored;
    broker.stop().await;
    // The table answers from what it has, whatever that is.
    let partial = table_state(&engine).await;
    assert!(partial.len() <= model.len());
    broker.restart().await;
    engine
        .wait_until_ready(READY_TIMEOUT)
        .await
        .expect("ready after the restart");
    assert_eq!(table_state(&engine).await, model);
    assert_eq!(applied(&engine), 60_000, "{:?}", engine.sources()[0].stats);
    eprintln!("restored before the first stop: {restored_before_the_stop}");

    // 2. Stopped while records are being written: the producer retries (idempotent)
    // until the broker is back.
    let live = records(60_000, 20_000, &mut model);
    let writer = tokio::spawn({
        let producer = kafka.raw_producer();
        let topic = topic.clone();
        async move {
            for chunk in live.chunks(1_000) {
                produce_all(&producer, &topic, chunk).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    broker.stop().await;
    until(&engine, "the outage to show", |s| {
        s.kafka_unreachable && !s.ready
    })
    .await;
    // Queries answer, from a state that holds still while no broker answers.
    let during = table_state(&engine).await;
    assert!(!during.is_empty());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(table_state(&engine).await, during);
    assert!(engine.sources()[0].stats.last_error.is_some());
    broker.restart().await;
    writer.await.expect("the writer");
    until(&engine, "every record applied", |s| {
        s.upserts + s.tombstones >= 80_000
    })
    .await;
    until(&engine, "ready again", |s| {
        s.ready && s.last_error.is_none()
    })
    .await;
    assert_eq!(table_state(&engine).await, model);
    // Nothing applied twice, nothing lost.
    assert_eq!(applied(&engine), 80_000, "{:?}", engine.sources()[0].stats);
}

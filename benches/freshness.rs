//! Freshness: how long after Kafka acknowledges a record a `SELECT` over the PostgreSQL
//! protocol sees it, while 10,000 records/s flow into the table.
//!
//! In-process MockCluster, the engine and the server in this process, tokio-postgres
//! as the client. A probe waits for a record newer than the last one probed to be
//! acknowledged, then repeats a prepared `SELECT seq FROM fresh WHERE id = $1` until
//! the row shows that record; the latency is from the acknowledgement to the first
//! answer that shows it, so it includes up to one query's duration of polling
//! granularity. (Until 2026-11-29 a probe took whatever record was newest, often the
//! one the previous probe had already seen, and counted from its older acknowledgement:
//! the figures before then include up to one producer tick, 10 ms, of waiting.)
//! `cargo bench --bench freshness`.

#[path = "support/mod.rs"]
mod support;

use ktable::kafka::ProducerConfig;
use ktable::server::{serve, ServerConfig};
use ktable::sql::{Engine, EngineConfig};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{quantile, Broker};
use tokio::sync::watch;
use tokio_postgres::NoTls;

const RATE: u64 = 10_000;
const KEYS: u64 = 1_000;

#[tokio::main]
async fn main() {
    let probes = support::env_usize("BENCH_PROBES", 300);
    let broker = Broker::from_env();
    let brokers = broker.brokers();
    let topic = format!("bench-fresh-{}", std::process::id());
    broker.create_topic(&topic, 4).await;
    let mut config = EngineConfig::new(&brokers);
    if let Ok(wait) = std::env::var("BENCH_FETCH_WAIT_MS") {
        config = config.property("fetch.wait.max.ms", wait);
    }
    let engine = Arc::new(Engine::new(config));
    engine
        .sql(&format!(
            "CREATE TABLE fresh (id TEXT PRIMARY KEY, seq BIGINT) WITH (topic = '{topic}')"
        ))
        .await
        .expect("create");
    let address = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let serving = Arc::clone(&engine);
    tokio::spawn(async move {
        let config = ServerConfig {
            listen: address,
            max_connections: 8,
            ..ServerConfig::default()
        };
        serve(serving, &config, std::future::pending())
            .await
            .expect("serve");
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={} user=bench", address.port()),
        NoTls,
    )
    .await
    .expect("connect");
    tokio::spawn(connection);
    let lookup = client
        .prepare("SELECT seq FROM fresh WHERE id = $1")
        .await
        .expect("prepare");

    // The producer: RATE records/s; remembers the newest acknowledged record.
    let (newest, mut acknowledged) = watch::channel::<Option<(String, i64, Instant)>>(None);
    let stop = Arc::new(AtomicBool::new(false));
    let producer: FutureProducer = ProducerConfig::new(&brokers)
        .property("linger.ms", "1")
        .to_client_config()
        .expect("producer config")
        .create()
        .expect("producer");
    let stopping = Arc::clone(&stop);
    let writer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut seq = 0u64;
        while !stopping.load(Ordering::Relaxed) {
            tick.tick().await;
            let mut sends = Vec::new();
            for _ in 0..RATE / 100 {
                let key = format!("k{}", seq % KEYS);
                let value = format!(r#"{{"seq":{seq}}}"#);
                let record = FutureRecord::to(&topic).key(&key).payload(&value);
                if let Ok(delivery) = producer.send_result(record) {
                    sends.push(async move { (key, seq, delivery.await) });
                }
                seq += 1;
            }
            for (key, seq, result) in futures::future::join_all(sends).await {
                if matches!(result, Ok(Ok(_))) {
                    let at = Instant::now();
                    newest.send_if_modified(|newest| {
                        let newer = newest.as_ref().is_none_or(|(_, s, _)| *s < seq as i64);
                        if newer {
                            *newest = Some((key, seq as i64, at));
                        }
                        newer
                    });
                }
            }
        }
    });

    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut latencies = Vec::with_capacity(probes);
    while latencies.len() < probes {
        acknowledged.changed().await.expect("the writer runs");
        let Some((key, seq, acked_at)) = acknowledged.borrow_and_update().clone() else {
            continue;
        };
        loop {
            let row = client.query_opt(&lookup, &[&key]).await.expect("lookup");
            if row.is_some_and(|r| r.get::<_, i64>(0) >= seq) {
                latencies.push(acked_at.elapsed().as_micros() as u64);
                break;
            }
            assert!(
                acked_at.elapsed() < Duration::from_secs(10),
                "record never became visible"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    let applied = engine.sources()[0].stats.upserts;
    latencies.sort_unstable();
    println!(
        "freshness benchmark on {} — {}",
        broker.name(),
        support::machine()
    );
    println!(
        "  {RATE} records/s into a {KEYS}-key table, {} probes, {applied} records applied",
        latencies.len()
    );
    println!(
        "  ack → visible over pgwire: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms (goal p99 ≤ 10 ms)",
        quantile(&latencies, 0.5) as f64 / 1e3,
        quantile(&latencies, 0.99) as f64 / 1e3,
        latencies[latencies.len() - 1] as f64 / 1e3
    );
    engine.stop();
}

//! Change feeds: how long after Kafka acknowledges a record its change reaches a
//! subscriber, and what subscribers cost ingestion.
//!
//! 1. **Delivery latency**: BENCH_RATE (10,000) records/s into a 1,000-key table for
//!    BENCH_SECONDS (10), with 1 and then BENCH_SUBSCRIBERS (100) clients following
//!    `COPY (SUBSCRIBE (SELECT id, seq FROM fresh) WITH (SNAPSHOT = false)) TO STDOUT`
//!    over the PostgreSQL protocol (tokio-postgres, each change flushed as it
//!    happens). Every subscriber receives every change; the latency of each is from
//!    the producer's send call (linger 1 ms) to the subscriber reading its row, over
//!    all subscribers, after a 1 s warm-up; also from the acknowledgement (0 when the
//!    row came before the acknowledgement was seen, as most do).
//! 2. **Ingestion with subscribers**: a table restored from BENCH_RESTORE_RECORDS
//!    (500,000) records with no subscriber, then with BENCH_SUBSCRIBERS in-process
//!    subscribers (`Engine::subscribe`) that attach at once and read every change.
//!    Records/s from CREATE to ready; the ratio is the issue's "at least 0.8x".
//!
//! The engine, the server and the clients share this process, as in
//! `benches/freshness.rs`. `cargo bench --bench subscribe`, with `KAFKA_BROKERS` for a
//! real broker (else an in-process MockCluster, whose fetches wait for
//! `fetch.wait.max.ms`: set `BENCH_FETCH_WAIT_MS=10` there).

#[path = "support/mod.rs"]
mod support;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use ktable::kafka::ProducerConfig;
use ktable::server::{serve, ServerConfig};
use ktable::sql::{Engine, EngineConfig};
use parking_lot::Mutex;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{quantile, Broker};
use tokio_postgres::NoTls;

const KEYS: u64 = 1_000;

#[tokio::main]
async fn main() {
    let rate = support::env_usize("BENCH_RATE", 10_000) as u64;
    let seconds = support::env_usize("BENCH_SECONDS", 10) as u64;
    let many = support::env_usize("BENCH_SUBSCRIBERS", 100);
    let restore_records = support::env_usize("BENCH_RESTORE_RECORDS", 500_000) as u64;
    let broker = Broker::from_env();
    println!(
        "subscribe benchmark on {} — {}",
        broker.name(),
        support::machine()
    );
    for subscribers in [1, many] {
        latency(&broker, rate, seconds, subscribers).await;
    }
    ingestion(&broker, restore_records, many).await;
}

fn engine_config(brokers: &str) -> EngineConfig {
    let mut config = EngineConfig::new(brokers);
    if let Ok(wait) = std::env::var("BENCH_FETCH_WAIT_MS") {
        config = config.property("fetch.wait.max.ms", wait);
    }
    config
}

async fn start_server(engine: Arc<Engine>) -> SocketAddr {
    let address = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    tokio::spawn(async move {
        let config = ServerConfig {
            listen: address,
            max_connections: 0,
            max_connections_per_address: 0,
            ..ServerConfig::default()
        };
        serve(engine, &config, std::future::pending())
            .await
            .expect("serve");
    });
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(address).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    address
}

/// Nanoseconds since `origin`, never 0 (0 marks "not yet").
fn stamp(origin: Instant) -> u64 {
    (origin.elapsed().as_nanos() as u64).max(1)
}

async fn latency(broker: &Broker, rate: u64, seconds: u64, subscribers: usize) {
    let brokers = broker.brokers();
    let topic = format!("bench-sub-{}-{subscribers}", std::process::id());
    broker.create_topic(&topic, 4).await;
    let engine = Arc::new(Engine::new(engine_config(&brokers)));
    engine
        .sql(&format!(
            "CREATE TABLE fresh (id TEXT PRIMARY KEY, seq BIGINT) WITH (topic = '{topic}')"
        ))
        .await
        .expect("create");
    engine
        .wait_until_ready(Duration::from_secs(30))
        .await
        .expect("ready");
    let address = start_server(Arc::clone(&engine)).await;

    let total = (rate * (seconds + 2)) as usize;
    let origin = Instant::now();
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    // (from the send, from the acknowledgement) of each change read.
    let delivered: Arc<Mutex<Vec<(u64, u64)>>> = Arc::new(Mutex::new(Vec::new()));
    let warm_up_seq = rate; // the first second's records are not counted
    let mut readers = Vec::new();
    for _ in 0..subscribers {
        let (client, connection) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={} user=bench", address.port()),
            NoTls,
        )
        .await
        .expect("connect");
        tokio::spawn(connection);
        let (acked, sent, delivered) = (
            Arc::clone(&acked),
            Arc::clone(&sent),
            Arc::clone(&delivered),
        );
        readers.push(tokio::spawn(async move {
            let rows = client
                .copy_out(
                    "COPY (SUBSCRIBE (SELECT id, seq FROM fresh) WITH (SNAPSHOT = false)) TO STDOUT",
                )
                .await
                .expect("subscribe");
            futures::pin_mut!(rows);
            let mut latencies = Vec::new();
            let mut last = 0u64;
            while let Some(Ok(line)) = rows.next().await {
                let now = stamp(origin);
                let text = std::str::from_utf8(&line).unwrap_or("");
                let Some(seq) = text
                    .trim_end()
                    .rsplit('\t')
                    .next()
                    .and_then(|s| s.parse::<u64>().ok())
                else {
                    continue;
                };
                last = last.max(seq);
                if seq >= warm_up_seq {
                    if let (Some(ack), Some(send)) = (acked.get(seq as usize), sent.get(seq as usize)) {
                        let (ack, send) = (ack.load(Ordering::Acquire), send.load(Ordering::Acquire));
                        let since_ack = if ack == 0 { 0 } else { now.saturating_sub(ack) };
                        latencies.push((now.saturating_sub(send), since_ack));
                    }
                }
                if seq + 1 >= total as u64 {
                    break;
                }
            }
            delivered.lock().extend(latencies);
            last
        }));
    }
    // Let the subscriptions start before the first record.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let producer: FutureProducer = ProducerConfig::new(&brokers)
        .property("linger.ms", "1")
        .to_client_config()
        .expect("producer config")
        .create()
        .expect("producer");
    let mut deliveries = FuturesUnordered::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let per_tick = (rate / 100).max(1);
    let mut seq = 0u64;
    let started = Instant::now();
    while seq + per_tick <= total as u64 {
        tick.tick().await;
        for _ in 0..per_tick {
            let key = format!("k{}", seq % KEYS);
            let value = format!(r#"{{"seq":{seq}}}"#);
            let record = FutureRecord::to(&topic).key(&key).payload(&value);
            sent[seq as usize].store(stamp(origin), Ordering::Release);
            if let Ok(delivery) = producer.send_result(record) {
                let acked = Arc::clone(&acked);
                let at = seq as usize;
                deliveries.push(async move {
                    if matches!(delivery.await, Ok(Ok(_))) {
                        acked[at].store(stamp(origin), Ordering::Release);
                    }
                });
            }
            seq += 1;
        }
        // Record acknowledgements as they come, without holding up the next tick.
        while let Some(Some(())) = futures::FutureExt::now_or_never(deliveries.next()) {}
    }
    while deliveries.next().await.is_some() {}
    let produced_for = started.elapsed();
    let mut last_seen = Vec::new();
    for reader in readers {
        match tokio::time::timeout(Duration::from_secs(30), reader).await {
            Ok(Ok(last)) => last_seen.push(last),
            _ => last_seen.push(0),
        }
    }
    let timed = std::mem::take(&mut *delivered.lock());
    let complete = last_seen.iter().filter(|&&l| l + 1 >= seq).count();
    if timed.is_empty() {
        println!("  {subscribers} subscriber(s): no change delivered");
    } else {
        let mut from_send: Vec<u64> = timed.iter().map(|t| t.0).collect();
        let mut from_ack: Vec<u64> = timed.iter().map(|t| t.1).collect();
        from_send.sort_unstable();
        from_ack.sort_unstable();
        let ms = |sorted: &[u64], q: f64| quantile(sorted, q) as f64 / 1e6;
        println!(
            "  {subscribers} subscriber(s), {seq} records in {:.1} s, {} changes timed, \
             {complete}/{subscribers} saw the last",
            produced_for.as_secs_f64(),
            timed.len(),
        );
        println!(
            "    send → delivered: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms (goal p99 ≤ 10 ms)",
            ms(&from_send, 0.5),
            ms(&from_send, 0.99),
            ms(&from_send, 1.0),
        );
        println!(
            "    ack → delivered (0 when delivered before the ack was seen): p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            ms(&from_ack, 0.5),
            ms(&from_ack, 0.99),
            ms(&from_ack, 1.0),
        );
    }
    engine.stop();
}

async fn ingestion(broker: &Broker, records: u64, subscribers: usize) {
    let brokers = broker.brokers();
    let topic = format!("bench-sub-restore-{}", std::process::id());
    broker.create_topic(&topic, 4).await;
    support::produce(
        &brokers,
        &topic,
        (0..records).map(|i| {
            (
                format!("k{}", i % 100_000),
                format!(r#"{{"seq":{i}}}"#).into_bytes(),
            )
        }),
    )
    .await;
    let mut rates = Vec::new();
    for (round, attached) in [0, subscribers, 0, subscribers, 0, subscribers]
        .into_iter()
        .enumerate()
    {
        let engine = Arc::new(Engine::new(engine_config(&brokers)));
        let started = Instant::now();
        engine
            .sql(&format!(
                "CREATE TABLE t{round} (id TEXT PRIMARY KEY, seq BIGINT) WITH (topic = '{topic}')"
            ))
            .await
            .expect("create");
        let mut readers = Vec::new();
        for _ in 0..attached {
            let mut changes = engine
                .subscribe(&format!("SUBSCRIBE t{round} WITH (SNAPSHOT = false)"))
                .await
                .expect("subscribe");
            readers.push(tokio::spawn(async move {
                let mut rows = 0usize;
                while let Some(batch) = changes.next().await {
                    match batch {
                        Ok(batch) => rows += batch.num_rows(),
                        Err(_) => return (rows, true),
                    }
                }
                (rows, false)
            }));
        }
        engine
            .wait_until_ready(Duration::from_secs(120))
            .await
            .expect("ready");
        let took = started.elapsed();
        engine.stop();
        let mut evicted = 0;
        for reader in readers {
            if let Ok(Ok((_, true))) = tokio::time::timeout(Duration::from_secs(5), reader).await {
                evicted += 1;
            }
        }
        let per_second = records as f64 / took.as_secs_f64();
        println!(
            "  restore of {records} records with {attached} subscribers: {:.2} s, {:.0} records/s, {evicted} subscribers fell behind",
            took.as_secs_f64(),
            per_second
        );
        rates.push((attached, per_second));
    }
    let mut without: Vec<f64> = rates
        .iter()
        .filter(|(a, _)| *a == 0)
        .map(|(_, r)| *r)
        .collect();
    let mut with: Vec<f64> = rates
        .iter()
        .filter(|(a, _)| *a > 0)
        .map(|(_, r)| *r)
        .collect();
    let (without, with) = (support::median(&mut without), support::median(&mut with));
    println!(
        "  ingestion with {subscribers} subscribers / without (medians of 3): {with:.0} / {without:.0} records/s = {:.2} (goal ≥ 0.8)",
        with / without
    );
}

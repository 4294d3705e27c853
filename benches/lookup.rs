//! `KTable::get` latency against a plain `HashMap::get` on the same data, idle and while
//! the table applies ~100,000 updates/s from Kafka; plus the structure comparison behind
//! the table's `RwLock<HashMap>` (against a sharded `DashMap`) under the same write rate.
//!
//! `cargo bench --bench lookup` (in-process MockCluster). Both sides clone the value they
//! return, as `KTable::get` does. Per-lookup latencies are timed one call at a time with
//! `Instant::now()`, whose own cost (~20 ns here) is included in every figure.

#[path = "support/mod.rs"]
mod support;

use dashmap::DashMap;
use ktable::kafka::{ConsumerConfig, JsonSerializer, ProducerConfig, StringSerializer};
use ktable::KTable;
use parking_lot::RwLock;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{median, quantile, Broker};

const KEYS: u64 = 100_000;
const LOOKUPS: usize = 1_000_000;
const WRITES_PER_SEC: u64 = 100_000;

#[derive(Clone, serde::Deserialize)]
#[allow(dead_code)] // cloned on every lookup, which is what is measured
struct Row {
    name: String,
    city: String,
    age: u32,
    score: f64,
}

fn row_json(id: u64, version: u64) -> Vec<u8> {
    format!(
        r#"{{"name":"User {id}","city":"Lisbon","age":{},"score":{}.25}}"#,
        18 + (id + version) % 60,
        version
    )
    .into_bytes()
}

fn key(id: u64) -> String {
    format!("user-{id:06}")
}

/// Nanoseconds per lookup over `keys`, as a whole loop.
fn loop_ns(keys: &[String], get: impl Fn(&String) -> Option<Row>) -> f64 {
    let started = Instant::now();
    let mut found = 0usize;
    for key in keys {
        found += get(key).is_some() as usize;
    }
    std::hint::black_box(found);
    started.elapsed().as_nanos() as f64 / keys.len() as f64
}

/// Sorted per-call latencies in nanoseconds.
fn latencies(keys: &[String], get: impl Fn(&String) -> Option<Row>) -> Vec<u64> {
    let mut samples = Vec::with_capacity(keys.len());
    for key in keys {
        let started = Instant::now();
        std::hint::black_box(get(key));
        samples.push(started.elapsed().as_nanos() as u64);
    }
    samples.sort_unstable();
    samples
}

fn describe(name: &str, sorted: &[u64]) {
    println!(
        "  {name:<34} p50 {:>6} ns  p99 {:>6} ns  p99.9 {:>7} ns  max {:>8} ns",
        quantile(sorted, 0.5),
        quantile(sorted, 0.99),
        quantile(sorted, 0.999),
        sorted[sorted.len() - 1]
    );
}

/// Writes `WRITES_PER_SEC` records a second to `topic` until `stop`.
async fn produce_updates(brokers: String, topic: String, stop: Arc<AtomicBool>) -> u64 {
    let producer: FutureProducer = ProducerConfig::new(brokers)
        .property("linger.ms", "2")
        .to_client_config()
        .expect("producer config")
        .create()
        .expect("producer");
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let per_tick = WRITES_PER_SEC / 100;
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let mut pending = Vec::with_capacity(per_tick as usize);
        for _ in 0..per_tick {
            let id = sent.wrapping_mul(2_654_435_761) % KEYS;
            let (k, v) = (key(id), row_json(id, sent));
            let record = FutureRecord::to(&topic).key(&k).payload(&v);
            if let Ok(delivery) = producer.send_result(record) {
                pending.push(delivery);
            }
            sent += 1;
        }
        futures::future::join_all(pending).await;
    }
    sent
}

/// A writer thread applying `WRITES_PER_SEC` inserts a second to a map until `stop`.
fn synthetic_writer(stop: Arc<AtomicBool>, insert: impl Fn(String, Row) + Send + 'static) {
    std::thread::spawn(move || {
        let mut version = 0u64;
        let started = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            // Keep to the rate: catch up in small bursts, sleep when ahead.
            let due = started.elapsed().as_micros() as u64 * WRITES_PER_SEC / 1_000_000;
            if version >= due {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            let id = version % KEYS;
            let row: Row = serde_json::from_slice(&row_json(id, version)).expect("row");
            insert(key(id), row);
            version += 1;
        }
    });
}

#[tokio::main]
async fn main() {
    let runs = support::env_usize("BENCH_RUNS", 5);
    let broker = Broker::from_env();
    let brokers = broker.brokers();
    let topic = format!("bench-lookup-{}", std::process::id());
    broker.create_topic(&topic, 4).await;
    support::produce(
        &brokers,
        &topic,
        (0..KEYS).map(|id| (key(id), row_json(id, 0))),
    )
    .await;

    let table: KTable<String, Row> = KTable::new(
        ConsumerConfig::new(&brokers, "bench-lookup"),
        topic.as_str(),
        StringSerializer,
        JsonSerializer,
    )
    .await
    .expect("table");
    table.start().await.expect("start");
    table
        .wait_until_ready(Duration::from_secs(120))
        .await
        .expect("ready");
    let plain: HashMap<String, Row> = table.snapshot();
    assert_eq!(plain.len() as u64, KEYS);

    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let keys: Vec<String> = (0..LOOKUPS)
        .map(|_| key(rng.random_range(0..KEYS)))
        .collect();

    println!(
        "lookup benchmark on {} — {}",
        broker.name(),
        support::machine()
    );
    println!("  {KEYS} keys, {LOOKUPS} random lookups per run, median of {runs} runs");

    // 1. Idle: whole-loop throughput, alternating the two sides.
    let (mut base, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        base.push(loop_ns(&keys, |k| plain.get(k).cloned()));
        ours.push(loop_ns(&keys, |k| table.get(k)));
    }
    let (base, ours) = (median(&mut base), median(&mut ours));
    println!("idle:");
    println!("  HashMap::get + clone  {base:>7.1} ns/lookup");
    println!("  KTable::get           {ours:>7.1} ns/lookup");
    println!("  ratio (KTable / HashMap): {:.2}", ours / base);

    // 2. While the table applies ~100,000 updates/s from Kafka.
    let stop = Arc::new(AtomicBool::new(false));
    let producer = tokio::spawn(produce_updates(
        brokers.clone(),
        topic.clone(),
        Arc::clone(&stop),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let applied_before = table.stats().upserts;
    let window = Instant::now();
    let reader_table = table.clone();
    let reader_keys = keys.clone();
    let (ktable_lat, plain_lat) = tokio::task::spawn_blocking(move || {
        let plain_lat = latencies(&reader_keys, |k| plain.get(k).cloned());
        let ktable_lat = latencies(&reader_keys, |k| reader_table.get(k));
        (ktable_lat, plain_lat)
    })
    .await
    .expect("reader");
    let applied = table.stats().upserts - applied_before;
    let rate = applied as f64 / window.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    producer.await.expect("producer");
    println!("under writes (the table applied {rate:.0} updates/s from Kafka meanwhile):");
    describe("HashMap::get + clone (no writer)", &plain_lat);
    describe("KTable::get", &ktable_lat);

    // 3. The structure choice: RwLock<HashMap> against DashMap under a synthetic writer.
    println!("structure comparison under a synthetic {WRITES_PER_SEC}/s writer thread:");
    let rows: Vec<(String, Row)> = table.snapshot().into_iter().collect();
    let locked = Arc::new(RwLock::new(rows.iter().cloned().collect::<HashMap<_, _>>()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer_map = Arc::clone(&locked);
    synthetic_writer(Arc::clone(&stop), move |k, v| {
        writer_map.write().insert(k, v);
    });
    describe(
        "RwLock<HashMap>::get",
        &latencies(&keys, |k| locked.read().get(k).cloned()),
    );
    stop.store(true, Ordering::Relaxed);

    let sharded = Arc::new(rows.into_iter().collect::<DashMap<_, _>>());
    let stop = Arc::new(AtomicBool::new(false));
    let writer_map = Arc::clone(&sharded);
    synthetic_writer(Arc::clone(&stop), move |k, v| {
        writer_map.insert(k, v);
    });
    describe(
        "DashMap::get",
        &latencies(&keys, |k| sharded.get(k).map(|r| r.value().clone())),
    );
    stop.store(true, Ordering::Relaxed);
    table.stop();
}

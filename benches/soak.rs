//! Sustained load: `ktable serve` (this build's binary, its own process) in front of a
//! table ingesting SOAK_RATE records/s from a real Kafka broker, while SOAK_CLIENTS
//! clients mix prepared lookups, simple-protocol lookups and full-scan aggregates for
//! SOAK_SECONDS. Every SOAK_REPORT_SECONDS it prints the server's RSS, the records
//! produced, the statements served and the lookup and aggregate latencies of that
//! window; at the end it stops the producer, waits for the table to catch up and
//! compares every row with a model of what was produced. Each report also says how
//! many cores the server, the broker and this driver used in the window, and what
//! the table's store holds (from the server's `/metrics`): a slowdown over time is
//! then either contention (someone else's CPU) or the store growing.
//!
//! Fails (exit status 1) on any failed statement, failed delivery or row that differs
//! from the model. Run by `scripts/bench-soak.sh`, which starts the broker; alone:
//! `KAFKA_BROKERS=127.0.0.1:9092 cargo bench --bench soak`.
//!
//! Env: KAFKA_BROKERS (required), SOAK_SECONDS (600), SOAK_RATE (50000), SOAK_KEYS
//! (100000), SOAK_CLIENTS (64: 5/8 prepared lookups, 2/8 simple-protocol lookups,
//! 1/8 aggregates), SOAK_REPORT_SECONDS (30), SOAK_PORT (54393).

#[path = "support/mod.rs"]
mod support;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use ktable::kafka::ProducerConfig;
use parking_lot::Mutex;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{quantile, Broker};
use tokio_postgres::{Client, NoTls};

const CITIES: [&str; 8] = [
    "Lisbon", "Porto", "Madrid", "Paris", "Berlin", "Oslo", "Rome", "Vienna",
];
/// One record in this many is a tombstone.
const TOMBSTONE_EVERY: u64 = 20;

/// What the clients measured in the current window.
#[derive(Default)]
struct Window {
    lookups_us: Vec<u64>,
    aggregates_us: Vec<u64>,
}

#[derive(Default)]
struct Counters {
    produced: AtomicU64,
    delivery_failures: AtomicU64,
    statements: AtomicU64,
    failed_statements: AtomicU64,
}

struct Server {
    child: Child,
    port: u16,
    http_port: u16,
}

/// CPU seconds (user + system) process `pid` has used: fields 14 and 15 of
/// `/proc/<pid>/stat`, in clock ticks of 1/100 s.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // The command name (field 2) is in parentheses and may hold spaces.
    let Some((_, after_name)) = stat.rsplit_once(')') else {
        return f64::NAN;
    };
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

/// The Kafka broker's JVM on this machine (the process running `kafka.Kafka`).
fn broker_pid() -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let needle = b"kafka.Kafka";
        cmdline
            .windows(needle.len())
            .any(|w| w == needle)
            .then_some(pid)
    })
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn rss_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kib| kib.parse::<f64>().ok())
            })
            .map_or(f64::NAN, |kib| kib / 1024.0)
    }

    /// The bytes the table's store holds, from the server's `/metrics`.
    fn store_mib(&self) -> f64 {
        use std::io::{Read, Write};
        let read = || -> std::io::Result<String> {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.http_port))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: soak\r\n\r\n")?;
            let mut text = String::new();
            stream.read_to_string(&mut text)?;
            Ok(text)
        };
        read()
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("ktable_source_memory_bytes{"))
                    .and_then(|l| l.rsplit(' ').next())
                    .and_then(|v| v.parse::<f64>().ok())
            })
            .map_or(f64::NAN, |bytes| bytes / (1024.0 * 1024.0))
    }

    async fn connect(&self) -> Client {
        let (client, connection) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=soak password=soak dbname=ktable",
                self.port
            ),
            NoTls,
        )
        .await
        .expect("connect to ktable");
        tokio::spawn(connection);
        client
    }
}

#[tokio::main]
async fn main() {
    let seconds = support::env_usize("SOAK_SECONDS", 600) as u64;
    let rate = support::env_usize("SOAK_RATE", 50_000) as u64;
    let keys = support::env_usize("SOAK_KEYS", 100_000) as u64;
    let clients = support::env_usize("SOAK_CLIENTS", 64);
    let report_every = Duration::from_secs(support::env_usize("SOAK_REPORT_SECONDS", 30) as u64);
    let port = support::env_usize("SOAK_PORT", 54393) as u16;
    let broker = Broker::from_env();
    let Broker::Real(brokers) = &broker else {
        eprintln!("soak: set KAFKA_BROKERS (a real broker; scripts/bench-soak.sh starts one)");
        std::process::exit(2);
    };
    let brokers = brokers.clone();
    let topic = format!("soak-{}", std::process::id());
    broker.create_topic(&topic, 4).await;

    let server = start_server(&brokers, &topic, port).await;
    println!(
        "soak: {seconds} s, {rate} records/s over {keys} keys ({}% tombstones), {clients} clients, \
         server pid {} — {}",
        100 / TOMBSTONE_EVERY,
        server.child.id(),
        support::machine()
    );

    let counters = Arc::new(Counters::default());
    let window = Arc::new(Mutex::new(Window::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let model: Arc<Mutex<HashMap<String, Option<u64>>>> = Arc::new(Mutex::new(HashMap::new()));

    let producing = tokio::spawn(produce(
        brokers.clone(),
        topic.clone(),
        rate,
        keys,
        Arc::clone(&model),
        Arc::clone(&counters),
        Arc::clone(&stop),
    ));
    let mut workers = Vec::new();
    for client in 0..clients {
        let kind = match client % 8 {
            0 => Kind::Aggregate,
            1 | 2 => Kind::SimpleLookup,
            _ => Kind::PreparedLookup,
        };
        let connection = server.connect().await;
        workers.push(tokio::spawn(run_client(
            kind,
            connection,
            keys,
            client as u64,
            Arc::clone(&window),
            Arc::clone(&counters),
            Arc::clone(&stop),
        )));
    }

    println!();
    println!("| t (s) | RSS (MiB) | store (MiB) | produced/s | statements/s | failed | lookup p50 / p99 (ms) | aggregate p50 / p99 (ms) | cores: ktable / broker / driver |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let started = Instant::now();
    let mut last = (0u64, 0u64, Instant::now());
    let broker_pid = broker_pid();
    let cpu_now = || {
        [
            cpu_seconds(server.child.id()),
            broker_pid.map_or(f64::NAN, cpu_seconds),
            cpu_seconds(std::process::id()),
        ]
    };
    let mut last_cpu = cpu_now();
    let mut rss = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(report_every.min(Duration::from_secs(seconds) - started.elapsed()))
            .await;
        let taken = std::mem::take(&mut *window.lock());
        let produced = counters.produced.load(Ordering::Relaxed);
        let statements = counters.statements.load(Ordering::Relaxed);
        let elapsed = last.2.elapsed().as_secs_f64();
        let mut lookups = taken.lookups_us;
        let mut aggregates = taken.aggregates_us;
        lookups.sort_unstable();
        aggregates.sort_unstable();
        let ms = |sorted: &[u64], q: f64| {
            if sorted.is_empty() {
                f64::NAN
            } else {
                quantile(sorted, q) as f64 / 1000.0
            }
        };
        let now_rss = server.rss_mib();
        rss.push(now_rss);
        let cpu = cpu_now();
        let cores = |i: usize| (cpu[i] - last_cpu[i]) / elapsed;
        println!(
            "| {:.0} | {:.0} | {:.1} | {:.0} | {:.0} | {} | {:.2} / {:.2} | {:.1} / {:.1} | {:.2} / {:.2} / {:.2} |",
            started.elapsed().as_secs_f64(),
            now_rss,
            server.store_mib(),
            (produced - last.0) as f64 / elapsed,
            (statements - last.1) as f64 / elapsed,
            counters.failed_statements.load(Ordering::Relaxed),
            ms(&lookups, 0.5),
            ms(&lookups, 0.99),
            ms(&aggregates, 0.5),
            ms(&aggregates, 0.99),
            cores(0),
            cores(1),
            cores(2),
        );
        last = (produced, statements, Instant::now());
        last_cpu = cpu;
    }
    stop.store(true, Ordering::Relaxed);
    producing.await.expect("producer task");
    for worker in workers {
        worker.await.expect("client task");
    }

    let mismatches = check_model(&server, &model).await;
    let failed = counters.failed_statements.load(Ordering::Relaxed);
    let undelivered = counters.delivery_failures.load(Ordering::Relaxed);
    println!();
    println!(
        "statements: {} served, {failed} failed; records: {} produced, {undelivered} not delivered; \
         model check: {} keys, {mismatches} differing rows",
        counters.statements.load(Ordering::Relaxed),
        counters.produced.load(Ordering::Relaxed),
        model.lock().values().filter(|v| v.is_some()).count(),
    );
    if let (Some(first), Some(last)) = (rss.get(1), rss.last()) {
        println!("RSS after warm-up (second report) {first:.0} MiB, at the end {last:.0} MiB");
    }
    if failed > 0 || undelivered > 0 || mismatches > 0 {
        std::process::exit(1);
    }
}

async fn start_server(brokers: &str, topic: &str, port: u16) -> Server {
    let dir = std::env::temp_dir().join(format!("ktable-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let sql = dir.join("soak.sql");
    std::fs::write(
        &sql,
        format!(
            "CREATE TABLE soak (id TEXT PRIMARY KEY, seq BIGINT, city TEXT, amount DOUBLE) \
             WITH (topic = '{topic}');\n"
        ),
    )
    .expect("sql file");
    let config = dir.join("ktable.toml");
    std::fs::write(&config, "[[users]]\nname = \"soak\"\npassword = \"soak\"\n")
        .expect("config file");
    let log = std::fs::File::create(dir.join("ktable.log")).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_ktable"))
        .args(["serve", "--brokers", brokers, "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--sql")
        .arg(&sql)
        .arg("--config")
        .arg(&config)
        .args(["--max-connections-per-address", "0"])
        .args(["--group-id", "ktable-soak"])
        .arg("--http")
        .arg(format!("127.0.0.1:{}", port + 1))
        .env("RUST_LOG", "info,rdkafka=warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start ktable serve");
    eprintln!("soak: ktable log in {}", dir.join("ktable.log").display());
    let server = Server {
        child,
        port,
        http_port: port + 1,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = match tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user=soak password=soak dbname=ktable"),
            NoTls,
        )
        .await
        {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                client
                    .query_one("SELECT ready FROM ktable_tables WHERE name = 'soak'", &[])
                    .await
                    .is_ok_and(|row| row.get::<_, bool>(0))
            }
            Err(_) => false,
        };
        if ready {
            return server;
        }
        assert!(Instant::now() < deadline, "ktable not ready after 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Produces `rate` records/s until `stop`, recording each key's last value (None
/// for a tombstone) in `model` in the order sent: the idempotent producer keeps that
/// order per partition, so the model is what the table must end with.
async fn produce(
    brokers: String,
    topic: String,
    rate: u64,
    keys: u64,
    model: Arc<Mutex<HashMap<String, Option<u64>>>>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let producer: FutureProducer = ProducerConfig::new(&brokers)
        .property("linger.ms", "5")
        .property("queue.buffering.max.messages", "1000000")
        .to_client_config()
        .expect("producer config")
        .create()
        .expect("producer");
    let mut deliveries = FuturesUnordered::new();
    let per_tick = (rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut seq = 0u64;
    let mut random = 0x9E37_79B9_7F4A_7C15u64;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        for _ in 0..per_tick {
            // xorshift: cheap, and the same sequence every run.
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            let key = format!("k{}", random % keys);
            seq += 1;
            let value = (seq % TOMBSTONE_EVERY != 0).then(|| {
                format!(
                    r#"{{"seq":{seq},"city":"{}","amount":{}.25}}"#,
                    CITIES[(random >> 32) as usize % CITIES.len()],
                    seq % 1000
                )
            });
            let mut record = FutureRecord::to(&topic).key(&key);
            if let Some(value) = &value {
                record = record.payload(value);
            }
            match producer.send_result(record) {
                Ok(delivery) => {
                    model.lock().insert(key, value.is_some().then_some(seq));
                    deliveries.push(delivery);
                }
                Err(_) => {
                    counters.delivery_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        counters.produced.fetch_add(per_tick, Ordering::Relaxed);
        while let Some(Some(delivered)) = deliveries.next().now_or_never() {
            if !matches!(delivered, Ok(Ok(_))) {
                counters.delivery_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    while let Some(delivered) = deliveries.next().await {
        if !matches!(delivered, Ok(Ok(_))) {
            counters.delivery_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    PreparedLookup,
    SimpleLookup,
    Aggregate,
}

async fn run_client(
    kind: Kind,
    client: Client,
    keys: u64,
    seed: u64,
    window: Arc<Mutex<Window>>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let lookup = client
        .prepare("SELECT seq, city, amount FROM soak WHERE id = $1")
        .await
        .expect("prepare");
    let mut random = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
    while !stop.load(Ordering::Relaxed) {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        let key = format!("k{}", random % keys);
        let started = Instant::now();
        let outcome = match kind {
            Kind::PreparedLookup => client.query_opt(&lookup, &[&key]).await.map(drop),
            Kind::SimpleLookup => client
                .simple_query(&format!(
                    "SELECT seq, city, amount FROM soak WHERE id = '{key}'"
                ))
                .await
                .map(drop),
            Kind::Aggregate => client
                .query(
                    "SELECT city, count(*), avg(amount), sum(seq) FROM soak GROUP BY city",
                    &[],
                )
                .await
                .map(drop),
        };
        let micros = started.elapsed().as_micros() as u64;
        counters.statements.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(()) => {
                let mut window = window.lock();
                match kind {
                    Kind::Aggregate => window.aggregates_us.push(micros),
                    _ => window.lookups_us.push(micros),
                }
            }
            Err(error) => {
                let failures = counters.failed_statements.fetch_add(1, Ordering::Relaxed);
                if failures < 10 {
                    eprintln!("soak: statement failed: {error}");
                }
            }
        }
    }
}

/// Waits (up to 60 s) for the table to hold exactly the model's rows; returns how
/// many rows still differ then.
async fn check_model(server: &Server, model: &Mutex<HashMap<String, Option<u64>>>) -> usize {
    let expected: HashMap<String, u64> = model
        .lock()
        .iter()
        .filter_map(|(key, seq)| seq.map(|seq| (key.clone(), seq)))
        .collect();
    let client = server.connect().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = client
            .query("SELECT id, seq FROM soak", &[])
            .await
            .expect("read the table");
        let actual: HashMap<String, u64> = rows
            .iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1) as u64))
            .collect();
        let differing = expected
            .iter()
            .filter(|(key, seq)| actual.get(*key) != Some(seq))
            .count()
            + actual.keys().filter(|k| !expected.contains_key(*k)).count();
        if differing == 0 || Instant::now() > deadline {
            return differing;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

//! SQL over the columnar store against DataFusion's own `MemTable` on the same data, in
//! one run:
//!
//! 1. full scan + aggregate (`GROUP BY` a low-cardinality column) over 1,000,000 rows;
//! 2. `SELECT * FROM t WHERE id = '...'`: planning and execution time, against a
//!    `HashMap::get` plus encoding the row as text (what a wire protocol does);
//! 3. resident memory per row against the Arrow size of the same rows;
//! 4. `ColumnarTable::lookup` latency while a writer applies 100,000 updates/s
//!    (batches of 1,000 random keys every 10 ms, compaction included), against the
//!    same lookups with no writer.
//!
//! The table is filled through its sink's path (decoded batches of 1,024 rows applied
//! with upserts), so segments and compaction are what a restore leaves. `BENCH_ROWS`,
//! `BENCH_RUNS` override the defaults. `cargo bench --bench sql`.

#[path = "support/mod.rs"]
mod support;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use ktable::sql::KafkaTableProvider;
use ktable::table::columnar::{Change, ColumnarTable};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{env_usize, median};

const GROUPS: [&str; 8] = [
    "red", "green", "blue", "cyan", "magenta", "yellow", "black", "white",
];

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("grp", DataType::Utf8, true),
        Field::new("v", DataType::Float64, true),
        Field::new("n", DataType::Int64, true),
        Field::new("note", DataType::Utf8, true),
    ]))
}

fn batch(from: usize, len: usize) -> RecordBatch {
    let ids = StringArray::from_iter_values((from..from + len).map(|i| format!("user-{i:07}")));
    let groups =
        StringArray::from_iter_values((from..from + len).map(|i| GROUPS[i % GROUPS.len()]));
    let values =
        Float64Array::from_iter_values((from..from + len).map(|i| (i % 1000) as f64 * 0.5));
    let counts = Int64Array::from_iter_values((from..from + len).map(|i| (i * 7 % 100) as i64));
    let notes =
        StringArray::from_iter_values((from..from + len).map(|i| format!("note for row {i}")));
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(ids),
            Arc::new(groups),
            Arc::new(values),
            Arc::new(counts),
            Arc::new(notes),
        ],
    )
    .expect("batch")
}

fn resident_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<usize>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

async fn time_query(ctx: &SessionContext, sql: &str) -> f64 {
    let started = Instant::now();
    let batches = ctx
        .sql(sql)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    std::hint::black_box(batches);
    started.elapsed().as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let rows = env_usize("BENCH_ROWS", 1_000_000);
    let runs = env_usize("BENCH_RUNS", 5);

    // Fill the store as the sink does: batches of 1,024 upserts.
    let before = resident_bytes();
    let table = Arc::new(ColumnarTable::new(schema(), 0));
    let mut from = 0;
    while from < rows {
        let len = 1024.min(rows - from);
        let changes: Vec<Change> = (0..len as u32).map(|row| Change::Upsert { row }).collect();
        table.apply(batch(from, len), &changes).expect("apply");
        from += len;
    }
    let stored = table.snapshot().batches().expect("snapshot");
    let store_resident = resident_bytes().saturating_sub(before);
    let arrow_bytes: usize = stored.iter().map(RecordBatch::get_array_memory_size).sum();

    let ours = SessionContext::new();
    ours.register_table("t", Arc::new(KafkaTableProvider::new(Arc::clone(&table))))
        .expect("register");
    let theirs = SessionContext::new();
    let partitions = ours.state().config().target_partitions();
    let mut spread = vec![Vec::new(); partitions];
    for (i, b) in stored.iter().enumerate() {
        spread[i % partitions].push(b.clone());
    }
    theirs
        .register_table(
            "t",
            Arc::new(MemTable::try_new(schema(), spread).expect("memtable")),
        )
        .expect("register");

    println!("SQL benchmark — {}", support::machine());
    println!(
        "  {rows} rows, {} segments, median of {runs} runs",
        table.segment_count()
    );

    // 1. Scan + aggregate.
    let aggregate = "SELECT grp, count(*), avg(v), max(v), sum(n) FROM t GROUP BY grp";
    let (mut base, mut mine) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        base.push(time_query(&theirs, aggregate).await);
        mine.push(time_query(&ours, aggregate).await);
    }
    let (base, mine) = (median(&mut base), median(&mut mine));
    println!("scan + aggregate ({aggregate}):");
    println!("  MemTable       {base:>8.2} ms");
    println!("  Kafka table    {mine:>8.2} ms");
    println!("  ratio (Kafka table / MemTable): {:.2}", mine / base);

    // 2. Point lookup: planning and execution, against HashMap::get + text encoding.
    let lookups = 2_000;
    let keys: Vec<String> = (0..lookups)
        .map(|i| format!("user-{:07}", (i * 7919) % rows))
        .collect();
    let (mut plan_us, mut exec_us) = (Vec::new(), Vec::new());
    for key in &keys {
        let sql = format!("SELECT * FROM t WHERE id = '{key}'");
        let started = Instant::now();
        let plan = ours
            .sql(&sql)
            .await
            .expect("sql")
            .create_physical_plan()
            .await
            .expect("plan");
        let planned = Instant::now();
        let result = datafusion::physical_plan::collect(plan, ours.task_ctx())
            .await
            .expect("run");
        assert_eq!(result.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
        exec_us.push(planned.elapsed().as_secs_f64() * 1e6);
        plan_us.push((planned - started).as_secs_f64() * 1e6);
    }
    let map: HashMap<String, (String, f64, i64, String)> = (0..rows)
        .map(|i| {
            (
                format!("user-{i:07}"),
                (
                    GROUPS[i % GROUPS.len()].to_string(),
                    (i % 1000) as f64 * 0.5,
                    (i * 7 % 100) as i64,
                    format!("note for row {i}"),
                ),
            )
        })
        .collect();
    let started = Instant::now();
    let mut encoded = 0usize;
    for key in &keys {
        if let Some((grp, v, n, note)) = map.get(key) {
            encoded += format!("{key}\t{grp}\t{v}\t{n}\t{note}").len();
        }
    }
    std::hint::black_box(encoded);
    let map_us = started.elapsed().as_secs_f64() * 1e6 / lookups as f64;
    let (plan_us, exec_us) = (median(&mut plan_us), median(&mut exec_us));
    println!("point lookup (SELECT * FROM t WHERE id = '...'), {lookups} keys:");
    println!("  HashMap::get + text encoding  {map_us:>8.2} µs");
    println!("  SessionContext planning       {plan_us:>8.2} µs");
    println!("  execution (index probe)       {exec_us:>8.2} µs");
    println!(
        "  ratio (planning + execution / HashMap): {:.0}",
        (plan_us + exec_us) / map_us
    );

    // 3. Memory.
    println!("memory for {rows} rows:");
    println!(
        "  Arrow size of the rows     {:>8.1} MiB ({:.0} B/row)",
        arrow_bytes as f64 / 1048576.0,
        arrow_bytes as f64 / rows as f64
    );
    println!(
        "  resident growth of store   {:>8.1} MiB ({:.0} B/row, index included)",
        store_resident as f64 / 1048576.0,
        store_resident as f64 / rows as f64
    );
    println!(
        "  ratio (resident / Arrow): {:.2}",
        store_resident as f64 / arrow_bytes as f64
    );

    // 4. Lookups under updates.
    let seconds = env_usize("BENCH_UPDATE_SECONDS", 5) as u64;
    let idle = lookup_latencies(&table, rows, Duration::from_secs(seconds));
    let stop = Arc::new(AtomicBool::new(false));
    let applied = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (table, stop, applied) = (Arc::clone(&table), Arc::clone(&stop), Arc::clone(&applied));
        std::thread::spawn(move || {
            let mut next = Instant::now();
            let mut round = 0usize;
            while !stop.load(Ordering::Relaxed) {
                // 1,000 updates of scattered existing keys, as a topic's updates come.
                let start = (round * 7_919_003) % rows.saturating_sub(1_000).max(1);
                let updates = batch(start, 1_000.min(rows));
                let changes: Vec<Change> = (0..updates.num_rows() as u32)
                    .map(|row| Change::Upsert { row })
                    .collect();
                table.apply(updates, &changes).expect("apply");
                applied.fetch_add(changes.len(), Ordering::Relaxed);
                round += 1;
                next += Duration::from_millis(10);
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        })
    };
    let started = Instant::now();
    let busy = lookup_latencies(&table, rows, Duration::from_secs(seconds));
    let rate = applied.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    println!(
        "ColumnarTable::lookup of one key, {seconds} s each ({} segments at the end):",
        table.segment_count()
    );
    for (name, mut samples) in [("no writer", idle), ("100,000 updates/s", busy)] {
        samples.sort_unstable();
        let at = |q: f64| support::quantile(&samples, q) as f64 / 1e3;
        println!(
            "  {name:<18} p50 {:>7.2} µs  p99 {:>7.2} µs  p99.9 {:>8.2} µs  max {:>9.2} µs  ({} lookups)",
            at(0.5),
            at(0.99),
            at(0.999),
            samples[samples.len() - 1] as f64 / 1e3,
            samples.len()
        );
    }
    println!("  updates applied: {rate:.0}/s");
}

/// Nanoseconds of each `lookup` of one key, for `length`.
fn lookup_latencies(table: &ColumnarTable, rows: usize, length: Duration) -> Vec<u64> {
    let mut samples = Vec::new();
    let started = Instant::now();
    let mut i = 0usize;
    while started.elapsed() < length {
        let key = format!("user-{:07}", (i * 7919) % rows);
        let at = Instant::now();
        let found = table.lookup(&[key.as_str()]).expect("lookup");
        samples.push(at.elapsed().as_nanos() as u64);
        std::hint::black_box(found);
        i += 1;
    }
    samples
}

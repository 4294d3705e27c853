//! `/metrics`: the engine's sources, the server's counters and the process, in
//! Prometheus' text format.
//!
//! Nothing here is counted on the ingest path: every source already keeps its
//! progress and counters for `ktable_tables` (`Engine::sources`), so a scrape reads
//! those, as a `prometheus_client` [`Collector`], and a source declared or dropped
//! at runtime appears or disappears with no registration to keep in step. The
//! server's counters are relaxed atomics it owns (`server::ServerMetrics`), read
//! the same way. `prometheus_client` does the naming (`_total`, units) and the text
//! encoding; it keeps no global state, so two engines in one process (tests) do not
//! see each other's metrics.

use super::process;
use crate::server::ServerMetrics;
use crate::sql::{Engine, SourceInfo};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::fmt::Error;
use std::sync::Arc;
use std::time::SystemTime;

/// The `Content-Type` of what [`Metrics::render`] returns.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Everything `/metrics` reports.
pub struct Metrics {
    registry: Registry,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Metrics of `engine`'s sources, of the server counting in `server` (if one
    /// runs), and of this process.
    pub fn new(engine: Arc<Engine>, server: Option<Arc<ServerMetrics>>) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SourceCollector(engine)));
        if let Some(server) = server {
            registry.register_collector(Box::new(ServerCollector(server)));
        }
        registry.register_collector(Box::new(ProcessCollector));
        Self { registry }
    }

    /// The metrics now, in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> Result<String, Error> {
        let mut text = String::with_capacity(8 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Writes one metric family: its descriptor, then one sample per `(labels, value)`.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric_type: MetricType,
    samples: impl IntoIterator<Item = (Vec<(&'static str, String)>, M)>,
) -> Result<(), Error> {
    let mut metric = encoder.encode_descriptor(name, help, unit, metric_type)?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One value with no labels.
fn single<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: M,
) -> Result<(), Error> {
    let metric = encoder.encode_descriptor(name, help, unit, value.metric_type())?;
    value.encode(metric)
}

/// Per-source metrics, read from `Engine::sources` at each scrape.
struct SourceCollector(Arc<Engine>);

impl std::fmt::Debug for SourceCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SourceCollector")
    }
}

impl Collector for SourceCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), Error> {
        let engine = &self.0;
        let sources = engine.sources();
        let table = |s: &SourceInfo| vec![("table", s.name.clone())];
        let gauges = |f: &dyn Fn(&SourceInfo) -> i64| {
            sources
                .iter()
                .map(|s| (table(s), ConstGauge::new(f(s))))
                .collect::<Vec<_>>()
        };
        let counters = |f: &dyn Fn(&SourceInfo) -> u64| {
            sources
                .iter()
                .map(|s| (table(s), ConstCounter::new(f(s))))
                .collect::<Vec<_>>()
        };
        let lag = sources.iter().flat_map(|s| {
            s.stats.partitions.iter().map(|p| {
                let labels = vec![
                    ("table", s.name.clone()),
                    ("partition", p.partition.to_string()),
                ];
                (labels, ConstGauge::new(p.lag() as i64))
            })
        });
        family(
            &mut encoder,
            "ktable_source_lag",
            "Offsets between each partition's read position and its newest known high watermark.",
            Some(&Unit::Other("offsets".into())),
            MetricType::Gauge,
            lag,
        )?;
        family(
            &mut encoder,
            "ktable_source_restored",
            "Offsets restored since the source started (of ktable_source_restore_target_offsets).",
            Some(&Unit::Other("offsets".into())),
            MetricType::Gauge,
            gauges(&|s| s.stats.offsets_done as i64),
        )?;
        family(
            &mut encoder,
            "ktable_source_restore_target",
            "Offsets to restore before the source is ready (high minus start watermark at start).",
            Some(&Unit::Other("offsets".into())),
            MetricType::Gauge,
            gauges(&|s| s.stats.offsets_total as i64),
        )?;
        family(
            &mut encoder,
            "ktable_source_ready",
            "1 while the source follows its topic: restored (every partition reached the high watermark seen at start) and Kafka reachable.",
            None,
            MetricType::Gauge,
            gauges(&|s| i64::from(s.stats.ready)),
        )?;
        family(
            &mut encoder,
            "ktable_source_kafka_reachable",
            "0 while the source cannot reach Kafka (waiting to start, or every broker down); it serves its last state meanwhile.",
            None,
            MetricType::Gauge,
            gauges(&|s| i64::from(!s.stats.kafka_unreachable)),
        )?;
        family(
            &mut encoder,
            "ktable_source_running",
            "1 while the source's consumer runs (0 after a stop or a fatal error, see ktable_tables.last_error).",
            None,
            MetricType::Gauge,
            gauges(&|s| i64::from(s.stats.running)),
        )?;
        family(
            &mut encoder,
            "ktable_source_rows",
            "Rows held: a table's keys, a stream's retained records.",
            None,
            MetricType::Gauge,
            gauges(&|s| s.stats.rows as i64),
        )?;
        let bytes = sources.iter().filter_map(|s| {
            let store = engine.table(&s.name)?;
            Some((table(s), ConstGauge::new(store.memory_bytes() as i64)))
        });
        family(
            &mut encoder,
            "ktable_source_memory",
            "Memory a table's store holds (Arrow buffers and key index); tables only.",
            Some(&Unit::Bytes),
            MetricType::Gauge,
            bytes,
        )?;
        family(
            &mut encoder,
            "ktable_source_upserts",
            "Records that set a key's value (for a stream: records appended).",
            None,
            MetricType::Counter,
            counters(&|s| s.stats.upserts),
        )?;
        family(
            &mut encoder,
            "ktable_source_tombstones",
            "Tombstones applied.",
            None,
            MetricType::Counter,
            counters(&|s| s.stats.tombstones),
        )?;
        family(
            &mut encoder,
            "ktable_source_null_keys",
            "Records without a key, dropped.",
            None,
            MetricType::Counter,
            counters(&|s| s.stats.null_keys),
        )?;
        family(
            &mut encoder,
            "ktable_source_bad_records",
            "Records that could not be decoded, skipped.",
            None,
            MetricType::Counter,
            counters(&|s| s.stats.bad_records),
        )?;
        let now = SystemTime::now();
        let ages = sources.iter().filter_map(|s| {
            let age = now
                .duration_since(s.stats.last_updated?)
                .unwrap_or_default();
            Some((table(s), ConstGauge::new(age.as_secs_f64())))
        });
        family(
            &mut encoder,
            "ktable_source_last_update_age",
            "Time since the source last applied records; absent until it applies any.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            ages,
        )?;
        Ok(())
    }
}

/// The server's counters.
#[derive(Debug)]
struct ServerCollector(Arc<ServerMetrics>);

impl Collector for ServerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), Error> {
        let server = &self.0;
        single(
            &mut encoder,
            "ktable_server_open_connections",
            "PostgreSQL connections open now.",
            None,
            ConstGauge::new(server.connections_open() as i64),
        )?;
        single(
            &mut encoder,
            "ktable_server_connections",
            "PostgreSQL connections accepted.",
            None,
            ConstCounter::new(server.connections_accepted()),
        )?;
        single(
            &mut encoder,
            "ktable_server_refused_connections",
            "PostgreSQL connections refused for a connection limit (SQLSTATE 53300 or closed).",
            None,
            ConstCounter::new(server.connections_refused()),
        )?;
        single(
            &mut encoder,
            "ktable_server_fast_path_lookups",
            "Point lookups answered from the key index without planning (also in ktable_server_statements_total{kind=\"point_lookup\"}).",
            None,
            ConstCounter::new(server.fast_path_lookups()),
        )?;
        let kinds = server.statements();
        let outcomes = kinds.iter().flat_map(|k| {
            [("ok", k.ok), ("error", k.error)].map(|(outcome, n)| {
                let labels = vec![
                    ("kind", k.label.as_str().to_string()),
                    ("outcome", outcome.to_string()),
                ];
                (labels, ConstCounter::new(n))
            })
        });
        family(
            &mut encoder,
            "ktable_server_statements",
            "Statements run, by kind and outcome.",
            None,
            MetricType::Counter,
            outcomes,
        )?;
        let mut durations = encoder.encode_descriptor(
            "ktable_server_statement_duration",
            "Time from a statement's arrival until its result was ready to send, by kind.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for kind in &kinds {
            let count = kind.ok + kind.error;
            let labels = vec![("kind", kind.label.as_str().to_string())];
            durations
                .encode_family(&labels)?
                .encode_histogram::<Vec<(&str, String)>>(
                    kind.duration_sum,
                    count,
                    &kind.buckets,
                    None,
                )?;
        }
        Ok(())
    }
}

/// The process: memory and version.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), Error> {
        if let Some(memory) = process::memory() {
            single(
                &mut encoder,
                "process_resident_memory",
                "Resident memory size.",
                Some(&Unit::Bytes),
                ConstGauge::new(memory.resident as i64),
            )?;
            single(
                &mut encoder,
                "process_virtual_memory",
                "Virtual memory size.",
                Some(&Unit::Bytes),
                ConstGauge::new(memory.virtual_size as i64),
            )?;
        }
        let mut info = encoder.encode_descriptor(
            "ktable_build",
            "The running ktable's version.",
            None,
            MetricType::Info,
        )?;
        info.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;
        Ok(())
    }
}

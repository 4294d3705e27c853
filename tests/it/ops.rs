//! The operations endpoint: `/metrics` agrees with `ktable_tables` and counts what
//! clients do; `/readyz` follows restore; `/healthz` answers.

use crate::broker::{json_record, produce_all, Broker};
use crate::eventually;
use crate::server::{connect_as, start_with};
use ktable::ops::{Endpoint, Metrics};
use ktable::server::{ServerConfig, ServerMetrics};
use ktable::sql::Engine;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An answer of the endpoint.
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    pub(crate) body: String,
}

/// `GET path` over a fresh connection (HTTP/1.1, closed after the answer).
pub(crate) async fn get(address: SocketAddr, path: &str) -> HttpResponse {
    let mut socket = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect to the HTTP endpoint");
    socket
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: ktable\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("send the request");
    let mut raw = Vec::new();
    socket.read_to_end(&mut raw).await.expect("read the answer");
    let raw = String::from_utf8(raw).expect("a UTF-8 answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    HttpResponse {
        status,
        body: body.to_string(),
    }
}

/// Serves the operations endpoint for `engine` (and `server`) on a free port until
/// the returned sender is dropped.
pub(crate) async fn endpoint(
    engine: &Arc<Engine>,
    server: Option<Arc<ServerMetrics>>,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let metrics = Metrics::new(Arc::clone(engine), server);
    let endpoint = Endpoint::bind(
        "127.0.0.1:0".parse().expect("address"),
        Arc::clone(engine),
        metrics,
    )
    .await
    .expect("bind the endpoint");
    let address = endpoint.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(endpoint.serve(async move {
        let _ = stopped.await;
    }));
    (address, stop)
}

/// One sample of the text format: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) value: f64,
}

/// The samples of a Prometheus text exposition; panics on a line it cannot read, so
/// a malformed exposition fails the test.
pub(crate) fn parse_samples(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            other => other
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                let labels = inner
                    .split("\",")
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (key, value) = pair
                            .split_once("=\"")
                            .unwrap_or_else(|| panic!("bad label in {line:?}"));
                        (key.to_string(), value.trim_end_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

/// The sum of the samples named `name` whose labels include every one of `labels`.
pub(crate) fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

async fn scrape(address: SocketAddr) -> Vec<Sample> {
    let response = get(address, "/metrics").await;
    assert_eq!(response.status, 200, "{}", response.body);
    parse_samples(&response.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_agree_with_ktable_tables_and_count_statements() {
    let broker = Broker::start();
    let server = start_with(&broker, ServerConfig::default()).await;
    let (http, _stop) = endpoint(&server.engine, Some(Arc::clone(&server.metrics))).await;
    let client = connect_as(&server, "ktable", "").await.expect("connect");

    let before = scrape(http).await;
    for name in [
        "ktable_source_lag_offsets",
        "ktable_source_restored_offsets",
        "ktable_source_restore_target_offsets",
        "ktable_source_ready",
        "ktable_source_running",
        "ktable_source_rows",
        "ktable_source_memory_bytes",
        "ktable_source_upserts_total",
        "ktable_source_tombstones_total",
        "ktable_source_null_keys_total",
        "ktable_source_bad_records_total",
        "ktable_source_last_update_age_seconds",
        "ktable_server_open_connections",
        "ktable_server_connections_total",
        "ktable_server_refused_connections_total",
        "ktable_server_fast_path_lookups_total",
        "ktable_server_statements_total",
        "ktable_server_statement_duration_seconds_bucket",
        "ktable_server_statement_duration_seconds_sum",
        "ktable_server_statement_duration_seconds_count",
        "process_resident_memory_bytes",
        "ktable_build_info",
    ] {
        assert!(
            before.iter().any(|s| s.name == name),
            "{name} missing from /metrics"
        );
    }
    assert!(value(&before, "process_resident_memory_bytes", &[]).unwrap_or(0.0) > 0.0);
    assert!(value(&before, "ktable_server_open_connections", &[]) >= Some(1.0));

    // The per-table values are those ktable_tables shows (the topics are quiet).
    let row = client
        .query_one(
            "SELECT rows, upserts, tombstones, offsets_done, offsets_total, lag_offsets, ready \
             FROM ktable_tables WHERE name = 'users'",
            &[],
        )
        .await
        .expect("ktable_tables");
    let users = [("table", "users")];
    let after_sql = scrape(http).await;
    let expect = |name: &str, column: usize| {
        let shown = row.get::<_, i64>(column) as f64;
        assert_eq!(value(&after_sql, name, &users), Some(shown), "{name}");
    };
    expect("ktable_source_rows", 0);
    expect("ktable_source_upserts_total", 1);
    expect("ktable_source_tombstones_total", 2);
    expect("ktable_source_restored_offsets", 3);
    expect("ktable_source_restore_target_offsets", 4);
    expect("ktable_source_lag_offsets", 5);
    assert_eq!(value(&after_sql, "ktable_source_rows", &users), Some(2.0));
    assert_eq!(value(&after_sql, "ktable_source_ready", &users), Some(1.0));
    // One lag series per partition of the 2-partition topic.
    let partitions = after_sql
        .iter()
        .filter(|s| {
            s.name == "ktable_source_lag_offsets"
                && s.labels.get("table").map(String::as_str) == Some("users")
        })
        .count();
    assert_eq!(partitions, 2);
    assert!(value(&after_sql, "ktable_source_memory_bytes", &users).unwrap_or(0.0) > 0.0);

    // Statements are counted by kind and outcome, with their durations.
    let ok_queries = |s: &[Sample]| {
        value(
            s,
            "ktable_server_statements_total",
            &[("kind", "query"), ("outcome", "ok")],
        )
        .unwrap_or(0.0)
    };
    let invalid = |s: &[Sample]| {
        value(
            s,
            "ktable_server_statements_total",
            &[("kind", "invalid"), ("outcome", "error")],
        )
        .unwrap_or(0.0)
    };
    let timed = |s: &[Sample]| {
        value(
            s,
            "ktable_server_statement_duration_seconds_count",
            &[("kind", "query")],
        )
        .unwrap_or(0.0)
    };
    for _ in 0..3 {
        client
            .simple_query("SELECT count(*) FROM users")
            .await
            .expect("count");
    }
    assert!(client.simple_query("SELEC nonsense").await.is_err());
    let after_queries = scrape(http).await;
    assert!(ok_queries(&after_queries) >= ok_queries(&after_sql) + 3.0);
    assert_eq!(invalid(&after_queries), invalid(&after_sql) + 1.0);
    assert!(timed(&after_queries) >= timed(&after_sql) + 3.0);
    // Each histogram's +Inf bucket holds every statement its count does.
    assert_eq!(
        value(
            &after_queries,
            "ktable_server_statement_duration_seconds_bucket",
            &[("kind", "query"), ("le", "+Inf")]
        ),
        Some(timed(&after_queries))
    );

    // A prepared lookup is served on the fast path, and counted there.
    let fast = |s: &[Sample]| value(s, "ktable_server_fast_path_lookups_total", &[]).unwrap_or(0.0);
    let lookup = client
        .prepare("SELECT name FROM users WHERE id = $1")
        .await
        .expect("prepare");
    for key in ["u1", "u2", "nobody"] {
        client.query(&lookup, &[&key]).await.expect("lookup");
    }
    let after_lookups = scrape(http).await;
    assert_eq!(fast(&after_lookups), fast(&after_queries) + 3.0);
    assert!(
        value(
            &after_lookups,
            "ktable_server_statements_total",
            &[("kind", "point_lookup"), ("outcome", "ok")]
        ) >= Some(3.0)
    );
    assert!(value(&after_lookups, "ktable_server_connections_total", &[]) >= Some(1.0));

    // The sample dashboard only names metrics the endpoint serves.
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/grafana-dashboard.json"
    ))
    .expect("docs/grafana-dashboard.json");
    serde_json::from_str::<serde_json::Value>(&dashboard).expect("the dashboard is JSON");
    for word in dashboard.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        let metric = word.starts_with("ktable_") || word.starts_with("process_");
        if metric && word != "ktable_tables" {
            assert!(
                after_lookups.iter().any(|s| s.name == word),
                "the dashboard names {word}, which /metrics does not serve"
            );
        }
    }

    let health = get(http, "/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = get(http, "/readyz").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    assert_eq!(get(http, "/nothing").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_a_stopped_table_and_the_metrics_show_it() {
    // A table over its memory limit stops ingesting for good: not ready, with why.
    let broker = Broker::start();
    let topic = broker.topic("ops-big", 1, &[]).await;
    let records: Vec<_> = (0..2_000)
        .map(|i| json_record(&format!("k{i}"), json!({"text": "x".repeat(200)})))
        .collect();
    produce_all(&broker.raw_producer(), &topic, &records).await;
    let engine = Arc::new(Engine::new(
        ktable::sql::EngineConfig::new(broker.brokers()).table_memory_limit(64 * 1024),
    ));
    let (http, _stop) = endpoint(&engine, None).await;
    assert_eq!(get(http, "/readyz").await.status, 200, "no source yet");
    engine
        .sql(&format!(
            "CREATE TABLE big (id TEXT PRIMARY KEY, text TEXT) WITH (topic = '{topic}')"
        ))
        .await
        .expect("create");
    let stopped = || !engine.sources()[0].stats.running;
    eventually("the table to stop at its memory limit", stopped).await;
    let ready = get(http, "/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.starts_with("big: stopped: "), "{}", ready.body);
    let samples = scrape(http).await;
    assert_eq!(
        value(&samples, "ktable_source_running", &[("table", "big")]),
        Some(0.0)
    );
    // Without a server, no server metrics.
    assert!(!samples.iter().any(|s| s.name.starts_with("ktable_server_")));
}

//! Real PostgreSQL clients against the server: tokio-postgres and psql.

use crate::broker::{json_record, produce_all, tombstone, Broker};
use crate::READY_TIMEOUT;
use ktable::server::{serve_counted, ServerConfig, ServerMetrics};
use ktable::sql::{Engine, EngineConfig};
use serde_json::json;
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

/// A server over an engine with a `users` table and an `orders` stream, on a free port.
pub(crate) struct TestServer {
    pub(crate) address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    /// Starts the server's graceful shutdown when sent (or dropped).
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub(crate) engine: Arc<Engine>,
    /// The topic behind the `users` table.
    pub(crate) users_topic: String,
    /// What the server counts (the operations endpoint reports it).
    pub(crate) metrics: Arc<ServerMetrics>,
}

impl TestServer {
    /// Begins the server's graceful shutdown, and returns a handle that completes
    /// when the server has stopped.
    pub(crate) fn shut_down(&mut self) -> &mut tokio::task::JoinHandle<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        &mut self.task
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
        self.engine.stop();
    }
}

async fn start(broker: &Broker) -> TestServer {
    start_with(broker, ServerConfig::default()).await
}

/// [`start`] with `config` (its listen address is replaced by a free port). The
/// `users` topic holds u1 (Ada, 36, 1.5), u2 (Kid, 9, no score) and a deleted u3.
pub(crate) async fn start_with(broker: &Broker, config: ServerConfig) -> TestServer {
    start_configured(broker, config, |engine| engine).await
}

/// [`start_with`] over an engine whose configuration `engine_config` adjusts.
pub(crate) async fn start_configured(
    broker: &Broker,
    config: ServerConfig,
    engine_config: impl FnOnce(EngineConfig) -> EngineConfig,
) -> TestServer {
    let users = broker.topic("pg-users", 2, &[]).await;
    let orders = broker.topic("pg-orders", 1, &[]).await;
    let producer = broker.raw_producer();
    produce_all(
        &producer,
        &users,
        &[
            json_record("u1", json!({"name": "Ada", "age": 36, "score": 1.5})),
            json_record("u2", json!({"name": "Kid", "age": 9, "score": null})),
            json_record("u3", json!({"name": "Gone", "age": 50})),
            tombstone("u3"),
        ],
    )
    .await;
    produce_all(
        &producer,
        &orders,
        &[
            json_record(
                "o1",
                json!({"order_id": "o1", "user_id": "u1", "amount": 10.0}),
            ),
            json_record(
                "o2",
                json!({"order_id": "o2", "user_id": "u2", "amount": 2.5}),
            ),
        ],
    )
    .await;
    let engine = Arc::new(Engine::new(engine_config(EngineConfig::new(
        broker.brokers(),
    ))));
    engine
        .run_script(
            engine.context(),
            &format!(
                "CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, age INT, score DOUBLE) WITH (topic = '{users}');\n\
                 CREATE STREAM orders (order_id TEXT, user_id TEXT, amount DOUBLE) WITH (topic = '{orders}');"
            ),
            "test",
        )
        .await
        .expect("sources");
    engine.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    // A free port: bind to 0, read it, let it go.
    let address = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let config = ServerConfig {
        listen: address,
        max_connections: config.max_connections.min(16),
        ..config
    };
    let serving = Arc::clone(&engine);
    let metrics = ServerMetrics::new();
    let counting = Arc::clone(&metrics);
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let stop = async move {
            let _ = stop.await;
        };
        if let Err(error) = serve_counted(serving, &config, counting, stop).await {
            panic!("server failed: {error}");
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(address).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the server did not listen on {address}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    TestServer {
        address,
        task,
        shutdown: Some(shutdown),
        engine,
        users_topic: users,
        metrics,
    }
}

async fn connect(server: &TestServer) -> tokio_postgres::Client {
    connect_as(server, "ktable", "").await.expect("connect")
}

/// A tokio-postgres connection as `user` with `password`.
pub(crate) async fn connect_as(
    server: &TestServer,
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host={} port={} user={user} password='{password}' dbname=ktable",
            server.address.ip(),
            server.address.port()
        ),
        NoTls,
    )
    .await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_queries_prepared_lookups_ddl_and_errors() {
    let broker = Broker::start();
    let server = start(&broker).await;
    let client = connect(&server).await;

    // Simple protocol.
    let rows = client
        .simple_query("SELECT id, name FROM users ORDER BY id")
        .await
        .expect("query");
    let names: Vec<&str> = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(1),
            _ => None,
        })
        .collect();
    assert_eq!(names, vec!["Ada", "Kid"]);

    // Extended protocol: a prepared key lookup with a typed parameter, NULLs, types.
    let lookup = client
        .prepare("SELECT name, age, score FROM users WHERE id = $1")
        .await
        .expect("prepare");
    let row = client.query_one(&lookup, &[&"u1"]).await.expect("u1");
    assert_eq!(row.get::<_, String>(0), "Ada");
    assert_eq!(row.get::<_, i32>(1), 36);
    assert_eq!(row.get::<_, Option<f64>>(2), Some(1.5));
    let row = client.query_one(&lookup, &[&"u2"]).await.expect("u2");
    assert_eq!(row.get::<_, Option<f64>>(2), None);
    assert!(
        client
            .query_opt(&lookup, &[&"u3"])
            .await
            .expect("u3")
            .is_none(),
        "deleted by a tombstone"
    );

    // A join of the stream with the table.
    let joined = client
        .query(
            "SELECT o.order_id, u.name FROM orders o JOIN users u ON o.user_id = u.id WHERE u.age >= $1 ORDER BY 1",
            &[&18i32],
        )
        .await
        .expect("join");
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0].get::<_, String>(1), "Ada");

    // DDL over the wire, and errors with SQLSTATE codes.
    let extra = broker.topic("pg-extra", 1, &[]).await;
    client
        .simple_query(&format!(
            "CREATE STREAM extra (v INT) WITH (topic = '{extra}')"
        ))
        .await
        .expect("create stream over the wire");
    let listed = client
        .simple_query("SELECT name, kind FROM ktable_tables ORDER BY name")
        .await
        .expect("system table");
    assert_eq!(
        listed
            .iter()
            .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
            .count(),
        3
    );
    let duplicate = client
        .simple_query(&format!(
            "CREATE STREAM extra (v INT) WITH (topic = '{extra}')"
        ))
        .await
        .expect_err("a duplicate");
    assert_eq!(
        duplicate.code().map(|c| c.code()),
        Some("42P07"),
        "{duplicate:?}"
    );
    let invalid = client
        .simple_query("CREATE TABLE t (id DOUBLE PRECISION PRIMARY KEY) WITH (topic = 'x')")
        .await
        .expect_err("an invalid table");
    assert_eq!(invalid.code().map(|c| c.code()), Some("42P16"));
    client
        .simple_query("DROP STREAM extra")
        .await
        .expect("drop");
    let bad = client
        .simple_query("SELEC nonsense")
        .await
        .expect_err("a bad query");
    assert!(bad.code().is_some(), "errors carry a SQLSTATE: {bad:?}");
    // Drivers parse version() as PostgreSQL's.
    let version: String = client
        .query_one("SELECT version()", &[])
        .await
        .expect("version")
        .get(0);
    assert!(version.starts_with("PostgreSQL 16."), "{version}");
    // The connection survives its errors.
    assert_eq!(
        client
            .query_one("SELECT count(*) FROM users", &[])
            .await
            .expect("count")
            .get::<_, i64>(0),
        2
    );
}

fn psql(server: &TestServer, command: &str) -> std::process::Output {
    psql_as(server, "ktable", "", "disable", command)
}

/// psql (Debian's postgresql-client) running one command as `user`, unaligned and
/// without headers, stopping at the first error.
pub(crate) fn psql_as(
    server: &TestServer,
    user: &str,
    password: &str,
    sslmode: &str,
    command: &str,
) -> std::process::Output {
    Command::new("psql")
        .arg(format!(
            "host={} port={} user={user} dbname=ktable sslmode={sslmode}",
            server.address.ip(),
            server.address.port()
        ))
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", command])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql runs (Debian package postgresql-client)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_lists_describes_queries_and_reports_errors() {
    let broker = Broker::start();
    let server = start(&broker).await;
    let server = Arc::new(server);
    let run = |command: &'static str| {
        let server = Arc::clone(&server);
        tokio::task::spawn_blocking(move || psql(&server, command))
    };

    let joined = run("SELECT o.order_id || ':' || u.name FROM orders o JOIN users u ON o.user_id = u.id ORDER BY 1")
        .await
        .expect("psql");
    assert!(
        joined.status.success(),
        "{}",
        String::from_utf8_lossy(&joined.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&joined.stdout).trim(),
        "o1:Ada\no2:Kid"
    );

    let tables = run("\\dt").await.expect("psql");
    let listed = String::from_utf8_lossy(&tables.stdout);
    assert!(
        tables.status.success(),
        "{}",
        String::from_utf8_lossy(&tables.stderr)
    );
    assert!(
        listed.contains("users") && listed.contains("orders"),
        "{listed}"
    );

    let described = run("\\d users").await.expect("psql");
    let text = String::from_utf8_lossy(&described.stdout);
    assert!(
        described.status.success(),
        "{}",
        String::from_utf8_lossy(&described.stderr)
    );
    assert!(text.contains("name") && text.contains("age"), "{text}");

    let bad = run("SELECT * FROM no_such_table").await.expect("psql");
    assert!(!bad.status.success());
    let message = String::from_utf8_lossy(&bad.stderr);
    assert!(
        message.contains("ERROR") && message.contains("no_such_table"),
        "{message}"
    );
}

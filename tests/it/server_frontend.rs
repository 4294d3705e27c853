//! The server over the engine's one statement front end: literal lookups on the
//! simple protocol and statements parsed anew on every execution are served from
//! their shape with DataFusion's answers; TLS can be required; shutdown lets running
//! statements finish and closes idle sessions with 57P01.

use crate::broker::{json_record, produce_all, Broker};
use crate::server::{connect_as, start_with};
use ktable::server::ServerConfig;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_postgres::SimpleQueryMessage;

/// The rows of a simple query, as text.
async fn simple_rows(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn literal_lookups_answer_like_datafusion_and_stay_live() {
    let broker = Broker::start();
    let server = start_with(&broker, ServerConfig::default()).await;
    let client = connect_as(&server, "ktable", "").await.expect("connect");
    // Keys that exist, one that does not, quotes in the key, case of keywords and
    // layout: each against DataFusion's answer for the same rows (an IN list is not a
    // point lookup).
    for _round in 0..2 {
        for key in ["u1", "u2", "nobody", "it''s"] {
            for (fast, planned) in [
                (
                    format!("SELECT name, age AS years FROM users WHERE id = '{key}'"),
                    format!("SELECT name, age AS years FROM users WHERE id IN ('{key}', 'never')"),
                ),
                (
                    format!("select *\n  from users u where u.id='{key}';"),
                    format!("SELECT * FROM users u WHERE u.id IN ('{key}', 'never')"),
                ),
            ] {
                assert_eq!(
                    simple_rows(&client, &fast).await,
                    simple_rows(&client, &planned).await,
                    "{fast}"
                );
            }
        }
    }
    let ada = simple_rows(&client, "SELECT name FROM users WHERE id = 'u1'").await;
    assert_eq!(ada, vec![vec![Some("Ada".to_string())]]);
    // Not lookups, though they look alike: answered by DataFusion all the same.
    let upper = simple_rows(&client, "SELECT upper(name) FROM users WHERE id = 'u1'").await;
    assert_eq!(upper, vec![vec![Some("ADA".to_string())]]);
    let two = simple_rows(
        &client,
        "SELECT count(*) FROM users WHERE id = 'u1' OR id = 'u2'",
    )
    .await;
    assert_eq!(two, vec![vec![Some("2".to_string())]]);

    // Live: an update shows in the next literal lookup.
    produce_all(
        &broker.raw_producer(),
        &server.users_topic,
        &[json_record("u1", json!({"name": "Ada L.", "age": 37}))],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while simple_rows(&client, "SELECT name FROM users WHERE id = 'u1'").await
        != vec![vec![Some("Ada L.".to_string())]]
    {
        assert!(Instant::now() < deadline, "the update never showed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A table declared again with other columns: the shape is planned anew.
    client
        .batch_execute(&format!(
            "DROP TABLE users; CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT) WITH (topic = '{}')",
            server.users_topic
        ))
        .await
        .expect("declare again");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = simple_rows(&client, "SELECT * FROM users WHERE id = 'u1'").await;
        if let Some(row) = rows.first() {
            assert_eq!(row.len(), 2, "the new table's columns: {row:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the table never restored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_parsed_anew_each_time_give_datafusions_answers() {
    let broker = Broker::start();
    let server = start_with(&broker, ServerConfig::default()).await;
    let client = connect_as(&server, "ktable", "").await.expect("connect");
    // tokio-postgres parses a text query as an unnamed statement on every call, as
    // drivers without statement caching do.
    for _ in 0..3 {
        for key in ["u1", "u2", "nobody"] {
            let fast = client
                .query("SELECT name, age FROM users WHERE id = $1", &[&key])
                .await
                .expect("lookup");
            let planned = client
                .query(
                    "SELECT name, age FROM users WHERE id IN ($1, 'never')",
                    &[&key],
                )
                .await
                .expect("datafusion");
            let as_tuples = |rows: &[tokio_postgres::Row]| {
                rows.iter()
                    .map(|r| (r.get::<_, String>(0), r.get::<_, i32>(1)))
                    .collect::<Vec<_>>()
            };
            assert_eq!(as_tuples(&fast), as_tuples(&planned), "key {key}");
        }
    }
    // Parameters of other types still go through DataFusion, with its answers.
    let older = client
        .query("SELECT id FROM users WHERE age > $1 ORDER BY id", &[&30i32])
        .await
        .expect("a range");
    assert!(!older.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_postgres_sqlstates() {
    let broker = Broker::start();
    let server = start_with(&broker, ServerConfig::default()).await;
    let client = connect_as(&server, "ktable", "").await.expect("connect");
    for (sql, code) in [
        ("SELEC 1", "42601"),
        ("SELECT * FROM no_such_table", "42P01"),
        ("SELECT no_such_column FROM users", "42703"),
        ("SELECT 1; SELECT 2 FROM", "42601"),
    ] {
        let error = client.simple_query(sql).await.expect_err(sql);
        let code_seen = error.code().map(|c| c.code().to_string());
        assert_eq!(code_seen.as_deref(), Some(code), "{sql}: {error}");
        // The extended protocol says the same.
        if !sql.contains(';') {
            let error = client.query(sql, &[]).await.expect_err(sql);
            assert_eq!(error.code().map(|c| c.code()), Some(code), "{sql}: {error}");
        }
    }
    // The session goes on.
    assert_eq!(
        simple_rows(&client, "SELECT 1").await,
        vec![vec![Some("1".into())]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_sessions_and_refuses_new_ones() {
    let broker = Broker::start();
    let mut server = start_with(
        &broker,
        ServerConfig {
            shutdown_grace: Duration::from_secs(10),
            ..ServerConfig::default()
        },
    )
    .await;
    let idle = connect_as(&server, "ktable", "").await.expect("connect");
    let address = server.address;
    let stopped = server.shut_down();
    tokio::time::timeout(Duration::from_secs(15), stopped)
        .await
        .expect("the server stops within its grace period")
        .expect("the server task ends cleanly");
    // The idle session was told why it ended.
    let error = idle.simple_query("SELECT 1").await.expect_err("closed");
    assert!(
        error.is_closed() || error.code().map(|c| c.code()) == Some("57P01"),
        "{error}"
    );
    assert!(
        tokio::net::TcpStream::connect(address).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_tls_needs_a_certificate() {
    let broker = Broker::start();
    let engine = std::sync::Arc::new(ktable::sql::Engine::new(ktable::sql::EngineConfig::new(
        broker.brokers(),
    )));
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        require_tls: true,
        ..ServerConfig::default()
    };
    let refused = tokio::time::timeout(
        Duration::from_secs(5),
        ktable::server::serve(engine, &config, std::future::pending()),
    )
    .await
    .expect("serve returns at once");
    assert!(
        refused.is_err(),
        "require_tls without a certificate: {refused:?}"
    );
}

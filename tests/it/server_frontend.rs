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

/// A source declared over the wire belongs to the engine, not to the server's
/// connection threads: it keeps ingesting once the server has stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_declared_over_the_wire_outlives_the_server() {
    let broker = Broker::start();
    let mut server = start_with(&broker, ServerConfig::default()).await;
    let topic = broker.topic("pg-outlives", 1, &[]).await;
    let client = connect_as(&server, "ktable", "").await.expect("connect");
    client
        .batch_execute(&format!(
            "CREATE TABLE outlives (id TEXT PRIMARY KEY, name TEXT) WITH (topic = '{topic}')"
        ))
        .await
        .expect("declare");
    drop(client);
    tokio::time::timeout(Duration::from_secs(15), server.shut_down())
        .await
        .expect("the server stops")
        .expect("the server task ends cleanly");
    produce_all(
        &broker.raw_producer(),
        &topic,
        &[json_record("a", json!({"name": "After"}))],
    )
    .await;
    let deadline = Instant::now() + crate::READY_TIMEOUT;
    loop {
        let table = server.engine.table("outlives").expect("still declared");
        if let Some(row) = table.lookup_one("a") {
            let names = row
                .column(1)
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .expect("name is TEXT");
            assert_eq!(names.value(0), "After");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the record produced after the server stopped never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

/// The first column of a simple query's rows, NULLs left out.
async fn first_column(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    let rows = simple_rows(client, sql).await;
    rows.into_iter().filter_map(|r| r[0].clone()).collect()
}

/// The first column of prepared-statement rows.
fn owners(rows: Vec<tokio_postgres::Row>) -> Vec<String> {
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integer_and_composite_keys_are_looked_up_like_a_scan() {
    let broker = Broker::start();
    let server = start_with(&broker, ServerConfig::default()).await;
    let client = connect_as(&server, "ktable", "").await.expect("connect");
    let accounts = broker.topic("pg-accounts", 2, &[]).await;
    let members = broker.topic("pg-members", 1, &[]).await;
    produce_all(
        &broker.raw_producer(),
        &accounts,
        &[
            json_record("7", json!({"owner": "Ada"})),
            json_record("42", json!({"owner": "Kid"})),
            json_record("3000000000", json!({"owner": "Big"})),
        ],
    )
    .await;
    produce_all(
        &broker.raw_producer(),
        &members,
        &[
            json_record(r#"{"tenant": "acme", "id": 1}"#, json!({"name": "Ann"})),
            json_record(r#"{"tenant": "acme", "id": 2}"#, json!({"name": "Bo"})),
            json_record(r#"{"tenant": "zeta", "id": 1}"#, json!({"name": "Cy"})),
        ],
    )
    .await;
    client
        .batch_execute(&format!(
            "CREATE TABLE accounts (id INT PRIMARY KEY, owner TEXT) WITH (topic = '{accounts}');\n\
             CREATE TABLE wide (id BIGINT PRIMARY KEY, owner TEXT) WITH (topic = '{accounts}');\n\
             CREATE TABLE members (tenant TEXT, id INT, name TEXT, PRIMARY KEY (tenant, id)) \
               WITH (topic = '{members}', key_format = 'json');"
        ))
        .await
        .expect("declare");
    server
        .engine
        .wait_until_ready(crate::READY_TIMEOUT)
        .await
        .expect("ready");

    // Prepared lookups with an integer parameter (tokio-postgres binds it in binary),
    // and literal lookups on the simple protocol, against a scan of the same rows.
    let by_id = client
        .prepare("SELECT owner FROM accounts WHERE id = $1")
        .await
        .expect("prepare");
    assert_eq!(by_id.params(), &[tokio_postgres::types::Type::INT4]);
    let by_wide_id = client
        .prepare("SELECT owner FROM wide WHERE id = $1")
        .await
        .expect("prepare");
    for round in 0..2 {
        for key in [7i32, 42, 8, -1] {
            let fast = owners(client.query(&by_id, &[&key]).await.expect("lookup"));
            let scanned = first_column(
                &client,
                &format!("SELECT owner FROM accounts WHERE id IN ({key}, -99)"),
            )
            .await;
            assert_eq!(fast, scanned, "round {round}, key {key}");
            let literal = first_column(
                &client,
                &format!("SELECT owner FROM accounts WHERE id = {key}"),
            )
            .await;
            assert_eq!(literal, scanned, "literal, round {round}, key {key}");
        }
        for key in [3_000_000_000i64, 7, 9] {
            let fast = owners(client.query(&by_wide_id, &[&key]).await.expect("lookup"));
            let scanned = first_column(
                &client,
                &format!("SELECT owner FROM wide WHERE id IN ({key}, -99)"),
            )
            .await;
            assert_eq!(fast, scanned, "bigint key {key}");
        }
    }
    // A key that does not fit INT (the record is bad for `accounts`), and a string
    // compared with an integer key: DataFusion's answers, whatever they are.
    for (fast, planned) in [
        (
            "SELECT owner FROM accounts WHERE id = 3000000000",
            "SELECT owner FROM accounts WHERE id IN (3000000000, -99)",
        ),
        (
            "SELECT owner FROM accounts WHERE id = '42'",
            "SELECT owner FROM accounts WHERE id IN ('42', '-99')",
        ),
    ] {
        assert_eq!(
            client.simple_query(fast).await.map(|m| m.len()).ok(),
            client.simple_query(planned).await.map(|m| m.len()).ok(),
            "{fast}"
        );
    }

    // A composite key: `id = $1` names only part of it, so every tenant's row 1 comes
    // back, as from a scan.
    let part = client
        .query(
            "SELECT tenant, name FROM members WHERE id = $1 ORDER BY tenant",
            &[&1i32],
        )
        .await
        .expect("part of a composite key");
    let names: Vec<String> = part.iter().map(|r| r.get(1)).collect();
    assert_eq!(names, vec!["Ann".to_string(), "Cy".to_string()]);
    let both = simple_rows(
        &client,
        "SELECT name FROM members WHERE tenant = 'acme' AND id = 2",
    )
    .await;
    assert_eq!(both, vec![vec![Some("Bo".to_string())]]);
    let unordered = client
        .query("SELECT name FROM members WHERE id = $1", &[&2i32])
        .await
        .expect("part of a composite key, unordered");
    assert_eq!(unordered.len(), 1);

    // pgjdbc's getPrimaryKeys (its query text, 42.7): a row per key column, in key
    // order, as PostgreSQL answers for a composite primary key.
    let keys = simple_rows(
        &client,
        "SELECT result.TABLE_CAT, result.TABLE_SCHEM, result.TABLE_NAME, result.COLUMN_NAME, \
         result.KEY_SEQ, result.PK_NAME FROM (SELECT NULL AS TABLE_CAT, n.nspname AS TABLE_SCHEM, \
         ct.relname AS TABLE_NAME, a.attname AS COLUMN_NAME, \
         (information_schema._pg_expandarray(i.indkey)).n AS KEY_SEQ, ci.relname AS PK_NAME, \
         information_schema._pg_expandarray(i.indkey) AS KEYS, a.attnum AS A_ATTNUM \
         FROM pg_catalog.pg_class ct JOIN pg_catalog.pg_attribute a ON (ct.oid = a.attrelid) \
         JOIN pg_catalog.pg_namespace n ON (ct.relnamespace = n.oid) \
         JOIN pg_catalog.pg_index i ON ( a.attrelid = i.indrelid) \
         JOIN pg_catalog.pg_class ci ON (ci.oid = i.indexrelid) \
         WHERE true AND n.nspname = E'public' AND ct.relname = E'members' AND i.indisprimary ) result \
         where  result.A_ATTNUM = (result.KEYS).x  ORDER BY result.table_name, result.pk_name, result.key_seq",
    )
    .await;
    let text = |v: &str| Some(v.to_string());
    assert_eq!(
        keys,
        vec![
            vec![
                None,
                text("public"),
                text("members"),
                text("tenant"),
                text("1"),
                text("members_pkey")
            ],
            vec![
                None,
                text("public"),
                text("members"),
                text("id"),
                text("2"),
                text("members_pkey")
            ],
        ]
    );
}

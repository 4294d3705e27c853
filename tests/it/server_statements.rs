//! What one statement from a logged-in user can do to the server, tried with
//! tokio-postgres on both protocols: nothing it sends aborts the process, reaches the
//! host's files, changes another session's settings, or takes unbounded memory.

use crate::broker::Broker;
use crate::server::{connect_as, start_configured, start_with, TestServer};
use ktable::server::{ServerConfig, UserConfig};
use ktable::sql::DEFAULT_MAX_EXPRESSION_DEPTH;
use tokio_postgres::{Client, SimpleQueryMessage};

fn user(name: &str, password: &str, read_only: bool) -> UserConfig {
    UserConfig {
        name: name.into(),
        password: password.into(),
        read_only,
    }
}

fn users() -> ServerConfig {
    ServerConfig {
        users: vec![user("admin", "s3cret", false), user("reader", "r34d", true)],
        ..ServerConfig::default()
    }
}

async fn admin(server: &TestServer) -> Client {
    connect_as(server, "admin", "s3cret").await.expect("admin")
}

async fn reader(server: &TestServer) -> Client {
    connect_as(server, "reader", "r34d").await.expect("reader")
}

/// The SQLSTATE of a failed statement.
fn code(error: &tokio_postgres::Error) -> String {
    error
        .code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("no SQLSTATE: {error:?}"))
}

/// The first column of the first row of a simple query.
async fn first_value(client: &Client, sql: &str) -> String {
    let messages = client.simple_query(sql).await.expect(sql);
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

/// Fails `sql` on both protocols and returns the two SQLSTATEs.
async fn both_codes(client: &Client, sql: &str) -> (String, String) {
    let simple = client.simple_query(sql).await.expect_err(sql);
    let extended = client.query(sql, &[]).await.expect_err(sql);
    (code(&simple), code(&extended))
}

/// Fails each statement on both protocols with 54001 (statement_too_complex).
async fn all_fail_with_54001(client: &Client, statements: &[String]) {
    for sql in statements {
        let (simple, extended) = both_codes(client, sql).await;
        assert_eq!(
            (simple.as_str(), extended.as_str()),
            ("54001", "54001"),
            "{}...",
            &sql[..sql.len().min(60)]
        );
    }
}

/// `SELECT 1 + 1 + ... + 1` with `terms` ones: an expression `terms` deep.
fn sum_of_ones(terms: usize) -> String {
    format!("SELECT {}", vec!["1"; terms].join(" + "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_flat_expressions_fail_with_54001_and_the_server_lives() {
    let broker = Broker::start();
    let server = start_with(&broker, users()).await;
    let reader = reader(&server).await;

    let ors: Vec<String> = (0..1500).map(|i| format!("id = 'k{i}'")).collect();
    let attacks = [
        format!("SELECT count(*) FROM users WHERE {}", ors.join(" OR ")),
        sum_of_ones(3000),
        // A megabyte of SQL: refused from its tokens, never built into a tree.
        format!("SELECT 1{}", "+1".repeat(500_000)),
        format!(
            "SELECT CASE WHEN {} THEN 1 END",
            vec!["true"; 5000].join(" AND ")
        ),
    ];
    all_fail_with_54001(&reader, &attacks).await;

    // At the limit, statements run on both protocols, and a cursor plans them too.
    let limit = DEFAULT_MAX_EXPRESSION_DEPTH;
    let edge = sum_of_ones(limit);
    assert_eq!(first_value(&reader, &edge).await, limit.to_string());
    let row = reader
        .query_one(&edge, &[])
        .await
        .expect("extended, at the limit");
    assert_eq!(row.get::<_, i64>(0), limit as i64);
    let ors: Vec<String> = (0..limit - 2).map(|i| format!("id = 'u{i}'")).collect();
    let filter = format!("SELECT count(*) FROM users WHERE {}", ors.join(" OR "));
    assert_eq!(first_value(&reader, &filter).await, "2", "u1 and u2 match");
    reader
        .batch_execute(&format!("BEGIN; DECLARE deep CURSOR FOR {edge}"))
        .await
        .expect("declare at the limit");
    assert_eq!(
        first_value(&reader, "FETCH 1 FROM deep").await,
        limit.to_string()
    );
    reader.batch_execute("COMMIT").await.expect("commit");
    // One past it, it is refused.
    let (simple, extended) = both_codes(&reader, &sum_of_ones(limit + 1)).await;
    assert_eq!((simple.as_str(), extended.as_str()), ("54001", "54001"));

    assert_eq!(
        first_value(&reader, "SELECT count(*) FROM users").await,
        "2"
    );
}

/// `SELECT unit unit unit ...` with `unit` `times` times.
fn nested(unit: &str, times: usize) -> String {
    format!("SELECT {}", unit.repeat(times))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_that_would_parse_for_days_fail_with_54001_and_the_server_lives() {
    let broker = Broker::start();
    let server = start_with(&broker, users()).await;
    let reader = reader(&server).await;
    let admin = admin(&server).await;

    // sqlparser tries each call's argument twice (as a named argument's name, then as
    // a value) and `CAST(` twice (as the cast, then as a function named cast): forty
    // nested, 2^40 tries. The first is what libFuzzer found.
    let found_by_the_fuzzer = "SELECT \n((E(SELECT(ECT \n((E(SELECT(( \nE((S(T\n \
        ((SE(SELECT(( \nE((S(T ( \nE((S(T\n ((SE(SELECT(( \nE((S(T (u";
    let calls = nested("E(", 40);
    let casts = nested("CAST(", 40);
    // Balanced parentheses as well: the parse is as long, and SUBSCRIBE's own syntax
    // needs them to reach it.
    let closed_calls = format!("{calls}1{}", ")".repeat(40));
    let attacks = [
        found_by_the_fuzzer.to_string(),
        calls.clone(),
        casts,
        closed_calls.clone(),
        format!("SUBSCRIBE ({closed_calls})"),
        format!("COPY ({closed_calls}) TO STDOUT"),
        format!("EXPLAIN {calls}"),
    ];
    all_fail_with_54001(&reader, &attacks).await;
    // Source DDL is parsed by its own parser: held to the same budget.
    let ddl = format!(
        "CREATE STREAM s (a INT DEFAULT {}) WITH (topic = 's')",
        "E(".repeat(40)
    );
    assert_eq!(
        both_codes(&admin, &ddl).await,
        ("54001".into(), "54001".into())
    );

    // Calls nested as deep as people write them still run.
    let deep_enough = format!("SELECT {}-7{}", "abs(".repeat(10), ")".repeat(10));
    assert_eq!(first_value(&reader, &deep_enough).await, "7");
    assert_eq!(
        first_value(&reader, "SELECT count(*) FROM users").await,
        "2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_statement_reaches_the_hosts_files() {
    let broker = Broker::start();
    let server = start_with(&broker, users()).await;
    let admin = admin(&server).await;
    let dir = std::env::temp_dir().join(format!("ktable-host-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let secret = dir.join("secret.csv");
    std::fs::write(&secret, "a\n1\n").expect("secret");
    let written = dir.join("written.csv");

    for sql in [
        format!("COPY (SELECT * FROM users) TO '{}'", written.display()),
        format!("COPY users TO '{}' STORED AS CSV", written.display()),
        format!(
            "CREATE EXTERNAL TABLE leak STORED AS CSV LOCATION '{}'",
            secret.display()
        ),
        format!("EXPLAIN ANALYZE COPY (SELECT 1) TO '{}'", written.display()),
    ] {
        let (simple, extended) = both_codes(&admin, &sql).await;
        assert_eq!(
            (simple.as_str(), extended.as_str()),
            ("42501", "42501"),
            "{sql}"
        );
    }
    assert!(!written.exists(), "a file was written on the host");
    let error = admin
        .simple_query("SELECT * FROM leak")
        .await
        .expect_err("no external table");
    assert_ne!(code(&error), "00000");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_belong_to_their_session() {
    let broker = Broker::start();
    let server = start_with(&broker, users()).await;
    let reader = reader(&server).await;
    let other = admin(&server).await;

    // DataFusion's resource settings are the operator's.
    for sql in [
        "SET datafusion.runtime.memory_limit = '1K'",
        "SET datafusion.execution.batch_size = 7",
        "SET datafusion.execution.target_partitions = 64",
        "RESET datafusion.execution.batch_size",
        "SET no_such_setting = 1",
        "SET ROLE admin",
    ] {
        let (simple, extended) = both_codes(&reader, sql).await;
        assert_eq!(
            (simple.as_str(), extended.as_str()),
            ("42501", "42501"),
            "{sql}"
        );
    }
    let aggregate = "SELECT age, count(*) FROM users GROUP BY age ORDER BY age";
    assert_eq!(
        other
            .simple_query(aggregate)
            .await
            .expect("aggregate")
            .len(),
        4
    );

    // What a session may set, it sets for itself.
    for sql in [
        "SET application_name = 'attacker'",
        "SET extra_float_digits = 3",
        "SET datafusion.explain.format = 'tree'",
    ] {
        reader.batch_execute(sql).await.expect(sql);
    }
    // The tree format draws boxes; the default indents.
    assert!(explains_as_tree(&reader).await, "the session's own setting");
    assert!(
        !explains_as_tree(&other).await,
        "another session's setting leaked"
    );
    let fresh = admin(&server).await;
    assert!(
        !explains_as_tree(&fresh).await,
        "a setting outlived its session"
    );
}

/// `SHOW :` parses as a SHOW of no setting, which datafusion-postgres's hook indexes
/// without looking (found by the pgwire fuzzer: the connection's task panicked). It is
/// a syntax error on both protocols, and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_show_without_a_setting_is_a_syntax_error() {
    let broker = Broker::start();
    let server = start_with(&broker, users()).await;
    let reader = reader(&server).await;
    let (simple, extended) = both_codes(&reader, "SHOW :").await;
    assert_eq!((simple.as_str(), extended.as_str()), ("42601", "42601"));
    assert_eq!(first_value(&reader, "SELECT 1 + 1").await, "2");
}

async fn explains_as_tree(client: &Client) -> bool {
    let messages = client
        .simple_query("EXPLAIN SELECT count(*) FROM users")
        .await
        .expect("explain");
    messages.iter().any(|m| match m {
        SimpleQueryMessage::Row(row) => {
            (0..row.len()).any(|i| row.get(i).is_some_and(|v| v.contains('┌')))
        }
        _ => false,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_created_objects_need_the_write_role_and_count_against_a_limit() {
    let broker = Broker::start();
    let server = start_configured(&broker, users(), |engine| engine.max_user_objects(2)).await;
    let admin = admin(&server).await;
    let reader = reader(&server).await;

    let (simple, extended) = both_codes(&reader, "CREATE VIEW v0 AS SELECT 1 AS a").await;
    assert_eq!((simple.as_str(), extended.as_str()), ("42501", "42501"));
    admin
        .batch_execute("CREATE VIEW v1 AS SELECT id FROM users")
        .await
        .expect("first");
    admin
        .batch_execute("CREATE TABLE t2 AS SELECT 1 AS a")
        .await
        .expect("second");
    let (simple, extended) = both_codes(&admin, "CREATE VIEW v3 AS SELECT 1 AS a").await;
    assert_eq!((simple.as_str(), extended.as_str()), ("53400", "53400"));
    admin.batch_execute("DROP VIEW v1").await.expect("drop");
    admin
        .batch_execute("CREATE VIEW v3 AS SELECT 1 AS a")
        .await
        .expect("room again after a drop");
}

/// Each Kafka source holds a consumer and a thread: a writer cannot declare them
/// without end. The two of the start-up script count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_sources_count_against_a_limit() {
    let broker = Broker::start();
    let server = start_configured(&broker, users(), |engine| engine.max_sources(3)).await;
    let admin = admin(&server).await;
    let extra = broker.topic("pg-extra", 1, &[]).await;
    let declare = |name: &str| format!("CREATE STREAM {name} (v TEXT) WITH (topic = '{extra}')");
    admin
        .batch_execute(&declare("s1"))
        .await
        .expect("the third source");
    let (simple, extended) = both_codes(&admin, &declare("s2")).await;
    assert_eq!((simple.as_str(), extended.as_str()), ("53400", "53400"));
    let sources = first_value(&admin, "SELECT count(*) FROM ktable_tables").await;
    assert_eq!(sources, "3", "a refused source is not registered");
    admin.batch_execute("DROP STREAM s1").await.expect("drop");
    admin
        .batch_execute(&declare("s2"))
        .await
        .expect("room again after a drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_its_memory_fails_with_53200_alone() {
    let broker = Broker::start();
    let server = start_configured(&broker, users(), |engine| {
        engine.query_memory_limit(4 << 20)
    })
    .await;
    let other = reader(&server).await;
    let reader = reader(&server).await;

    for sql in [
        "SELECT length(repeat('x', 1000000000))",
        "SELECT length(lpad('x', 1000000000, 'y'))",
        // The hash table of a join's build side (it cannot spill) needs far more.
        "SELECT count(*) FROM generate_series(1, 2000000) AS a(v) JOIN generate_series(1, 2000000) AS b(w) ON a.v = b.w",
    ] {
        let (simple, extended) = both_codes(&reader, sql).await;
        assert_eq!((simple.as_str(), extended.as_str()), ("53200", "53200"), "{sql}");
    }
    // Within the limit the same functions answer, and other sessions are untouched.
    assert_eq!(
        first_value(&reader, "SELECT length(repeat('ab', 1000))").await,
        "2000"
    );
    assert_eq!(
        first_value(&other, "SELECT count(*) FROM (SELECT v % 1000 AS k FROM generate_series(1, 100000) AS t(v) GROUP BY k)").await,
        "1000"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_relation_name_is_refused() {
    let broker = Broker::start();
    let server = start_with(&broker, users()).await;
    let admin = admin(&server).await;
    let topic = broker.topic("pg-empty-name", 1, &[]).await;
    let error = admin
        .simple_query(&format!(
            "CREATE STREAM \"\" (v INT) WITH (topic = '{topic}')"
        ))
        .await
        .expect_err("empty name");
    assert_eq!(code(&error), "42601");
}

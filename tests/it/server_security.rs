//! Authentication (SCRAM-SHA-256), the read-only role, TLS and per-query limits,
//! with real clients: tokio-postgres and psql.

use crate::broker::Broker;
use crate::server::{connect_as, psql_as, start_with};
use ktable::server::{serve, QueryLimits, ServerConfig, ServerError, TlsConfig, UserConfig};
use ktable::sql::{Engine, EngineConfig};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

fn user(name: &str, password: &str, read_only: bool) -> UserConfig {
    UserConfig {
        name: name.into(),
        password: password.into(),
        read_only,
    }
}

async fn count(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .expect("count")
        .get(0)
}

fn code(error: &tokio_postgres::Error) -> Option<&str> {
    error.code().map(|c| c.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_users_and_a_read_only_role() {
    let broker = Broker::start();
    let config = ServerConfig {
        users: vec![user("admin", "s3cret", false), user("reader", "r34d", true)],
        ..ServerConfig::default()
    };
    let server = start_with(&broker, config).await;

    for (name, password) in [("admin", "wrong"), ("nobody", "s3cret"), ("reader", "")] {
        let refused = connect_as(&server, name, password)
            .await
            .err()
            .unwrap_or_else(|| panic!("{name} with password {password:?} was let in"));
        // A missing password is refused by the client before the server answers.
        if !password.is_empty() {
            assert_eq!(code(&refused), Some("28P01"), "{name}: {refused:?}");
        }
    }

    let admin = connect_as(&server, "admin", "s3cret").await.expect("admin");
    let reader = connect_as(&server, "reader", "r34d").await.expect("reader");
    assert_eq!(count(&reader).await, 2);
    let lookup = reader
        .prepare("SELECT name FROM users WHERE id = $1")
        .await
        .expect("prepare");
    assert_eq!(
        reader
            .query_one(&lookup, &[&"u1"])
            .await
            .expect("u1")
            .get::<_, String>(0),
        "Ada"
    );

    // The reader may not change what is served, by either protocol.
    let topic = broker.topic("pg-readonly", 1, &[]).await;
    let create = format!("CREATE STREAM extra (v INT) WITH (topic = '{topic}')");
    for statement in [
        create.as_str(),
        "DROP TABLE users",
        "CREATE VIEW adults AS SELECT * FROM users WHERE age >= 18",
        "CREATE TABLE scratch (a INT)",
        "CREATE TABLE scratch AS SELECT 1 AS a",
    ] {
        let simple = reader.simple_query(statement).await.expect_err(statement);
        assert_eq!(code(&simple), Some("42501"), "{statement}: {simple:?}");
        let extended = reader.execute(statement, &[]).await.expect_err(statement);
        assert_eq!(code(&extended), Some("42501"), "{statement}: {extended:?}");
    }
    assert_eq!(count(&reader).await, 2, "the reader's connection survives");

    // The admin may.
    admin.batch_execute(&create).await.expect("admin creates");
    admin
        .batch_execute("DROP STREAM extra")
        .await
        .expect("admin drops");

    // Both users are roles in the catalog (psql's \du, DBeaver's role list): they
    // log in, none is a superuser.
    let roles: Vec<(String, bool, bool)> = reader
        .query(
            "SELECT rolname, rolcanlogin, rolsuper FROM pg_catalog.pg_roles ORDER BY rolname",
            &[],
        )
        .await
        .expect("pg_roles")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(
        roles,
        [
            ("admin".to_string(), true, false),
            ("reader".to_string(), true, false)
        ]
    );
}

/// A self-signed certificate and its key, made with openssl.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).expect("cert dir");
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    (cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_psql_is_required_and_a_bad_key_stops_the_server() {
    let dir = std::env::temp_dir().join(format!("ktable-tls-{}", std::process::id()));
    let (cert, key) = certificate(&dir);
    let broker = Broker::start();
    let config = ServerConfig {
        users: vec![user("admin", "s3cret", false)],
        tls: Some(TlsConfig {
            cert: cert.clone(),
            key: key.clone(),
        }),
        require_tls: true,
        ..ServerConfig::default()
    };
    let server = Arc::new(start_with(&broker, config).await);
    let shared = Arc::clone(&server);
    let out = tokio::task::spawn_blocking(move || {
        psql_as(&shared, "admin", "s3cret", "require", "\\conninfo")
    })
    .await
    .expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = String::from_utf8_lossy(&out.stdout);
    assert!(info.contains("SSL connection"), "{info}");
    let shared = Arc::clone(&server);
    let count = tokio::task::spawn_blocking(move || {
        psql_as(
            &shared,
            "admin",
            "s3cret",
            "require",
            "SELECT count(*) FROM users",
        )
    })
    .await
    .expect("psql");
    assert_eq!(String::from_utf8_lossy(&count.stdout).trim(), "2");
    // require_tls: a plaintext client is refused with the reason.
    let shared = Arc::clone(&server);
    let plain = tokio::task::spawn_blocking(move || {
        psql_as(&shared, "admin", "s3cret", "disable", "SELECT 1")
    })
    .await
    .expect("psql");
    assert!(!plain.status.success(), "plaintext was served");
    let refusal = String::from_utf8_lossy(&plain.stderr);
    assert!(refusal.contains("requires TLS"), "{refusal}");

    // A key that is not a key: the server refuses to start rather than serve
    // plaintext.
    let bad_key = dir.join("bad.key");
    std::fs::write(
        &bad_key,
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    // A key of another certificate.
    let other = certificate(&dir.join("other"));
    for key in [bad_key, other.1, dir.join("missing.key")] {
        let engine = Arc::new(Engine::new(EngineConfig::new(broker.brokers())));
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            users: vec![user("admin", "s3cret", false)],
            tls: Some(TlsConfig {
                cert: cert.clone(),
                key: key.clone(),
            }),
            ..ServerConfig::default()
        };
        let result = tokio::time::timeout(
            Duration::from_secs(5),
            serve(engine, &config, std::future::pending()),
        )
        .await
        .expect("serve returns at once");
        assert!(
            matches!(result, Err(ServerError::Tls { .. })),
            "{}: {result:?}",
            key.display()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_authentication_only_on_loopback() {
    let engine = Arc::new(Engine::new(EngineConfig::new("127.0.0.1:1")));
    let config = ServerConfig {
        listen: "0.0.0.0:0".parse().expect("addr"),
        ..ServerConfig::default()
    };
    let result = tokio::time::timeout(
        Duration::from_secs(5),
        serve(engine, &config, std::future::pending()),
    )
    .await
    .expect("serve returns at once");
    assert!(
        matches!(result, Err(ServerError::Listen { .. })),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_time_and_result_size_limits() {
    let broker = Broker::start();
    let config = ServerConfig {
        limits: QueryLimits {
            timeout: Some(Duration::from_millis(500)),
            max_rows: Some(1_000),
        },
        ..ServerConfig::default()
    };
    let server = start_with(&broker, config).await;
    let client = connect_as(&server, "ktable", "").await.expect("connect");

    let rows = client
        .query("SELECT value FROM generate_series(1, 1000)", &[])
        .await
        .expect("at the limit");
    assert_eq!(rows.len(), 1_000);
    for run in [
        client
            .simple_query("SELECT value FROM generate_series(1, 1001)")
            .await
            .err(),
        client
            .query("SELECT value FROM generate_series(1, 5000)", &[])
            .await
            .err(),
    ] {
        let error = run.expect("over the row limit");
        assert_eq!(code(&error), Some("54000"), "{error:?}");
    }

    let slow = "SELECT count(*) FROM generate_series(1, 100000000000) a";
    let started = std::time::Instant::now();
    let error = client.simple_query(slow).await.expect_err("too slow");
    assert_eq!(code(&error), Some("57014"), "{error:?}");
    let error = client.query(slow, &[]).await.expect_err("too slow");
    assert_eq!(code(&error), Some("57014"), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    // The connection is still usable.
    assert_eq!(
        client
            .query_one("SELECT count(*) FROM users", &[])
            .await
            .expect("count")
            .get::<_, i64>(0),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_stops_a_running_query() {
    let broker = Broker::start();
    let server = start_with(&broker, ServerConfig::default()).await;
    let client = connect_as(&server, "ktable", "").await.expect("connect");
    // Minutes of work, all of it after the handler has returned: the aggregate runs
    // while its result stream is polled.
    let slow = "SELECT count(*) FROM generate_series(1, 100000000000) a";
    for extended in [false, true] {
        let token = client.cancel_token();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            token.cancel_query(tokio_postgres::NoTls).await
        });
        let started = std::time::Instant::now();
        let error = if extended {
            client.query(slow, &[]).await.err()
        } else {
            client.simple_query(slow).await.err()
        }
        .expect("cancelled");
        assert_eq!(code(&error), Some("57014"), "{error:?}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        canceller.await.expect("task").expect("cancel request sent");
    }
    // The connection goes on; the next statement is not cancelled.
    assert_eq!(count(&client).await, 2);
}

//! Prepared point lookups (`SELECT cols FROM t WHERE key = $1`), which the server
//! answers from the key index without DataFusion: the answers must be DataFusion's,
//! live, and follow a table declared again.

use crate::broker::{json_record, produce_all, Broker};
use crate::server::{connect_as, start_with};
use ktable::server::ServerConfig;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_lookups_answer_like_datafusion_and_stay_live() {
    let broker = Broker::start();
    let server = start_with(&broker, ServerConfig::default()).await;
    let client = connect_as(&server, "ktable", "").await.expect("connect");

    let lookup = client
        .prepare("SELECT name, age AS years, score FROM users WHERE id = $1;")
        .await
        .expect("prepare");
    assert_eq!(lookup.params(), &[tokio_postgres::types::Type::TEXT]);
    let names: Vec<&str> = lookup.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["name", "years", "score"]);

    // The same rows as DataFusion's plan for the literal query (an IN list is not a
    // point lookup, so it takes DataFusion's path).
    for key in ["u1", "u2", "u3", "nobody"] {
        let fast = client.query(&lookup, &[&key]).await.expect("lookup");
        let planned = client
            .query(
                "SELECT name, age AS years, score FROM users WHERE id IN ($1, 'never')",
                &[&key],
            )
            .await
            .expect("datafusion");
        let as_tuples = |rows: &[tokio_postgres::Row]| {
            rows.iter()
                .map(|r| {
                    (
                        r.get::<_, String>(0),
                        r.get::<_, i32>(1),
                        r.get::<_, Option<f64>>(2),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(as_tuples(&fast), as_tuples(&planned), "key {key}");
    }
    let ada = client.query_one(&lookup, &[&"u1"]).await.expect("u1");
    assert_eq!(ada.get::<_, String>(0), "Ada");
    assert_eq!(ada.get::<_, Option<f64>>(2), Some(1.5));
    // `id = NULL` is never true.
    let none: Option<&str> = None;
    assert!(client
        .query(&lookup, &[&none])
        .await
        .expect("null")
        .is_empty());

    // Live: an update in Kafka shows in the next execution of the same statement.
    produce_all(
        &broker.raw_producer(),
        &server.users_topic,
        &[json_record(
            "u1",
            json!({"name": "Ada L.", "age": 37, "score": 2.0}),
        )],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row = client.query_one(&lookup, &[&"u1"]).await.expect("u1");
        if row.get::<_, String>(0) == "Ada L." {
            assert_eq!(row.get::<_, i32>(1), 37);
            break;
        }
        assert!(Instant::now() < deadline, "the update never showed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Declared again with the same columns: the statement reads the new table.
    client
        .batch_execute(&format!(
            "DROP TABLE users; CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, age INT, score DOUBLE) WITH (topic = '{}')",
            server.users_topic
        ))
        .await
        .expect("declare again");
    server
        .engine
        .wait_until_ready(crate::READY_TIMEOUT)
        .await
        .expect("restored");
    let row = client.query_one(&lookup, &[&"u1"]).await.expect("after");
    assert_eq!(row.get::<_, String>(0), "Ada L.");

    // Declared again with other columns: an error, as PostgreSQL's for a changed
    // table, not rows of the wrong shape.
    client
        .batch_execute(&format!(
            "DROP TABLE users; CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT) WITH (topic = '{}')",
            server.users_topic
        ))
        .await
        .expect("declare with fewer columns");
    let error = client
        .query(&lookup, &[&"u1"])
        .await
        .expect_err("the statement's table changed");
    assert_eq!(error.code().map(|c| c.code()), Some("0A000"), "{error:?}");
}

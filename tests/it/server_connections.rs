//! Connection-level hardening, tried the way an attacker would: cancel requests on
//! every connection.

use crate::broker::Broker;
use crate::server::{connect_as, start_with, TestServer};
use ktable::server::{ServerConfig, UserConfig};
use std::sync::Arc;
use std::time::Duration;

/// The longest any step here waits before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);

fn code(error: &tokio_postgres::Error) -> Option<&str> {
    error.code().map(|c| c.code())
}

fn scram_users() -> Vec<UserConfig> {
    vec![UserConfig {
        name: "admin".into(),
        password: "s3cret".into(),
        read_only: false,
    }]
}

/// Logs in as a valid user of `server` (whichever way it authenticates).
async fn login(server: &TestServer, scram: bool) -> tokio_postgres::Client {
    let (user, password) = if scram {
        ("admin", "s3cret")
    } else {
        ("ktable", "")
    };
    connect_as(server, user, password).await.expect("login")
}

/// [`login`], waiting while the server is full: it gives a slot back once it has
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_reaches_every_connection() {
    // Minutes of work, produced while the result streams.
    let slow = "SELECT count(*) FROM generate_series(1, 100000000000) a";
    for scram in [false, true] {
        let broker = Broker::start();
        let users = if scram { scram_users() } else { Vec::new() };
        let server = start_with(
            &broker,
            ServerConfig {
                users,
                ..ServerConfig::default()
            },
        )
        .await;
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(Arc::new(login(&server, scram).await));
        }
        // All three run at once; each is cancelled through its own key. Before each
        // connection had its own process id, only the first one stopped.
        let mut running = Vec::new();
        for (n, client) in clients.iter().enumerate() {
            let client = Arc::clone(client);
            running.push(tokio::spawn(async move {
                let token = client.cancel_token();
                let canceller = tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    token.cancel_query(tokio_postgres::NoTls).await
                });
                let ended = if n % 2 == 0 {
                    client.simple_query(slow).await.err()
                } else {
                    client.query(slow, &[]).await.err()
                };
                canceller.await.expect("task").expect("cancel request sent");
                ended
            }));
        }
        for (n, run) in running.into_iter().enumerate() {
            let ended = tokio::time::timeout(PATIENCE, run)
                .await
                .unwrap_or_else(|_| panic!("connection {n} (scram: {scram}) was not cancelled"))
                .expect("task")
                .expect("the query ended with an error");
            assert_eq!(code(&ended), Some("57014"), "connection {n}: {ended:?}");
        }
        // Each connection goes on.
        for client in &clients {
            client.simple_query("SELECT 1").await.expect("after cancel");
        }
    }
}

